// Room registration with the offline field (SPEC D2–D4). The session's IQ is seen on its way out (before
// the MUC stage routes it via the anchor, or on the session's leg for a room not managed), and its answer
// on the way back, matched by the session's own id.
import type { Element } from "@xmpp/xml";
import { DROP, type StageResult, type StanzaContext } from "../../chain/stage.js";
import type { Account } from "../../account/account.js";
import { LRUCache } from "lru-cache";
import type { Session } from "../../chain/session.js";
import { bareKey } from "../../account/jid.js";
import { accountKey, dropRegistration, saveRegistration, type OfflineContext } from "./context.js";
import { fillNick, offerForm, readSubmission, stripOfflineField } from "./form.js";
import { domainOf, errorCondition, iqError, iqResult, REGISTER, XDATA } from "./xml.js";

type Pending =
  | { kind: "get"; room: string }
  | { kind: "set"; room: string; offline: boolean | undefined; nick: string | undefined }
  | { kind: "remove"; room: string };

const PENDING = Symbol("mucmux.offline.register");
/** Register IQs of one session waiting for their answer; the oldest is forgotten beyond this. */
const MAX_PENDING = 32;
/** How long a registration to a possible room waits for the discovery of the account's MUC services. */
const DISCOVERY_WAIT_MS = 5000;
/** Upstream answers that mean "this server keeps no room registrations for you" (SPEC D2, D3). */
const LOCAL_OK = new Set(["registration-required", "service-unavailable"]);

type PendingMap = LRUCache<string, Pending>;

function pendingOf(session: Session): PendingMap {
  let map = session.slots.get(PENDING) as PendingMap | undefined;
  if (!map) session.slots.set(PENDING, (map = new LRUCache<string, Pending>({ max: MAX_PENDING })));
  return map;
}

export function isPendingAnswer(session: Session, id: string | undefined): boolean {
  return id !== undefined && (session.slots.get(PENDING) as PendingMap | undefined)?.has(id) === true;
}

function track(session: Session, id: string, p: Pending): void {
  pendingOf(session).set(id, p);
}

/** Is this bare JID a room? Managed by the account, flagged, or on a MUC service (discovered, configured or seen). */
function isRoom(ctx: OfflineContext, account: Account, room: string): boolean {
  if (ctx.views.rooms.get(account, room) || ctx.state(account).flags.has(room)) return true;
  return ctx.views.services.isService(domainOf(room));
}

/** The nick mucmux knows for the account in a room: registered (stored), else AccountNick. */
function knownNick(ctx: OfflineContext, account: Account, room: string): string | undefined {
  return ctx.state(account).flags.get(room)?.nick || ctx.views.rooms.get(account, room)?.nick;
}

/** c2s: a register IQ from a session to a room (`to` is a bare JID with a localpart). */
export function onRegisterRequest(ctx: OfflineContext, s: StanzaContext, account: Account, session: Session): StageResult {
  const el = s.stanza;
  const room = bareKey(el.attrs.to ?? "");
  const query = el.getChild("query", REGISTER);
  if (el.attrs.id === undefined || !query) return;
  if (isRoom(ctx, account, room)) return onRoomRegistration(ctx, s, account, session, room, query);
  // Not known to be a room yet: right after a restart the account's MUC services may still be being
  // discovered (SPEC B10). Wait for that (bounded); a registration with the offline field is never passed on
  // unstored (SPEC D9).
  const decide = (): StageResult => {
    // The stanza as it is now (held stanzas may have been replaced by a copy meanwhile).
    const now = s.stanza.getChild("query", REGISTER);
    if (!now) return;
    if (isRoom(ctx, account, room)) return onRoomRegistration(ctx, s, account, session, room, now);
    const form = now.getChild("x", XDATA);
    if (!form || readSubmission(form).offline === undefined) return; // not ours: relayed as it is
    s.reply(iqError(el.attrs.id, el.attrs.to, session.jid, "modify", "bad-request",
      "the offline setting applies to rooms of a MUC service of this server only"));
    return DROP;
  };
  const services = ctx.views.services;
  return services.settled(account.domain) ? decide() : services.ready(account.domain, DISCOVERY_WAIT_MS).then(decide);
}

