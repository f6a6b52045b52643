// XEP-0045 helpers shared by the account-level MUC stage.
import { Element } from "@xmpp/xml";

export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const PING = "urn:xmpp:ping";
export const CARBONS = "urn:xmpp:carbons:2";
export const FORWARD = "urn:xmpp:forward:0";
export { DELAY, HINTS, STANZAS, DISCO_INFO } from "../../protocol/xep.js";
export { clone } from "../../protocol/element.js";
import { HINTS, STANZAS } from "../../protocol/xep.js";

/** Status codes in the presence's `<x xmlns=muc#user>`. */
export function statusCodes(el: Element): Set<string> {
  const x = el.getChild("x", MUC_USER);
  const out = new Set<string>();
  for (const s of x?.getChildren("status") ?? []) if (s.attrs.code) out.add(s.attrs.code);
  return out;
}

export const isJoin = (el: Element) => el.name === "presence" && !el.attrs.type && !!el.getChild("x", MUC);

/** Replace the status codes of a self-presence. */
export function setStatusCodes(el: Element, codes: Iterable<string>): void {
  let x = el.getChild("x", MUC_USER);
  if (!x) x = el.c("x", { xmlns: MUC_USER }).up();
  x.children = x.children.filter((c) => typeof c === "string" || c.name !== "status");
  for (const code of codes) x.cnode(new Element("status", { code }));
}

/** Does the message carry content worth caching as history (not chat states, markers or subjects)? */
export function isHistoryWorthy(el: Element): boolean {
  if (el.getChild("no-store", HINTS) || el.getChild("no-permanent-store", HINTS)) return false;
  if (el.getChild("subject") && !el.getChild("body")) return false;
  return !!el.getChild("body") || !!el.getChild("store", HINTS) || !!el.getChild("encrypted") || !!el.getChild("openpgp");
}

export function errorReply(stanza: Element, type: string, condition: string, from?: string): Element {
  const reply = new Element(stanza.name, { type: "error", id: stanza.attrs.id, from: from ?? stanza.attrs.to, to: stanza.attrs.from });
  const error = new Element("error", { type });
  error.cnode(new Element(condition, { xmlns: STANZAS }));
  reply.cnode(error);
  return reply;
}
