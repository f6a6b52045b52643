// SPEC D1: disco#info answers tell clients the offline field can be used. A room (bare JID with a
// localpart and a conference identity) gains `jabber:iq:register` when upstream lacks it (ejabberd rooms);
// the MUC service (no localpart) gains `http://tigase.org/protocol/muc#offline`.
import { Element } from "@xmpp/xml";
import { DISCO_INFO, domainOf, OFFLINE_FEATURE, REGISTER } from "./xml.js";
import { hasMucIdentity } from "../../discovery/muc-services.js";

/** Extend a disco#info result (changes `el`: pass an editable stanza); tells `learn` of MUC service domains. */
export function extendDiscoInfo(el: Element, learn: (domain: string) => void): void {
  const query = el.getChild("query", DISCO_INFO);
  const from = el.attrs.from;
  if (!query || query.attrs.node !== undefined || !from || from.includes("/")) return;
  if (!query.getChildren("identity").some((i) => i.attrs.category === "conference")) return;
  // Judged like discovered services: a text conference service is a MUC service (an IRC gateway is not).
  if (hasMucIdentity(query)) learn(domainOf(from));
  const feature = from.includes("@") ? REGISTER : OFFLINE_FEATURE;
  if (query.getChildren("feature").some((f) => f.attrs.var === feature)) return;
  // Before any XEP-0128 extension form, where features usually are.
  const f = new Element("feature", { var: feature });
  const at = query.children.findIndex((c) => typeof c !== "string" && c.name === "x");
  if (at < 0) query.cnode(f);
  else {
    f.parent = query;
    query.children.splice(at, 0, f);
  }
}
