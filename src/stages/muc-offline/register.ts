// Room registration with the offline field (SPEC D2–D4). The session's IQ is seen on its way out (before
// the MUC stage routes it via the anchor, or on the session's leg for a room not managed), and its answer
// on the way back, matched by the session's own id.
import type { Element } from "@xmpp/xml";
import { DROP, type StageResult, type StanzaContext } from "../../chain/stage.js";
import type { Account } from "../../account/account.js";
import type { Link } from "../../stream/link.js";
import { bareKey } from "../../account/jid.js";
import { accountKey, dropRegistration, saveRegistration, type OfflineContext } from "./context.js";
import { fillNick, offerForm, readSubmission, stripOfflineField } from "./form.js";
import { domainOf, errorCondition, iqError, iqResult, REGISTER, XDATA } from "./xml.js";

type Pending =
  | { kind: "get"; room: string }
  | { kind: "set"; room: string; offline: boolean | undefined; nick: string | undefined }
  | { kind: "remove"; room: string };

const PENDING = Symbol("mucmux.offline.register");
const MAX_PENDING = 32;
/** Upstream answers that mean "this server keeps no room registrations for you" (SPEC D2, D3). */
const LOCAL_OK = new Set(["registration-required", "service-unavailable"]);

function pendingOf(link: Link): Map<string, Pending> {
  let map = link.slots.get(PENDING) as Map<string, Pending> | undefined;
  if (!map) link.slots.set(PENDING, (map = new Map()));
  return map;
}

export function isPendingAnswer(link: Link, id: string | undefined): boolean {
  return id !== undefined && (link.slots.get(PENDING) as Map<string, Pending> | undefined)?.has(id) === true;
}

function track(link: Link, id: string, p: Pending): void {
  const map = pendingOf(link);
  map.delete(id);
  map.set(id, p);
  if (map.size > MAX_PENDING) map.delete(map.keys().next().value as string);
}

/** Is this bare JID a room? Managed by the account, flagged, or on a domain seen to be a MUC service. */
function isRoom(ctx: OfflineContext, account: Account, room: string): boolean {
  if (account.rooms.has(room) || ctx.state(account).flags.has(room)) return true;
  const domain = domainOf(room);
  if (ctx.mucDomains.has(domain)) return true;
  for (const key of account.rooms.keys()) if (domainOf(key) === domain) return true;
  return false;
}

/** The nick mucmux knows for the account in a room: registered (stored), else AccountNick. */
function knownNick(ctx: OfflineContext, account: Account, room: string): string | undefined {
  return ctx.state(account).flags.get(room)?.nick || account.rooms.get(room)?.nick;
}

/** c2s: a register IQ from a session to a room (`to` is a bare JID with a localpart). */
export function onRegisterRequest(ctx: OfflineContext, s: StanzaContext, account: Account, link: Link): StageResult {
  const el = s.stanza;
  const id = el.attrs.id;
  const room = bareKey(el.attrs.to ?? "");
  const query = el.getChild("query", REGISTER);
  if (id === undefined || !query || !isRoom(ctx, account, room)) return;
  if (el.attrs.type === "get") return track(link, id, { kind: "get", room });
  if (query.getChild("remove")) {
    const reg = ctx.state(account).flags.get(room);
    if (reg && !reg.createdViaMucmux) {
      // SPEC D4: a registration mucmux did not create upstream is answered here, never forwarded.
      void ctx.state(account).serial(async () => {
        const ok = await dropRegistration(ctx, account, room);
        s.reply(ok ? iqResult(id, el.attrs.to, link.jid) : storeFailed(id, el.attrs.to, link.jid));
      });
      return DROP;
    }
    return track(link, id, { kind: "remove", room });
  }
  const form = query.getChild("x", XDATA);
  if (!form) return;
  const sub = readSubmission(form);
  if (sub.offline === "invalid") {
    s.reply(iqError(id, el.attrs.to, link.jid, "modify", "bad-request", "the offline field takes 1, true, 0 or false"));
    return DROP;
  }
  stripOfflineField(form); // SPEC D3
  const nick = sub.nick ?? knownNick(ctx, account, room);
  if (sub.offline !== undefined && !sub.nick && nick) fillNick(form, nick);
  track(link, id, { kind: "set", room, offline: sub.offline, nick });
}

/** s2c: the answer to a tracked register IQ. */
export function onRegisterAnswer(ctx: OfflineContext, s: StanzaContext, account: Account, link: Link): StageResult {
  const el = s.stanza;
  const map = pendingOf(link);
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
  s.stanza.children = s.stanza.children.filter((c) => typeof c === "string" || c.attrs.xmlns !== REGISTER);
  s.stanza.cnode(query);
}

/** The flag changed: a flagged room must be joined (SPEC C5), an unflagged one no longer kept. */
function afterChange(ctx: OfflineContext, account: Account, room: string): void {
  const reg = ctx.state(account).flags.get(room);
  if (reg?.offline) {
    ctx.state(account).noRejoin.delete(room);
    if (!account.rooms.has(room)) ctx.accounts.keepRoomJoined(account, room, reg.nick || account.bare.split("@")[0] || "user");
  } else {
    ctx.accounts.keepReleased(account, room);
  }
}

function storeFailed(id: string | undefined, from: string | undefined, to: string | undefined): Element {
  return iqError(id, from, to, "wait", "internal-server-error", "the offline setting could not be stored; try again later");
}
