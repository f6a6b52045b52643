// Exactly once across crashes and restarts (SPEC D6b, D7): the room messages the account's
// anchor did not receive because mucmux was down — killed before it read them from its socket, or not
// running until the account's next login — are read from the room's archive (XEP-0313 MUC MAM) when that
// login joins the flagged room again, and handled like live ones (to online sessions, or queued).
//
// Where to start: each registration keeps the stable id (the room's stanza-id) of the newest room message
// the anchor received (written with a queued message in the same transaction; for messages that went to
// sessions directly, batched once per second). The archive is read backwards from its end until that id turns up; what follows it was missed.
// Stable ids also make the catch-up and live copies of one message count once. Rooms without an archive
// (no stanza-ids, the query answered with an error) keep the old behaviour: nothing is caught up.
import { randomBytes } from "node:crypto";
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import { bareKey } from "../../account/jid.js";
import type { CatchUpPoint } from "../../store/store.js";
import { accountKey, type OfflineContext } from "./context.js";
import { classify, deliverOrQueue, stableKey } from "./delivery.js";
import { clone, DELAY, FORWARD, MAM, RSM, SID, XDATA } from "./xml.js";

const PAGE = 50;
const JOIN_WAIT_MS = 15_000;
const PAGE_WAIT_MS = 10_000;
const MARK_EVERY_MS = 1000;
/** Read from this long before the newest received message: covers clock skew between mucmux and the server. */
const OVERLAP_MS = 60_000;

interface Page {
  results: Element[];
  complete: boolean;
  first: string | undefined;
}

export interface Archive {
  /** Every anchor stanza the account's IQ tracker did not take (this stage's anchor handler). */
  onAnchorStanza(account: Account, el: Element): void;
  /** The anchor is joining the flagged `room` again at a login: catch up on what it missed. */
  catchUp(account: Account, room: string): void;
}

export function createArchive(ctx: OfflineContext): Archive {

  const flush = (account: Account): void => {
    const st = ctx.state(account);
    st.markTimer = undefined;
    const store = ctx.store();
    if (!store || st.pendingMarks.size === 0) return;
    if (st.catchingUp > 0) return schedule(account); // the point moves once the catch-up is done
    for (const [room, m] of st.pendingMarks) void store.markSeen(accountKey(account), room, m.key, m.at).catch(() => {});
    st.pendingMarks.clear();
  };
  const schedule = (account: Account): void => {
    const st = ctx.state(account);
    if (st.markTimer) return;
    st.markTimer = setTimeout(() => flush(account), MARK_EVERY_MS);
    st.markTimer.unref();
  };

  // SPEC H4: a replica about to release its leases stores every pending point now; after the release the fence
  // would refuse them, and the new owner's catch-up would bring messages the devices had live a second time.
  ctx.events.on("flush-store", ({ pending }) => {
    const store = ctx.store();
    if (!store) return;
    for (const account of ctx.accounts.values()) {
      const st = ctx.state(account);
      if (st.pendingMarks.size === 0 || st.catchingUp > 0) continue;
      clearTimeout(st.markTimer);
      st.markTimer = undefined;
      for (const [room, m] of st.pendingMarks) pending.push(store.markSeen(accountKey(account), room, m.key, m.at).catch(() => {}));
      st.pendingMarks.clear();
    }
  });

  ctx.noteSeen = (account, room, key) => {
    ctx.state(account).pendingMarks.set(room, { key, at: Date.now() });
    schedule(account);
  };

  return {
    onAnchorStanza(account, el) {
      if (el.name !== "message") return;
      // A live message in a flagged room that sessions of the account are in: it goes to them, not through
      // this stage, and is the newest the anchor received (messages this stage handles move the point
      // themselves, once queued or delivered).
      if (el.attrs.type !== "groupchat" || el.getChild("delay", DELAY)) return;
      const room = bareKey(el.attrs.from ?? "");
      if (ctx.state(account).flags.get(room)?.offline !== true) return;
      if (!ctx.views.rooms.get(account, room)?.occupied) return;
      const key = stableKey(el, room);
      if (key !== undefined) ctx.noteSeen(account, room, key);
    },

    catchUp(account, room) {
      const st = ctx.state(account);
      void st.serial(async () => {
        const store = ctx.store();
        const point = store ? await store.catchUpFrom(accountKey(account), room).catch(() => undefined) : undefined;
        if (!point || !(await joined(ctx, account, room))) return;
        st.catchingUp++;
        try {
          const missed = await fetchMissed(ctx, account, room, point);
          for (const r of missed) await handleArchived(ctx, account, room, r);
          if (missed.length > 0) ctx.log.info({ messages: missed.length }, "offline catch-up from the room archive");
        } finally {
          st.catchingUp--;
          if (st.pendingMarks.size > 0) schedule(account);
        }
      }).catch((err: unknown) => ctx.log.error({ err }, "offline catch-up failed"));
    },
  };
}

