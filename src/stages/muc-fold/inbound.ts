// Room traffic arriving on the anchor (SPEC B3, C1, C2, C6–C8, C11, C12, A9), fanned out to sessions.
import type { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import { Room } from "./room.js";
import { bareKey, resourceOf } from "../../account/jid.js";
import { fanOut } from "./fanout.js";
import { clone, DELAY, isHistoryWorthy, MUC_USER, statusCodes } from "./xmlutil.js";
import { dropRoom, isKept, roomOf, roomsOf, type MucDeps } from "./context.js";
import { completeBurst, failJoin, onJoin, onJoined, startUpstreamJoin } from "./join.js";
import { leaveIfUnused, onLeft, startLinger } from "./leave.js";
import { onAnchorIq } from "./iq.js";
import { resultOf } from "../../protocol/iq-tracker.js";
import { finishRejoin, onRejoinOccupant, onRejoinHistory } from "./rejoin.js";

const REMOVAL = ["301", "307", "321", "322", "332", "333"];

export function onAnchorStanza(m: MucDeps, account: Account, el: Element): void {
  if (el.name === "iq") return onAnchorIq(m, account, el);
  const room = roomOf(account, el.attrs.from);
  if (!room) return; // not a managed room (nothing else is routed to the anchor)
  // Archive results belong to the query that asked for them; the account's IQ tracker hands them to it
  // before any stage runs. One that reaches here answers no pending query (it timed out): nobody's.
  if (el.name === "message" && resultOf(el)) return;
  if (el.name === "presence") onPresence(m, account, room, el);
  else if (el.name === "message") onMessage(m, account, room, el);
}

/** Who hears room traffic now: joined sessions and those in their join burst, or waiters before it. */
function listeners(room: Room) {
  return room.self ? room.audience() : room.waiting.map((w) => w.session);
}

function onPresence(m: MucDeps, account: Account, room: Room, el: Element): void {
  const nick = resourceOf(el.attrs.from ?? "");
  if (el.attrs.type === "error") {
    if (room.state === "joining" && !room.self) return failJoin(m, account, room, el); // SPEC B7
    const pending = room.pendingNick;
    if (pending && nick === pending.nick) {
      room.pendingNick = undefined;
      if (pending.id) el.attrs.id = pending.id;
      return void fanOut(el, [pending.session], m.metrics); // SPEC C2: the error goes to S only
    }
    return; // SPEC A8 has no counterpart here: an error about the anchor's presence concerns nobody else
  }
  if (nick === undefined) {
    if (el.attrs.type !== "unavailable") room.roomPresence = clone(el);
    return void fanOut(el, listeners(room), m.metrics);
  }
  const codes = statusCodes(el);
  // COMPAT(ejabberd-23.01): the unavailable for a destroyed room carries no 110; the nick is still ours.
  if (codes.has("110") || (room.self && nick === room.nick)) return onOwnPresence(m, account, room, el, codes);
  // SPEC C8: other occupants' presences keep the cache current for later synthesized joins.
  if (el.attrs.type === "unavailable") room.occupants.delete(nick);
  else room.occupants.set(nick, clone(el));
  if (room.rejoin) return onRejoinOccupant(m, room, nick, el);
  fanOut(el, listeners(room), m.metrics);
}

function onOwnPresence(m: MucDeps, account: Account, room: Room, el: Element, codes: Set<string>): void {
  if (el.attrs.type === "unavailable") {
    if (codes.has("303")) {
      // SPEC C2: nick change accepted; the new available presence follows.
      fanOut(el, room.audience(), m.metrics, { rewriteItemJid: true });
      return;
    }
    const destroyed = !!el.getChild("x", MUC_USER)?.getChild("destroy");
    if (destroyed || REMOVAL.some((c) => codes.has(c))) return onRemoved(m, account, room, el);
    const raced = onLeft(m, account, room, el);
    for (const w of raced) onJoin(m, account, w.session, w.presence);
    return;
  }
  if (room.state === "joining" && !room.self) {
    onJoined(m, account, room, el);
    if (room.burst.size === 0) {
      completeBurst(m, account, room);
      if (room.leaveWhenJoined ? !leaveIfUnused(m, account, room) : true) startLingerIfEmpty(m, account, room);
    }
    return;
  }
  room.self = clone(el);
  m.events.emit("anchor-self-presence", { account, room: room.jid });
  if (room.rejoin) return; // SPEC A9: no second self-presence for joined sessions
  const pending = room.pendingNick;
  if (pending) {
    room.pendingNick = undefined;
    room.nick = resourceOf(el.attrs.from ?? "") ?? room.nick;
  }
  fanOut(el, room.audience(), m.metrics, { rewriteItemJid: true });
}

function startLingerIfEmpty(m: MucDeps, account: Account, room: Room): void {
  if (room.joined.size === 0 && roomsOf(account).has(room.jid.toLowerCase())) startLinger(m, account, room);
}

/** SPEC C7: kicked, banned, affiliation lost, members-only, shutdown or destroyed. */
function onRemoved(m: MucDeps, account: Account, room: Room, el: Element): void {
  fanOut(el, [...room.audience(), ...room.waiting.map((w) => w.session)], m.metrics, { rewriteItemJid: true });
  m.log.info({ codes: [...statusCodes(el)] }, "account removed from a room");
  const codes = statusCodes(el);
  const destroyed = !!el.getChild("x", MUC_USER)?.getChild("destroy");
  m.events.emit("room-removed", { account, room: room.jid, codes, destroyed });
  const rejoin = (codes.has("332") || codes.has("333")) && isKept(m, account, room.jid);
  room.joined.clear();
  room.burst.clear();
  room.waiting = [];
  dropRoom(m, account, room);
  // After a shutdown or technical removal a room kept by a keeper (offline flag) is joined again.
  if (rejoin && account.anchor) {
    const again = new Room(room.jid, room.nick, m.config.muc.historySize);
    again.joinX = room.joinX;
    roomsOf(account).set(room.jid.toLowerCase(), again);
    again.burstTimer = setTimeout(() => {
      if (!account.disposed && roomsOf(account).get(bareKey(again.jid)) === again) startUpstreamJoin(m, account, again, undefined);
    }, 5000);
    again.burstTimer.unref();
  }
}

function onMessage(m: MucDeps, account: Account, room: Room, el: Element): void {
  const type = el.attrs.type;
  if (type === "groupchat") return onGroupchat(m, account, room, el);
  if (type === "error") return void fanOut(el, room.audience(), m.metrics);
  // SPEC C12: private messages (and room notices to the bare JID) fork to every joined session.
  const n = fanOut(el, room.audience(), m.metrics);
  if (n === 0) m.events.emit("room-unjoined-message", { account, room: room.jid, el });
}

function onGroupchat(m: MucDeps, account: Account, room: Room, el: Element): void {
  const isSubject = !!el.getChild("subject") && !el.getChild("body");
  if (isSubject) {
    const previous = room.subject?.getChildText("subject") ?? undefined;
    room.subject = clone(el);
    if (room.rejoin) return finishRejoin(m, account, room, previous);
    fanOut(el, listeners(room), m.metrics);
    if (room.burst.size > 0) {
      completeBurst(m, account, room);
      if (room.leaveWhenJoined ? !leaveIfUnused(m, account, room) : true) startLingerIfEmpty(m, account, room);
    }
    return;
  }
  const delayed = el.getChild("delay", DELAY);
  if (room.rejoin && delayed) return onRejoinHistory(m, account, room, el);
  if (isHistoryWorthy(el)) {
    const cached = clone(el);
    // Live messages get a delay stamped at receipt so that later replays carry it (SPEC B4).
    if (!delayed) cached.c("delay", { xmlns: DELAY, from: room.jid, stamp: new Date().toISOString() });
    room.addHistory(cached);
  }
  const n = fanOut(el, delayed && room.burst.size > 0 ? [...room.burst] : listeners(room), m.metrics);
  if (n === 0 && !delayed) m.events.emit("room-unjoined-message", { account, room: room.jid, el });
}