function onRoomRegistration(ctx: OfflineContext, s: StanzaContext, account: Account, session: Session, room: string, query: Element): StageResult {
  const el = s.stanza;
  const id = el.attrs.id as string;
  if (el.attrs.type === "get") return track(session, id, { kind: "get", room });
  if (query.getChild("remove")) {
    const reg = ctx.state(account).flags.get(room);
    if (reg && !reg.createdViaMucmux) {
      // SPEC D4: a registration mucmux did not create upstream is answered here, never forwarded.
      void ctx.state(account).serial(async () => {
        const ok = await dropRegistration(ctx, account, room);
        s.reply(ok ? iqResult(id, el.attrs.to, session.jid) : storeFailed(id, el.attrs.to, session.jid));
      });
      return DROP;
    }
    return track(session, id, { kind: "remove", room });
  }
  const form = query.getChild("x", XDATA);
  if (!form) return;
  const sub = readSubmission(form);
  if (sub.offline === "invalid") {
    s.reply(iqError(id, el.attrs.to, session.jid, "modify", "bad-request", "the offline field takes 1, true, 0 or false"));
    return DROP;
  }
  stripOfflineField(form); // SPEC D3
  const nick = sub.nick ?? knownNick(ctx, account, room);
  if (sub.offline !== undefined && !sub.nick && nick) fillNick(form, nick);
  track(session, id, { kind: "set", room, offline: sub.offline, nick });
}

/** s2c: the answer to a tracked register IQ. */
export function onRegisterAnswer(ctx: OfflineContext, s: StanzaContext, account: Account, session: Session): StageResult {
  const el = s.stanza;
  const map = pendingOf(session);
  const p = map.get(el.attrs.id ?? "");
  if (!p || bareKey(el.attrs.from ?? "") !== p.room) return;
  map.delete(el.attrs.id ?? "");
  const cond = el.attrs.type === "error" ? errorCondition(el) : undefined;
  // Upstream keeps no registration for this user: answered locally (SPEC D2/D3, offline.localRegistration).
  const local = cond !== undefined && LOCAL_OK.has(cond) && ctx.config.offline.localRegistration;
  if (p.kind === "get") {
    if (el.attrs.type === "result") return void answerGet(ctx, s, account, p.room, el.getChild("query", REGISTER));
    if (!local) return; // forbidden, not-allowed and everything else pass through unchanged
    s.stanza = iqResult(el.attrs.id, el.attrs.from, el.attrs.to);
    return void answerGet(ctx, s, account, p.room, undefined);
  }
  if (el.attrs.type !== "result" && !local) return;
  if (p.kind === "set" && p.offline === undefined) return; // SPEC D3: no field, the flag stays
  const answer = iqResult(el.attrs.id, el.attrs.from, el.attrs.to);
  const st = ctx.state(account);
  void st.serial(async () => {
    let ok: boolean;
    if (p.kind === "remove") {
      ok = await dropRegistration(ctx, account, p.room); // SPEC D4
    } else {
      const before = st.flags.get(p.room);
      const createdViaMucmux = (before?.createdViaMucmux ?? false) || (el.attrs.type === "result" && !st.preRegistered.has(p.room));
      ok = await saveRegistration(ctx, account, {
        account: accountKey(account), room: p.room, nick: p.nick ?? before?.nick ?? "", offline: p.offline === true, createdViaMucmux,
      });
    }
    s.forward(ok ? answer : storeFailed(el.attrs.id, el.attrs.from, el.attrs.to));
    if (ok) afterChange(ctx, account, p.room);
  });
  return DROP;
}

function answerGet(ctx: OfflineContext, s: StanzaContext, account: Account, room: string, upstream: Element | undefined): void {
  const st = ctx.state(account);
  const registered = !!upstream?.getChild("registered");
  if (registered) st.preRegistered.add(room);
  else st.preRegistered.delete(room);
  const nick = upstream?.getChildText("username")?.trim() || knownNick(ctx, account, room);
  const query = offerForm(upstream, { offline: st.flags.get(room)?.offline === true, nick });
  const answer = s.edit();
  answer.children = answer.children.filter((c) => typeof c === "string" || c.attrs.xmlns !== REGISTER);
  answer.cnode(query);
}

/** The flag changed: a flagged room must be joined (SPEC C5), an unflagged one no longer kept. */
function afterChange(ctx: OfflineContext, account: Account, room: string): void {
  const reg = ctx.state(account).flags.get(room);
  if (reg?.offline) {
    ctx.state(account).noRejoin.delete(room);
    if (!ctx.views.rooms.get(account, room)) ctx.events.emit("room-keep", { account, room, nick: reg.nick || account.bare.split("@")[0] || "user" });
  } else {
    ctx.events.emit("room-release", { account, room });
  }
}

function storeFailed(id: string | undefined, from: string | undefined, to: string | undefined): Element {
  return iqError(id, from, to, "wait", "internal-server-error", "the offline setting could not be stored; try again later");
}
