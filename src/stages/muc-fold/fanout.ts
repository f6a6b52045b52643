// Fan-out (DESIGN.md): one parse, one serialization per stanza (chain/prepared.ts); each copy goes through
// its session's outbound chain like any stanza toward a device, with `to` (and, for the account's own
// presences, `<item jid>`) set to that session's JID while it passes.
import type { Element } from "@xmpp/xml";
import type { Origin, Session } from "../../chain/session.js";
import { Prepared } from "../../chain/prepared.js";
import type { Metrics } from "../../metrics/metrics.js";
import { MUC_USER } from "./xmlutil.js";

interface CopyOptions {
  rewriteItemJid?: boolean;
  /** Default "anchor": room traffic the anchor received. Synthesized stanzas say "local". */
  origin?: Origin;
}

function write(el: Element, sessions: readonly Session[], opts: CopyOptions): number {
  if (sessions.length === 0) return 0; // a kept room with nobody in it: nothing to serialize
  const to = el.attrs.to;
  const prepared = sessions.length > 1 ? new Prepared(el, opts.rewriteItemJid ?? false) : undefined;
  const item = opts.rewriteItemJid ? el.getChild("x", MUC_USER)?.getChild("item") : undefined;
  const itemJid = item?.attrs.jid;
  // The same for every copy; `el` stays the caller's (shared), so a stage that edits or holds it copies it.
  const deliver = { origin: opts.origin ?? "anchor", prepared, shared: true };
  let n = 0;
  try {
    for (const session of sessions) {
      const jid = session.jid;
      if (jid === undefined) continue;
      el.attrs.to = jid;
      if (item && itemJid !== undefined) item.attrs.jid = jid;
      session.deliver(el, deliver);
      n++;
    }
  } finally {
    // Leave the element as it was: callers may cache or hand it on.
    if (to === undefined) delete el.attrs.to;
    else el.attrs.to = to;
    if (item && itemJid !== undefined) item.attrs.jid = itemJid;
  }
  return n;
}

/** Write `el` to every session, addressed to each (SPEC B3, C1). */
export function fanOut(el: Element, sessions: readonly Session[], metrics: Metrics, opts: CopyOptions = {}): number {
  const n = write(el, sessions, opts);
  metrics.fanoutRecipients.observe(n);
  metrics.fanoutDeliveries.inc(n);
  if (n > 1) metrics.upstreamCopiesSaved.inc(n - 1);
  return n;
}

/** One copy to one session (replies, replays from the cache): not counted as fan-out. Default origin "local". */
export function sendTo(session: Session, el: Element, opts: CopyOptions = {}): void {
  write(el, [session], { origin: "local", ...opts });
}
