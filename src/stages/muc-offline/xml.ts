// Namespaces and small element helpers of the offline stage (stages never import each other's helpers).
import { Element } from "@xmpp/xml";

export const REGISTER = "jabber:iq:register";
export const XDATA = "jabber:x:data";
export { DISCO_INFO, DELAY, HINTS, STANZAS } from "../../protocol/xep.js";
export { clone, iqError } from "../../protocol/element.js";
import { STANZAS } from "../../protocol/xep.js";
export const SID = "urn:xmpp:sid:0";
export const MAM = "urn:xmpp:mam:2";
export const RSM = "http://jabber.org/protocol/rsm";
export const FORWARD = "urn:xmpp:forward:0";
export const MUC_REGISTER_FORM = "http://jabber.org/protocol/muc#register";
/** The Tigase registration field (SPEC D) and the service feature announcing it (SPEC D1). */
export const OFFLINE_FIELD = "{http://tigase.org/protocol/muc}offline";
export const OFFLINE_FEATURE = "http://tigase.org/protocol/muc#offline";

/** The RFC 6120 §8.3 defined condition of an error stanza, if any. */
export function errorCondition(el: Element): string | undefined {
  const error = el.getChild("error");
  for (const c of error?.children ?? []) {
    if (typeof c !== "string" && c.attrs.xmlns === STANZAS && c.name !== "text") return c.name;
  }
  return undefined;
}

/** A result IQ with the given addressing (attributes left out when undefined). */
export function iqResult(id: string | undefined, from: string | undefined, to: string | undefined, child?: Element): Element {
  const iq = new Element("iq", { type: "result", ...(id !== undefined ? { id } : {}), ...(from ? { from } : {}), ...(to ? { to } : {}) });
  if (child) iq.cnode(child);
  return iq;
}

/** Domain of a JID (`room@muc.example/nick` → `muc.example`). */
export function domainOf(jid: string): string {
  const slash = jid.indexOf("/");
  const bare = slash < 0 ? jid : jid.slice(0, slash);
  return bare.slice(bare.indexOf("@") + 1).toLowerCase();
}
