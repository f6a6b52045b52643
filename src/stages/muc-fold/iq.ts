// IQs through the anchor (SPEC C9–C11), correlated by the account's IQ trackers: a session's IQ to a room
// goes out on the anchor and its answer (with the archive results of a MAM query) comes back to that
// session only; an occupant's IQ to the account goes to one joined session and its answer back to the room.
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Room } from "./room.js";
import { resourceOf } from "../../account/jid.js";
import type { Session } from "../../chain/session.js";
import { sendTo } from "./fanout.js";
import { DISCO_INFO, errorReply, PING } from "./xmlutil.js";
import { inRoom, roomOf, type MucDeps } from "./context.js";
import { RANK } from "./presence.js";
import { IqError, isArchiveQuery } from "../../protocol/iq-tracker.js";

/** An IQ from a session to R or R/* (SPEC C10), a self-ping (SPEC C9), or a session's answer (SPEC C11). */
export function onSessionIq(m: MucDeps, account: Account, room: Room, session: Session, el: Element): void {
  const type = el.attrs.type;
  if (type === "result" || type === "error") {
    // SPEC C11: a session answers an occupant's IQ that mucmux forwarded to it; anything else is dropped.
    account.sessionIqs.take(el);
    return;
  }
  const to = el.attrs.to ?? "";
  if (el.getChild("ping", PING) && resourceOf(to) === room.nick) {
    // SPEC C9 (XEP-0410): answered by mucmux for the account's own occupant JID.
    const ok = inRoom(room, session) && room.state === "joined";
    m.metrics.selfPings.inc({ result: ok ? "result" : "not-acceptable" });
    const reply = ok ? new Element("iq", { type: "result", id: el.attrs.id, from: to }) : errorReply(el, "cancel", "not-acceptable", to);
    return sendTo(session, reply);
  }
  const id = el.attrs.id;
  const archive = isArchiveQuery(el);
  const answer = (reply: Element) => {
    if (id === undefined) delete reply.attrs.id;
    else reply.attrs.id = id;
    sendTo(session, reply, { origin: "anchor" }); // SPEC C10: S's own id and to, through S's outbound chain
  };
  account.anchorIqs.request(el, (iq) => account.sendViaAnchor(iq), {
    // SPEC C14: archive results go to the session that asked, never to the room's audience.
    collect: archive ? (msg) => sendTo(session, msg, { origin: "anchor" }) : undefined,
  }).then(answer, () => {
    // Not sent (the anchor is not online), no answer in time, or the anchor's stream went down meanwhile.
    if (!session.online) return;
    const reply = errorReply(el, "wait", "remote-server-timeout", to);
    reply.attrs.to = session.jid ?? "";
    answer(reply);
  });
}

/** IQs arriving on the anchor that no pending request took. */
export function onAnchorIq(m: MucDeps, account: Account, el: Element): void {
  const type = el.attrs.type;
  if (type === "result" || type === "error") return; // an answer nobody waits for any more
  const room = roomOf(account, el.attrs.from);
  const target = room && resourceOf(el.attrs.from ?? "") !== undefined ? mostAvailable(room) : undefined;
  if (target?.jid) {
    // SPEC C11: an occupant's IQ to the account's occupant JID goes to one joined session.
    const id = el.attrs.id;
    const from = el.attrs.from;
    el.attrs.to = target.jid;
    account.sessionIqs.request(el, (iq) => { target.deliver(iq, { origin: "anchor" }); return true; }).then((reply) => {
      if (id === undefined) delete reply.attrs.id;
      else reply.attrs.id = id;
      if (from === undefined) delete reply.attrs.to;
      else reply.attrs.to = from;
      account.sendViaAnchor(reply);
    }, (err: unknown) => {
      // The session went away before answering: the occupant hears so, as the server would tell it of a
      // resource that is gone. No answer in time: nothing, as the server would not answer either.
      if (!(err instanceof IqError) || err.condition !== "cancelled" || account.disposed) return;
      const gone = errorReply(el, "cancel", "service-unavailable");
      delete gone.attrs.from;
      if (id === undefined) delete gone.attrs.id;
      else gone.attrs.id = id;
      if (from === undefined) delete gone.attrs.to;
      else gone.attrs.to = from;
      account.sendViaAnchor(gone);
    });
    return;
  }
  account.anchor?.send(localAnswer(el)); // SPEC A8: IQ errors are allowed
}

function localAnswer(el: Element): Element {
  const base = { id: el.attrs.id, to: el.attrs.from };
  if (el.attrs.type === "get" && el.getChild("ping", PING)) return new Element("iq", { type: "result", ...base });
  if (el.attrs.type === "get" && el.getChild("query", DISCO_INFO)) {
    const iq = new Element("iq", { type: "result", ...base });
    const q = iq.c("query", { xmlns: DISCO_INFO });
    q.c("identity", { category: "client", type: "pc", name: "mucmux" });
    for (const v of [DISCO_INFO, PING]) q.c("feature", { var: v });
    return iq;
  }
  const err = errorReply(el, "cancel", "service-unavailable");
  delete err.attrs.from;
  return err;
}

function mostAvailable(room: Room): Session | undefined {
  let best: Session | undefined;
  let rank = -1;
  for (const session of room.joined) {
    const r = RANK[room.presences.get(session)?.getChildText("show") ?? ""] ?? 4;
    if (r > rank) { rank = r; best = session; }
  }
  return best;
}