/** The anchor is an occupant of `room` (the catch-up query follows the join); false after JOIN_WAIT_MS. */
async function joined(ctx: OfflineContext, account: Account, room: string): Promise<boolean> {
  const end = Date.now() + JOIN_WAIT_MS;
  for (;;) {
    const r = ctx.views.rooms.get(account, room);
    if (!r) return false;
    if (r.state === "joined" && account.anchor?.state === "online") return true;
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The archive's messages after the catch-up point, oldest first: pages read backwards from the end until
 * the point's id appears, the archive has no more, or a room queue's worth (offline.maxPerRoom) is there.
 */
async function fetchMissed(ctx: OfflineContext, account: Account, room: string, point: CatchUpPoint): Promise<Element[]> {
  const cap = Math.max(ctx.config.offline.maxPerRoom, 1);
  // With an id, read a little earlier and cut at the id; without one, from the registration's time on.
  const start = point.key === undefined ? point.at : point.at - OVERLAP_MS;
  const pages: Element[][] = [];
  let total = 0;
  let before = "";
  for (let n = 0; n <= Math.ceil(cap / PAGE); n++) {
    const page = await query(account, room, start, before);
    if (!page) break;
    pages.unshift(page.results);
    total += page.results.length;
    if (point.key !== undefined && page.results.some((r) => r.attrs.id === point.key)) break;
    if (page.complete || page.results.length === 0 || page.first === undefined || total >= cap) break;
    before = page.first;
  }
  let results = pages.flat();
  const at = point.key === undefined ? -1 : results.findIndex((r) => r.attrs.id === point.key);
  if (at >= 0) results = results.slice(at + 1);
  return results.slice(-cap);
}

/**
 * One page of a MAM query on the anchor (`before` "" = the last page); undefined on error or silence. The
 * account's IQ tracker hands this query's result messages to it alone (no session ever sees them).
 */
async function query(account: Account, room: string, start: number, before: string): Promise<Page | undefined> {
  const queryid = `mmo-${randomBytes(6).toString("hex")}`;
  const iq = new Element("iq", { type: "set", to: room });
  const q = iq.c("query", { xmlns: MAM, queryid });
  const x = q.c("x", { xmlns: XDATA, type: "submit" });
  x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(MAM);
  x.c("field", { var: "start" }).c("value").t(new Date(start).toISOString());
  const set = q.c("set", { xmlns: RSM });
  set.c("max").t(String(PAGE));
  const b = set.c("before");
  if (before) b.t(before);
  const results: Element[] = [];
  const collect = (msg: Element) => {
    const result = msg.getChild("result", MAM);
    if (result && bareKey(msg.attrs.from ?? "") === room) results.push(clone(result));
  };
  let answer: Element;
  try {
    answer = await account.anchorIqs.request(iq, (el) => account.sendViaAnchor(el), { timeoutMs: PAGE_WAIT_MS, collect });
  } catch {
    return undefined; // not sent, no answer in time, or the anchor went down
  }
  if (answer.attrs.type !== "result") return undefined; // no archive, or no access
  const fin = answer.getChild("fin", MAM);
  return {
    results,
    complete: fin?.attrs.complete === "true",
    first: fin?.getChild("set", RSM)?.getChildText("first") ?? undefined,
  };
}

/** One archived message: handled like a live one, with the archive's stamp and id. */
async function handleArchived(ctx: OfflineContext, account: Account, room: string, result: Element): Promise<void> {
  const id = result.attrs.id;
  const forwarded = result.getChild("forwarded", FORWARD);
  const inner = forwarded?.getChild("message");
  if (!id || !inner || classify(inner) !== "groupchat" || bareKey(inner.attrs.from ?? "") !== room) return;
  if (ctx.state(account).flags.get(room)?.offline !== true) return;
  const copy = clone(inner);
  delete copy.attrs.to;
  if (copy.attrs.xmlns === "jabber:client") delete copy.attrs.xmlns;
  const stamp = forwarded?.getChild("delay", DELAY)?.attrs.stamp;
  if (!copy.getChild("delay", DELAY) && stamp) copy.c("delay", { xmlns: DELAY, from: room, stamp });
  if (stableKey(copy, room) === undefined) copy.c("stanza-id", { xmlns: SID, by: room, id });
  const at = Date.parse(stamp ?? "");
  await deliverOrQueue(ctx, account, room, room, copy, Number.isNaN(at) ? Date.now() : at, id);
}
