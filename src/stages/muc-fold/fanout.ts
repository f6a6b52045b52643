// Fan-out (DESIGN.md): one parse, one serialization per stanza; the receiving session's full JID is
// spliced in where a marker stands, so N copies cost N string joins, not N serializations.
import type { Element } from "@xmpp/xml";
import { escapeAttr, serialize } from "../../xml/serialize.js";
import type { Link } from "../../stream/link.js";
import type { Metrics } from "../../metrics/metrics.js";
import { MUC_USER } from "./xmlutil.js";

// U+0001 cannot occur in XML 1.0 content, so it can never collide with anything parsed.
const MARK = "\u0001";

function write(el: Element, links: readonly Link[], rewriteItemJid: boolean): number {
  if (links.length === 0) return 0; // a kept room with nobody in it: nothing to serialize
  const to = el.attrs.to;
  el.attrs.to = MARK;
  const item = rewriteItemJid ? el.getChild("x", MUC_USER)?.getChild("item") : undefined;
  const itemJid = item?.attrs.jid;
  if (item && itemJid !== undefined) item.attrs.jid = MARK;
  const parts = serialize(el).split(MARK);
  // Leave the element as it was: callers may cache or hand it on.
  if (to === undefined) delete el.attrs.to;
  else el.attrs.to = to;
  if (item && itemJid !== undefined) item.attrs.jid = itemJid;
  let n = 0;
  for (const link of links) {
    if (!link.jid) continue;
    link.deliverRaw(parts.join(escapeAttr(link.jid)));
    n++;
  }
  return n;
}

/**
 * Write `el` to every link with `to` (and, for own presences, `<item jid>`) set to that link's JID
 * (SPEC B3, C1).
 */
export function fanOut(el: Element, links: readonly Link[], metrics: Metrics, opts: { rewriteItemJid?: boolean } = {}): number {
  const n = write(el, links, opts.rewriteItemJid ?? false);
  metrics.fanoutRecipients.observe(n);
  metrics.fanoutDeliveries.inc(n);
  if (n > 1) metrics.upstreamCopiesSaved.inc(n - 1);
  return n;
}

/** One copy to one session (replies, replays): not counted as fan-out. */
export function sendTo(link: Link, el: Element, opts: { rewriteItemJid?: boolean } = {}): void {
  write(el, [link], opts.rewriteItemJid ?? false);
}
