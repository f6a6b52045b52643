// SPEC D5/D6, C12: room messages that reached the anchor while no session of the account was in the room.
// Worth delivering: groupchat with content (flag on) and private messages to AccountNick (always). They go
// to every online session at once, or into the durable queue when the account has none. Never upstream.
import type { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Session } from "../../chain/session.js";
import { bareKey } from "../../account/jid.js";
import { serialize } from "../../xml/serialize.js";
import { accountKey, ensureLoaded, type OfflineContext } from "./context.js";
import { clone, DELAY, HINTS, SID } from "./xml.js";
import { AVAILABLE } from "./catchup.js";

export type Kind = "groupchat" | "pm";

const ENCRYPTED = new Set(["eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0", "jabber:x:encrypted"]);

/** SPEC D6: a body, an encrypted payload or a store hint, and no no-store hint; no chat states, markers, subjects. */
export function worthKeeping(el: Element): boolean {
  if (el.getChild("no-store", HINTS) || el.getChild("no-permanent-store", HINTS)) return false;
  if (el.getChild("body") || el.getChild("store", HINTS)) return true;
  return el.children.some((c) => typeof c !== "string" && ENCRYPTED.has(c.attrs.xmlns ?? ""));
}

/** What an unjoined room message is to the offline stage, if anything. */
export function classify(el: Element): Kind | undefined {
  if (el.name !== "message" || !worthKeeping(el)) return undefined;
  const type = el.attrs.type;
  const fromOccupant = (el.attrs.from ?? "").includes("/");
  if (type === "groupchat") return el.getChild("subject") && !el.getChild("body") ? undefined : "groupchat";
  if (type === "error" || type === "headline" || !fromOccupant) return undefined;
  return "pm"; // SPEC C12: a private message to AccountNick
}

/**
 * Sessions of the account that sent their initial presence and are still online. Not a hibernated one (SPEC
 * F8): what is kept for the account must not depend on whether a lost phone comes back in time.
 */
export function onlineSessions(account: Account): Session[] {
  return [...account.sessions].filter((s) => s.online && s.hibernated !== true && s.jid !== undefined && s.slots.get(AVAILABLE) === true);
}

/** The room's stable id of a message: its XEP-0359 stanza-id assigned by the room (MUC MAM). */
export function stableKey(el: Element, roomJid: string): string | undefined {
  const room = bareKey(roomJid);
  for (const sid of el.getChildren("stanza-id", SID)) if (sid.attrs.id && bareKey(sid.attrs.by ?? "") === room) return sid.attrs.id;
  return undefined;
}

export function onUnjoined(ctx: OfflineContext, account: Account, roomJid: string, el: Element): void {
  const kind = classify(el);
  if (!kind) return;
  const room = bareKey(roomJid);
  const receivedAt = Date.now();
  // The anchor's copy belongs to the MUC stage: keep our own, without its `to` (set per session).
  const copy = clone(el);
  delete copy.attrs.to;
  const key = kind === "groupchat" ? stableKey(copy, roomJid) : undefined;
  const st = ctx.state(account);
  void st.serial(async () => {
    if (kind === "groupchat") {
      if (!(await ensureLoaded(ctx, account))) return void ctx.metrics.offlineDropped.inc({ reason: "store_error" });
      if (st.flags.get(room)?.offline !== true) return;
    }
    await deliverOrQueue(ctx, account, room, roomJid, copy, receivedAt, key);
  }).catch((err: unknown) => ctx.log.error({ err }, "offline delivery failed"));
}

/**
 * SPEC D6a/b for one message (inside the account's serial order): to every online session, or into the
 * queue. A stable id handled lately (an archive catch-up and the live copy of the same message) is
 * handled once; the queue refuses a key it holds already.
 */
export async function deliverOrQueue(
  ctx: OfflineContext, account: Account, room: string, roomJid: string, el: Element, receivedAt: number, key: string | undefined,
): Promise<void> {
  const st = ctx.state(account);
  if (key !== undefined && st.handledLately(key)) return void ctx.metrics.offlineDropped.inc({ reason: "duplicate" });
  const online = onlineSessions(account);
  if (online.length > 0) {
    deliverLive(ctx, online, el); // SPEC D6a
    if (key !== undefined) ctx.noteSeen(account, room, key);
    return;
  }
  await enqueue(ctx, account, room, el, roomJid, receivedAt, key); // SPEC D6b
}

function deliverLive(ctx: OfflineContext, sessions: Session[], el: Element): void {
  for (const session of sessions) {
    const copy = clone(el); // each session's outbound chain may keep or change its copy
    copy.attrs.to = session.jid ?? "";
    session.deliver(copy, { origin: "local", onWritten: (err) => { if (!err) ctx.metrics.offlineDelivered.inc({ mode: "live" }); } });
  }
}

async function enqueue(
  ctx: OfflineContext, account: Account, room: string, el: Element, roomJid: string, receivedAt: number, key: string | undefined,
): Promise<void> {
  const store = ctx.store();
  if (!store) return void ctx.metrics.offlineDropped.inc({ reason: "store_error" });
  // SPEC D6b: the receipt time travels with the message as XEP-0203 delay.
  if (!el.getChild("delay", DELAY)) el.c("delay", { xmlns: DELAY, from: roomJid, stamp: new Date(receivedAt).toISOString() });
  const { ttlSeconds, maxPerAccount, maxPerRoom } = ctx.config.offline;
  try {
    const out = await store.enqueue(
      { account: accountKey(account), room, stanza: serialize(el), receivedAt, expiresAt: receivedAt + ttlSeconds * 1000, key },
      { maxPerAccount, maxPerRoom },
      Date.now(),
    );
    if (out.queued) {
      ctx.metrics.offlineQueued.inc();
      ctx.events.emit("offline-queued", { account, room: roomJid, el }); // SPEC G1: the server may wake a phone for it
    }
    if (out.duplicate) ctx.metrics.offlineDropped.inc({ reason: "duplicate" });
    // Queuing moved the room's catch-up point to this key already.
    if (key !== undefined && ctx.state(account).pendingMarks.get(room)?.key === key) ctx.state(account).pendingMarks.delete(room);
    for (const [reason, n] of Object.entries(out.dropped)) if (n > 0) ctx.metrics.offlineDropped.inc({ reason }, n);
  } catch {
    ctx.metrics.offlineDropped.inc({ reason: "store_error" }); // logged and counted by the instrumented store
  }
}
