// SPEC A9: after the anchor reconnects, every managed room is joined again with history since the last
// cached message; joined sessions see only the differences, never a second full join.
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Room } from "./room.js";
import { fanOut } from "./fanout.js";
import { clone, MUC_USER } from "./xmlutil.js";
import { startUpstreamJoin, answerFromCache } from "./join.js";
import { roomsOf, type MucDeps } from "./context.js";

const REJOIN_TIMEOUT_MS = 10_000;

export function rejoinAll(m: MucDeps, account: Account): void {
  for (const room of roomsOf(account).values()) {
    if (room.state !== "joined") continue;
    room.rejoin = { occupants: new Map(room.occupants), subject: room.subject?.getChildText("subject") ?? undefined };
    room.occupants.clear();
    // Messages up to the newest cached one were seen; without any, everything since the drop is missed.
    const since = room.lastStamp() ?? room.downAt ?? new Date().toISOString();
    room.downAt = undefined;
    startUpstreamJoin(m, account, room, undefined, since);
    room.state = "joined"; // sessions stay joined; traffic is diffed until the subject ends the burst
    clearTimeout(room.burstTimer);
    room.burstTimer = setTimeout(() => finishRejoin(m, account, room, room.rejoin?.subject), REJOIN_TIMEOUT_MS);
    room.burstTimer.unref();
  }
}

/** An occupant presence during a re-join: forwarded only if it differs from what sessions saw. */
export function onRejoinOccupant(m: MucDeps, room: Room, nick: string, el: Element): void {
  const before = room.rejoin?.occupants.get(nick);
  if (before && before.toString() === el.toString()) return;
  fanOut(el, room.audience(), m.metrics);
}

/** A history message during a re-join: only messages the cache does not have reach the sessions. */
export function onRejoinHistory(m: MucDeps, account: Account, room: Room, el: Element): void {
  const sid = el.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id;
  const stamp = el.getChild("delay", "urn:xmpp:delay")?.attrs.stamp;
  const last = room.lastStamp();
  if (sid !== undefined ? room.hasStanzaId(sid) : stamp !== undefined && last !== undefined && stamp <= last) return;
  room.addHistory(clone(el));
  // Missed while the anchor was away: to the joined sessions, or to the offline handlers when none is in.
  if (fanOut(el, room.audience(), m.metrics) === 0) m.events.emit("room-unjoined-message", { account, room: room.jid, el });
}

export function finishRejoin(m: MucDeps, account: Account, room: Room, previousSubject: string | undefined): void {
  const rejoin = room.rejoin;
  if (!rejoin) return;
  room.rejoin = undefined;
  clearTimeout(room.burstTimer);
  // Occupants who left while the anchor was away: a synthesized unavailable each.
  for (const [nick, old] of rejoin.occupants) {
    if (room.occupants.has(nick)) continue;
    const p = new Element("presence", { type: "unavailable", from: `${room.jid}/${nick}` });
    const item = old.getChild("x", MUC_USER)?.getChild("item");
    p.c("x", { xmlns: MUC_USER }).c("item", { affiliation: item?.attrs.affiliation ?? "none", role: "none" });
    fanOut(p, room.audience(), m.metrics);
  }
  const subject = room.subject?.getChildText("subject") ?? undefined;
  if (room.subject && subject !== previousSubject) fanOut(clone(room.subject), room.audience(), m.metrics);
  const late = room.late;
  room.late = [];
  for (const req of late) answerFromCache(m, account, room, req);
}
