// Serialize once, write many times (fan-out): the stanza is serialized with a marker where each session's
// JID goes (its `to`, and for the account's own presences `<item jid>`), and every copy is the parts joined
// with that session's escaped JID: N copies cost one serialization and N string joins.
//
// Why a join is exactly the serialization of the stanza addressed to that JID: the serializer writes an attribute
// value as escapeAttr(value) between quotes, in the attributes' own order, and nothing else depends on the value;
// setting `to` (present or not, the marker takes its place in the same order) and the item's `jid` to the marker
// and splitting at it leaves what surrounds each value, and escapeAttr(jid) is what the serializer would write there.
// The marker must occur nowhere else: U+0001 cannot come out of the parser (it is not an XML 1.0 character), and a
// stanza that holds it all the same (built by a stage) is split into more parts than markers were set, and is then
// serialized per copy instead. test/unit/chain/prepared.test.ts checks the identity on generated stanzas.
import type { Element } from "@xmpp/xml";
import { escapeAttr, serialize } from "../xml/serialize.js";

const MARK = "\u0001";
const MUC_USER = "http://jabber.org/protocol/muc#user";

export class Prepared {
  /** The serialization split at the markers; null: the stanza holds the marker itself (serialized per copy). */
  private parts: string[] | null | undefined;

  /** `rewriteItemJid`: the MUC `<x><item jid>` of an own presence names the receiving session too. */
  constructor(readonly el: Element, readonly rewriteItemJid = false) {}

  /** The item whose `jid` is per session, if any. */
  item(): Element | undefined {
    if (!this.rewriteItemJid) return undefined;
    const item = this.el.getChild("x", MUC_USER)?.getChild("item");
    return item?.attrs.jid === undefined ? undefined : item;
  }

  /** The serialized stanza addressed to `jid` (serialized on first use). */
  render(jid: string): string {
    if (this.parts === undefined) this.parts = this.addressed(MARK, (text, marks) => {
      const parts = text.split(MARK);
      return parts.length === marks + 1 ? parts : null;
    });
    const parts = this.parts;
    if (parts === null) return this.addressed(jid, (text) => text);
    return parts.length === 2 ? (parts[0] as string) + escapeAttr(jid) + (parts[1] as string) : parts.join(escapeAttr(jid));
  }

  /** `then` of the stanza serialized with `to` (and the item's jid) set to `value`; the element is left as it was. */
  private addressed<T>(value: string, then: (text: string, marks: number) => T): T {
    const el = this.el;
    const to = el.attrs.to;
    const item = this.item();
    const itemJid = item?.attrs.jid;
    el.attrs.to = value;
    if (item) item.attrs.jid = value;
    try {
      return then(serialize(el), item ? 2 : 1);
    } finally {
      if (to === undefined) delete el.attrs.to;
      else el.attrs.to = to;
      if (item) item.attrs.jid = itemJid as string;
    }
  }
}
