// SPEC D6b: a session's initial presence (the first presence without `to`) makes it online for offline
// delivery; the account's queued messages are written to it then, each removed from the store only once
// written to the client socket. A message goes to one session only: claimed ids are never handed out twice.
import type { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Session } from "../../chain/session.js";
import type { QueuedMessage, Store } from "../../store/store.js";
import { parseStanza } from "../../xml/stanza.js";
import { accountKey, type OfflineContext } from "./context.js";

/** Session slot: true while the session is available (initial presence sent, no unavailable since). */
export const AVAILABLE = Symbol("mucmux.offline.available");
const PAGE = 100;

/** c2s: a broadcast presence (no `to`) of a session. */
export function onBroadcastPresence(ctx: OfflineContext, account: Account, session: Session, el: Element): void {
  const type = el.attrs.type;
  if (type !== undefined && type !== "unavailable") return;
  // In the account's serial order: messages that arrived before this presence are queued first, then read here.
  void ctx.state(account).serial(async () => {
    if (type === "unavailable") return void session.slots.set(AVAILABLE, false);
    if (session.slots.get(AVAILABLE) === true) return;
    session.slots.set(AVAILABLE, true);
    await deliverQueued(ctx, account, session);
  }).catch((err: unknown) => ctx.log.error({ err }, "offline catch-up failed"));
}

/** SPEC F8: a resumed session that was available gets what was queued while it was away. */
export function onResumed(ctx: OfflineContext, account: Account, session: Session): void {
  if (session.slots.get(AVAILABLE) !== true) return;
  void ctx.state(account).serial(() => deliverQueued(ctx, account, session))
    .catch((err: unknown) => ctx.log.error({ err }, "offline catch-up failed"));
}

async function deliverQueued(ctx: OfflineContext, account: Account, session: Session): Promise<void> {
  const store = ctx.store();
  if (!store) return;
  await retryRemovals(ctx, store);
  const now = Date.now();
  const expired = await store.expire(now).catch(() => 0);
  if (expired > 0) ctx.metrics.offlineDropped.inc({ reason: "ttl" }, expired);
  const limits = { ...ctx.config.limits, maxStanzaBytes: ctx.config.limits.maxStanzaBytes * 2 };
  for (let after = 0; ;) {
    let page: QueuedMessage[];
    try {
      page = await store.pending(accountKey(account), now, after, PAGE);
    } catch {
      return; // logged and counted by the instrumented store; the messages stay queued
    }
    for (const m of page) {
      after = m.id;
      if (ctx.claimed.has(m.id)) continue;
      if (!session.online || session.jid === undefined) return;
      ctx.claimed.add(m.id);
      const el = parseStanza(m.stanza, limits);
      if (!el || el.name !== "message") {
        ctx.log.warn({ id: m.id }, "unreadable offline message removed from the store");
        scheduleRemoval(ctx, m.id);
        continue;
      }
      el.attrs.to = session.jid;
      // Through the session's outbound chain like any stanza; removed from the store once written.
      session.deliver(el, { origin: "local", onWritten: (err) => written(ctx, m.id, err) });
    }
    if (page.length < PAGE) return;
  }
}

function written(ctx: OfflineContext, id: number, err: Error | null | undefined): void {
  if (err) return void ctx.claimed.delete(id); // never reached the socket: stays queued for the next session
  ctx.metrics.offlineDelivered.inc({ mode: "queued" });
  scheduleRemoval(ctx, id);
}

function scheduleRemoval(ctx: OfflineContext, id: number): void {
  ctx.toRemove.push(id);
  if (ctx.toRemove.length === 1) setImmediate(() => void removeNow(ctx));
}

async function removeNow(ctx: OfflineContext): Promise<void> {
  const ids = ctx.toRemove.splice(0);
  try {
    const store = ctx.store();
    if (!store) throw new Error("store closed");
    await store.remove(ids);
    for (const id of ids) ctx.claimed.delete(id);
  } catch {
    // Still claimed, so this process never writes them again; removal is retried at the next catch-up.
    for (const id of ids) ctx.unremoved.add(id);
  }
}

async function retryRemovals(ctx: OfflineContext, store: Store): Promise<void> {
  if (ctx.unremoved.size === 0) return;
  const ids = [...ctx.unremoved];
  try {
    await store.remove(ids);
  } catch {
    return;
  }
  for (const id of ids) {
    ctx.unremoved.delete(id);
    ctx.claimed.delete(id);
  }
}
