// Element helpers shared by stages (and the chain runner).
import { Element } from "@xmpp/xml";
import { STANZAS } from "./xep.js";

/** Deep copy: caches keep their own elements, and fan-out or delivery may change the copy they write. */
export function clone(el: Element): Element {
  const copy = new Element(el.name, { ...el.attrs });
  for (const c of el.children) copy.cnode(typeof c === "string" ? c : clone(c));
  return copy;
}

/** An error IQ with a defined condition and optional text (RFC 6120 §8.3); addressing left out when unset. */
export function iqError(id: string | undefined, from: string | undefined, to: string | undefined, type: string, condition: string, text?: string): Element {
  const iq = new Element("iq", { type: "error", ...(id !== undefined ? { id } : {}), ...(from ? { from } : {}), ...(to ? { to } : {}) });
  const error = iq.c("error", { type });
  error.c(condition, { xmlns: STANZAS });
  if (text) error.c("text", { xmlns: STANZAS }).t(text);
  return iq;
}
