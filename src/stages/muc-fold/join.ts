// Join folding (SPEC B1–B8): one upstream join per account and room; later joins answered from cache.
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import { Room, type HistoryRequest, type JoinRequest } from "./room.js";
import { bareKey, bareOf, resourceOf } from "../../account/jid.js";
import type { Session } from "../../chain/session.js";
import { sendTo } from "./fanout.js";
import { clone, DELAY, MUC, setStatusCodes, statusCodes, STANZAS, errorReply } from "./xmlutil.js";
import { dropRoom, roomsOf, type MucDeps } from "./context.js";
import { anchorPresence, schedulePresence } from "./presence.js";

const BURST_TIMEOUT_MS = 5000;

export function parseHistory(join: Element): HistoryRequest | undefined {
  const h = join.getChild("x", MUC)?.getChild("history");
  if (!h) return undefined;
  const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
  const out: HistoryRequest = {};
  const mc = num(h.attrs.maxchars), ms = num(h.attrs.maxstanzas), s = num(h.attrs.seconds);
  if (mc !== undefined) out.maxchars = mc;
  if (ms !== undefined) out.maxstanzas = ms;
  if (s !== undefined) out.seconds = s;
  if (h.attrs.since) out.since = h.attrs.since;
  return out;
}

export function onJoin(m: MucDeps, account: Account, session: Session, el: Element): void {
  const to = el.attrs.to ?? "";
  const nick = resourceOf(to);
  if (!nick) return sendTo(session, errorReply(el, "modify", "jid-malformed"));
  const req: JoinRequest = { session, id: el.attrs.id, nick, history: parseHistory(el), presence: el };
  let room = roomsOf(account).get(bareKey(to));
  if (!room) {
    room = new Room(bareOf(to), nick, m.config.muc.historySize);
    // A groupchat 1.0 join (a plain presence to room/nick) has no <x/>: the anchor joins with an empty one.
    const x = el.getChild("x", MUC);
    room.joinX = x ? clone(x) : new Element("x", { xmlns: MUC });
    roomsOf(account).set(bareKey(to), room);
    room.waiting.push(req);
    room.presences.set(session, el);
    return startUpstreamJoin(m, account, room, req.id);
  }
  m.metrics.upstreamJoinsSaved.inc();
  if (room.state === "leaving" || (room.state === "joining" && !room.self)) {
    room.waiting.push(req); // SPEC B2: folded into the pending join (or the re-join after the leave)
  } else if (room.burst.size > 0 || room.rejoin) {
    room.late.push(req);
  } else {
    answerFromCache(m, account, room, req); // SPEC B4, B5
  }
}

/**
 * Join a room with no session in it, kept by a keeper (SPEC D7: offline flag after a restart). The
 * room lingers/keeps like any room whose sessions went away.
 */
export function joinKept(m: MucDeps, account: Account, roomJid: string, nick: string): void {
  if (account.disposed || roomsOf(account).has(bareKey(roomJid))) return;
  const room = new Room(bareOf(roomJid), nick, m.config.muc.historySize);
  room.joinX = new Element("x", { xmlns: MUC }).c("history", { maxstanzas: "0" }).up();
  roomsOf(account).set(bareKey(roomJid), room);
  startUpstreamJoin(m, account, room, undefined);
}

/** Send the anchor's join (SPEC B2), opening the anchor if needed (SPEC A7). */
export function startUpstreamJoin(m: MucDeps, account: Account, room: Room, id: string | undefined, since?: string): void {
  room.state = "joining";
  const anchor = m.accounts.anchorFor(account);
  if (!anchor) return failJoin(m, account, room, errorPresence(room, "cancel", "remote-server-not-found"));
  void anchor.ready().then((ok) => {
    if (roomsOf(account).get(bareKey(room.jid)) !== room) return;
    if (!ok) return failJoin(m, account, room, errorPresence(room, "cancel", "remote-server-not-found"));
    const p = anchorPresence(room, `${room.jid}/${room.nick}`);
    if (id) p.attrs.id = id;
    const x = room.joinX ? clone(room.joinX) : new Element("x", { xmlns: MUC });
    if (since) {
      x.children = x.children.filter((c) => typeof c === "string" || c.name !== "history");
      x.c("history", { since });
    }
    p.cnode(x);
    anchor.send(p);
    m.metrics.upstreamJoins.inc();
  });
}

function errorPresence(room: Room, type: string, condition: string): Element {
  const p = new Element("presence", { type: "error", from: `${room.jid}/${room.nick}` });
  p.c("error", { type }).c(condition, { xmlns: STANZAS });
  return p;
}

