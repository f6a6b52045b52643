// Element helpers shared by stages.
import { Element } from "@xmpp/xml";

/** Deep copy: caches keep their own elements, and fan-out or delivery may change the copy they write. */
export function clone(el: Element): Element {
  const copy = new Element(el.name, { ...el.attrs });
  for (const c of el.children) copy.cnode(typeof c === "string" ? c : clone(c));
  return copy;
}
