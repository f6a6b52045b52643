// IQs through the anchor (SPEC C9–C11): id mapping both ways, self-pings answered locally.
import { Element } from "@xmpp/xml";
import type { Account } from "../../account/account.js";
import type { Room } from "../../account/room.js";
import { resourceOf } from "../../account/jid.js";
import type { Link } from "../../stream/link.js";
import { sendTo } from "./fanout.js";
import { DISCO_INFO, errorReply, PING } from "./xmlutil.js";
import { freshId, inRoom, roomOf, viaAnchor, type MucDeps } from "./context.js";
import { RANK } from "./presence.js";

const IQ_TTL_MS = 120_000;

function sweep<T extends { at: number }>(map: Map<string, T>): void {
  if (map.size < 256) return;
  const cutoff = Date.now() - IQ_TTL_MS;
  for (const [k, v] of map) if (v.at < cutoff) map.delete(k);
}

/** An IQ from session S to R or R/* (SPEC C10), or a self-ping (SPEC C9). */
export function onSessionIq(m: MucDeps, account: Account, room: Room, link: Link, el: Element): void {
  const type = el.attrs.type;
  if (type === "result" || type === "error") {
    // SPEC C11: a session answers an occupant's IQ that mucmux forwarded to it.
    const entry = el.attrs.id === undefined ? undefined : account.inboundIqs.get(el.attrs.id);
    if (!entry) return;
    account.inboundIqs.delete(el.attrs.id as string);
    el.attrs.id = entry.id;
    el.attrs.to = entry.from;
    viaAnchor(account, el);
    return;
  }
  const to = el.attrs.to ?? "";
  if (el.getChild("ping", PING) && resourceOf(to) === room.nick) {
    // SPEC C9 (XEP-0410): answered by mucmux for the account's own occupant JID.
    const ok = inRoom(room, link) && room.state === "joined";
    m.metrics.selfPings.inc({ result: ok ? "result" : "not-acceptable" });
    const reply = ok ? new Element("iq", { type: "result", id: el.attrs.id, from: to }) : errorReply(el, "cancel", "not-acceptable", to);
    return sendTo(link, reply);
  }
  const id = freshId("mmi");
  sweep(account.iqs);
  account.iqs.set(id, { link, id: el.attrs.id ?? "", at: Date.now() });
  const original = el.attrs.id;
  el.attrs.id = id;
  if (!viaAnchor(account, el)) {
    account.iqs.delete(id);
    el.attrs.id = original ?? "";
    el.attrs.from = link.jid ?? "";
    link.deliverThroughChain(errorReply(el, "wait", "remote-server-timeout")); // like any answer (SPEC C10)
  }
}

/** IQs arriving on the anchor. */
export function onAnchorIq(m: MucDeps, account: Account, el: Element): void {
  const type = el.attrs.type;
  if (type === "result" || type === "error") {
    const entry = el.attrs.id === undefined ? undefined : account.iqs.get(el.attrs.id);
    if (!entry) return;
    account.iqs.delete(el.attrs.id as string);
    el.attrs.id = entry.id;
    el.attrs.to = entry.link.jid ?? "";
    // SPEC C10: S's own id and to; through S's s2c chain so other stages (offline forms) can see answers.
    return entry.link.deliverThroughChain(el);
  }
  const room = roomOf(account, el.attrs.from);
  const target = room && resourceOf(el.attrs.from ?? "") !== undefined ? mostAvailable(room) : undefined;
  if (target) {
    // SPEC C11: an occupant's IQ to the account's occupant JID goes to one joined session.
    const id = freshId("mmq");
    sweep(account.inboundIqs);
    account.inboundIqs.set(id, { id: el.attrs.id ?? "", from: el.attrs.from ?? "", at: Date.now() });
    el.attrs.id = id;
    return sendTo(target, el);
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

function mostAvailable(room: Room): Link | undefined {
  let best: Link | undefined;
  let rank = -1;
  for (const link of room.joined) {
    const r = RANK[room.presences.get(link)?.getChildText("show") ?? ""] ?? 4;
    if (r > rank) { rank = r; best = link; }
  }
  return best;
}

