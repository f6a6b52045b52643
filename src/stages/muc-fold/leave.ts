// Leaving (SPEC C4–C6): explicit leaves, implicit departures (a session closed) and the linger timer.
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { JoinRequest, Room } from "./room.js";
import type { Session } from "../../chain/session.js";
import { sendTo } from "./fanout.js";
import { dropRoom, isKept, localUnavailable, roomsOf, type MucDeps } from "./context.js";
import { schedulePresence } from "./presence.js";

function forget(room: Room, session: Session): boolean {
  const was = room.joined.delete(session) || room.burst.delete(session);
  const before = room.waiting.length;
  room.waiting = room.waiting.filter((w) => w.session !== session);
  room.late = room.late.filter((w) => w.session !== session);
  room.presences.delete(session);
  return was || room.waiting.length !== before;
}

const nobodyIn = (room: Room) => room.joined.size === 0 && room.burst.size === 0 && room.waiting.length === 0 && room.late.length === 0;

/** Explicit leave: presence type=unavailable from S to R/* (SPEC C4, C6). */
export function onLeave(m: MucDeps, account: Account, room: Room, session: Session, el: Element): void {
  forget(room, session);
  const kept = isKept(m, account, room.jid);
  if (!nobodyIn(room) || kept || room.state !== "joined") {
    // SPEC C4: only S learns it left; nothing goes upstream.
    sendTo(session, localUnavailable(room, session, el.attrs.id), { rewriteItemJid: true });
    if (room.state === "joining" && nobodyIn(room) && !kept) room.leaveWhenJoined = true;
    schedulePresence(account, room);
    return;
  }
  // SPEC C6: the last session leaves a room that is not kept: the anchor leaves.
  room.state = "leaving";
  room.leaver = { session, id: el.attrs.id };
  const p = new Element("presence", { type: "unavailable", to: `${room.jid}/${room.nick}` });
  const status = el.getChildText("status");
  if (status) p.c("status").t(status);
  if (!account.anchor?.send(p)) {
    sendTo(session, localUnavailable(room, session, el.attrs.id), { rewriteItemJid: true });
    dropRoom(m, account, room);
  }
}

/**
 * The anchor's leave was confirmed (own unavailable, no removal code): forwarded to the leaving session
 * (SPEC C6). Returns the joins that raced the leave, for the caller to submit again.
 */
export function onLeft(m: MucDeps, account: Account, room: Room, el: Element): JoinRequest[] {
  if (room.leaver) {
    if (room.leaver.id) el.attrs.id = room.leaver.id;
    sendTo(room.leaver.session, el, { rewriteItemJid: true });
  }
  room.leaver = undefined;
  const waiting = room.waiting;
  room.waiting = [];
  dropRoom(m, account, room);
  return waiting;
}

/** A join completed (or a re-join) with nobody left to use it and nothing keeping it: leave at once. */
export function leaveIfUnused(m: MucDeps, account: Account, room: Room): boolean {
  if (!nobodyIn(room) || isKept(m, account, room.jid) || room.state !== "joined") return false;
  lingerExpired(m, account, room);
  return true;
}

/** SPEC C5: a session closed without leaving; nothing is sent to the room or other sessions. */
export function onSessionGone(m: MucDeps, account: Account, session: Session): void {
  for (const room of [...roomsOf(account).values()]) {
    if (!forget(room, session)) continue;
    if (!nobodyIn(room)) {
      schedulePresence(account, room);
      continue;
    }
    if (room.state === "joined") startLinger(m, account, room);
    // A join still in flight lingers once it completes (see inbound.ts).
  }
}

/** Keep the room joined with nobody in it, for lingerSeconds unless a keeper (offline flag) holds it. */
export function startLinger(m: MucDeps, account: Account, room: Room): void {
  schedulePresence(account, room); // C3: xa while kept
  clearTimeout(room.lingerTimer);
  room.lingerTimer = setTimeout(() => lingerExpired(m, account, room), m.config.muc.lingerSeconds * 1000);
  room.lingerTimer.unref();
}

function lingerExpired(m: MucDeps, account: Account, room: Room): void {
  room.lingerTimer = undefined;
  if (!nobodyIn(room) || isKept(m, account, room.jid) || room.state !== "joined") return;
  room.state = "leaving";
  room.leaver = undefined;
  if (!account.anchor?.send(new Element("presence", { type: "unavailable", to: `${room.jid}/${room.nick}` }))) {
    dropRoom(m, account, room);
  }
}
