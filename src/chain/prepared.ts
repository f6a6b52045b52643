// Serialize once, write many times (fan-out): the stanza is serialized with a marker where each session's
// JID goes (its `to`, and for the account's own presences `<item jid>`), and every copy is the parts joined
// with that session's escaped JID: N copies cost one serialization and N string joins.
import type { Element } from "@xmpp/xml";
import { escapeAttr, serialize } from "../xml/serialize.js";

// U+0001 cannot occur in XML 1.0 content, so it can never collide with anything parsed.
const MARK = "\u0001";
const MUC_USER = "http://jabber.org/protocol/muc#user";

export class Prepared {
  private parts: string[] | undefined;

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
    this.parts ??= this.split();
    return this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join(escapeAttr(jid));
  }

  private split(): string[] {
    const el = this.el;
    const to = el.attrs.to;
    const item = this.item();
    const itemJid = item?.attrs.jid;
    el.attrs.to = MARK;
    if (item) item.attrs.jid = MARK;
    try {
      return serialize(el).split(MARK);
    } finally {
      if (to === undefined) delete el.attrs.to;
      else el.attrs.to = to;
      if (item) item.attrs.jid = itemJid as string;
    }
  }
}
