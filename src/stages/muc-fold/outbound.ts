// What a session sends to a managed room (SPEC B1: all of it goes out on the anchor, never on the leg).
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Room } from "./room.js";
import { resourceOf } from "../../account/jid.js";
import type { Session } from "../../chain/session.js";
import { sendTo } from "./fanout.js";
import { CARBONS, clone, errorReply, FORWARD, HINTS, isJoin } from "./xmlutil.js";
import { inRoom, type MucDeps } from "./context.js";
import { onJoin } from "./join.js";
import { onLeave } from "./leave.js";
import { anchorPresence, schedulePresence } from "./presence.js";
import { onSessionIq } from "./iq.js";

export const CARBONS_ENABLED = Symbol("mucmux.carbons");

export function onSessionStanza(m: MucDeps, account: Account, room: Room | undefined, session: Session, el: Element): void {
  if (!room) return onJoin(m, account, session, el); // only joins reach here for unmanaged rooms
  if (el.name === "presence") return onSessionPresence(m, account, room, session, el);
  if (el.name === "iq") return onSessionIq(m, account, room, session, el);
  if (el.name === "message") return onSessionMessage(m, account, room, session, el);
}

function onSessionPresence(m: MucDeps, account: Account, room: Room, session: Session, el: Element): void {
  const type = el.attrs.type;
  if (isJoin(el)) return onJoin(m, account, session, el);
  if (type === "unavailable") return onLeave(m, account, room, session, el);
  if (type !== undefined) return; // SPEC A8: never an error (or subscription) presence toward a room
  const joined = inRoom(room, session) || room.waiting.some((w) => w.session === session);
  // COMPAT(ejabberd-23.01): a presence without <x> from a non-occupant is a join there; treat it so.
  if (!joined) return onJoin(m, account, session, el);
  const nick = resourceOf(el.attrs.to ?? "");
  room.presences.set(session, el);
  if (nick !== undefined && nick !== room.nick && room.state === "joined" && !room.pendingNick) {
    // SPEC C2: nick change through the anchor; the outcome is fanned out (or the error goes to S).
    room.pendingNick = { session, nick, id: el.attrs.id };
    const p = anchorPresence(room, `${room.jid}/${nick}`);
    if (el.attrs.id) p.attrs.id = el.attrs.id;
    if (!account.anchor?.send(p)) {
      room.pendingNick = undefined;
      sendTo(session, errorReply(el, "wait", "remote-server-timeout"));
    }
    return;
  }
  schedulePresence(account, room); // SPEC C3
}

function onSessionMessage(m: MucDeps, account: Account, room: Room, session: Session, el: Element): void {
  if (el.attrs.type === "error") return; // SPEC A8: the anchor never sends an error message to a room or occupant
  const isPm = resourceOf(el.attrs.to ?? "") !== undefined && el.attrs.type !== "groupchat";
  if (el.attrs.type === "groupchat" && !inRoom(room, session) && !room.waiting.some((w) => w.session === session)) {
    // XEP-0045 §7.4: only occupants may send to the room; this session has not joined it.
    return sendTo(session, errorReply(el, "modify", "not-acceptable"));
  }
  const original = isPm ? clone(el) : undefined;
  if (isPm) {
    // SPEC A7: the anchor's private messages are never carbon-copied upstream.
    el.cnode(new Element("no-copy", { xmlns: HINTS }));
    el.cnode(new Element("private", { xmlns: CARBONS }));
  }
  if (!account.sendViaAnchor(el)) {
    el.attrs.from = session.jid ?? "";
    return sendTo(session, errorReply(el, "wait", "remote-server-timeout"));
  }
  if (original) carbonCopies(room, session, original);
}

/** SPEC C12: the other joined sessions that enabled carbons get a <sent/> copy of a private message. */
function carbonCopies(room: Room, sender: Session, msg: Element): void {
  msg.attrs.from = sender.jid ?? "";
  const bare = (sender.jid ?? "").split("/")[0] ?? "";
  for (const session of room.joined) {
    if (session === sender || !session.slots.get(CARBONS_ENABLED)) continue;
    const wrap = new Element("message", { from: bare, type: msg.attrs.type ?? "chat" });
    const inner = clone(msg);
    inner.attrs.xmlns = "jabber:client"; // inside <forwarded/> the stanza namespace must be explicit
    wrap.c("sent", { xmlns: CARBONS }).c("forwarded", { xmlns: FORWARD }).cnode(inner);
    sendTo(session, wrap);
  }
}