/** SPEC B7: the error goes to every waiting session with its own join id; the room state resets. */
export function failJoin(m: MucDeps, account: Account, room: Room, error: Element): void {
  for (const w of room.waiting) {
    const e = clone(error);
    e.attrs.from = `${room.jid}/${w.nick}`;
    if (w.id) e.attrs.id = w.id;
    else delete e.attrs.id;
    sendTo(w.session, e);
  }
  room.waiting = [];
  dropRoom(m, account, room);
}

/** The anchor's self-presence arrived while joining (SPEC B3): forward it to each waiting session. */
export function onJoined(m: MucDeps, account: Account, room: Room, self: Element): void {
  room.self = clone(self);
  room.nick = resourceOf(self.attrs.from ?? "") ?? room.nick;
  room.state = "joined";
  for (const w of room.waiting) {
    const copy = clone(self);
    const codes = statusCodes(copy);
    codes.delete("210");
    if (w.nick !== room.nick) codes.add("210");
    setStatusCodes(copy, codes);
    if (w.id) copy.attrs.id = w.id;
    else delete copy.attrs.id;
    sendTo(w.session, copy, { rewriteItemJid: true, origin: "anchor" });
    room.burst.add(w.session);
  }
  room.waiting = [];
  room.burstTimer = setTimeout(() => completeBurst(m, account, room), BURST_TIMEOUT_MS);
  room.burstTimer.unref();
}

/** The subject ended the join burst (XEP-0045 §7.2.15): burst sessions are joined now. */
export function completeBurst(m: MucDeps, account: Account, room: Room): void {
  clearTimeout(room.burstTimer);
  for (const session of room.burst) room.joined.add(session);
  room.burst.clear();
  const late = room.late;
  room.late = [];
  for (const req of late) answerFromCache(m, account, room, req);
  schedulePresence(account, room);
}

/** SPEC B4: the occupants, the self-presence, history and subject from the cache; nothing upstream. */
export function answerFromCache(m: MucDeps, account: Account, room: Room, req: JoinRequest): void {
  const session = req.session;
  if (room.roomPresence) sendTo(session, clone(room.roomPresence));
  for (const p of room.occupants.values()) sendTo(session, clone(p));
  sendTo(session, selfPresenceFor(room, req), { rewriteItemJid: true });
  for (const h of historyFor(room, req.history)) sendTo(session, clone(h));
  const subject = room.subject ? clone(room.subject) : new Element("message", { type: "groupchat", from: room.jid }).c("subject").up();
  sendTo(session, subject);
  room.joined.add(session);
  room.presences.set(session, req.presence);
  clearTimeout(room.lingerTimer);
  room.lingerTimer = undefined;
  m.metrics.synthesizedJoins.inc();
  schedulePresence(account, room);
}

function selfPresenceFor(room: Room, req: JoinRequest): Element {
  const p = room.self ? clone(room.self) : new Element("presence", {});
  p.attrs.from = `${room.jid}/${room.nick}`;
  if (req.id) p.attrs.id = req.id;
  else delete p.attrs.id;
  delete p.attrs.type;
  const codes = new Set<string>([...statusCodes(p)].filter((c) => c === "100" || c === "170"));
  codes.add("110");
  if (req.nick !== room.nick) codes.add("210"); // SPEC B6: joined as AccountNick
  setStatusCodes(p, codes);
  return p;
}

/** History honouring `<history maxchars|maxstanzas|seconds|since>` (XEP-0045 §7.2.14). */
function historyFor(room: Room, h: HistoryRequest | undefined): Element[] {
  let items = room.history;
  if (!h) return items;
  const stampOf = (el: Element) => Date.parse(el.getChild("delay", DELAY)?.attrs.stamp ?? "");
  if (h.since !== undefined) {
    const since = Date.parse(h.since);
    if (!Number.isNaN(since)) items = items.filter((el) => stampOf(el) > since);
  }
  if (h.seconds !== undefined) {
    const from = Date.now() - h.seconds * 1000;
    items = items.filter((el) => stampOf(el) >= from);
  }
  if (h.maxstanzas !== undefined) items = h.maxstanzas === 0 ? [] : items.slice(-h.maxstanzas);
  if (h.maxchars !== undefined) {
    if (h.maxchars === 0) return [];
    let budget = h.maxchars;
    const out: Element[] = [];
    for (let i = items.length - 1; i >= 0; i--) {
      const size = (items[i] as Element).toString().length;
      if (size > budget) break;
      budget -= size;
      out.unshift(items[i] as Element);
    }
    items = out;
  }
  return items;
}
