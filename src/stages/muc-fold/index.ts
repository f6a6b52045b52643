// The account-level MUC stage (SPEC A7–A9, B, C): sessions' room traffic goes through the account's
// anchor; the anchor's room traffic is fanned out to the sessions that joined. Its room state lives in this
// folder (room.ts, per account in the account's slot); other stages read it through the rooms view.
import { Element } from "@xmpp/xml";
import { DROP, type ChainOrigin, type Direction, type Stage, type StanzaContext } from "../../chain/stage.js";
import type { Session } from "../../chain/session.js";
import type { Account } from "../../account/account.js";
import { bareKey, bareOf } from "../../account/jid.js";
import { CARBONS, FORWARD, isJoin, STANZAS } from "./xmlutil.js";
import { dropRoom, localUnavailable, peekRooms, roomOf, type MucDeps } from "./context.js";
import { onSessionStanza, CARBONS_ENABLED } from "./outbound.js";
import { onAnchorStanza } from "./inbound.js";
import { onSessionGone, startLinger } from "./leave.js";
import { rejoinAll } from "./rejoin.js";
import { failJoin, joinKept } from "./join.js";
import { fanOut } from "./fanout.js";
import type { Room } from "./room.js";

export function createMucFoldStage(m: MucDeps): Stage {
  const { events } = m;
  events.on("anchor-online", ({ account, reconnected }) => { if (reconnected) rejoinAll(m, account); });
  events.on("anchor-down", ({ account, permanent }) => onAnchorDown(m, account, permanent));
  events.on("session-closed", ({ account, session }) => {
    if (session.jid !== undefined) account.sessionIqs.cancelTo(session.jid); // SPEC C11: it will not answer any more
    onSessionGone(m, account, session);
  });
  events.on("account-busy?", ({ account }) => (peekRooms(account)?.size ?? 0) > 0);
  events.on("account-disposed", ({ account }) => {
    for (const room of peekRooms(account)?.values() ?? []) room.clearTimers();
  });
  events.on("room-keep", ({ account, room, nick }) => { joinKept(m, account, room, nick); return true; });
  // SPEC C5: a room kept only by a keeper (the offline flag was cleared) lingers like an implicit departure.
  events.on("room-release", ({ account, room: jid }) => {
    const room = peekRooms(account)?.get(bareKey(jid));
    if (room?.state === "joined" && room.joined.size === 0 && room.burst.size === 0 && room.waiting.length === 0) startLinger(m, account, room);
  });
  m.metrics.setRoomStateSource(() => roomStates(m));
  m.views.rooms = {
    get: (account, jid) => {
      const room = roomOf(account, jid);
      return room ? viewOf(room) : undefined;
    },
    joined: (account) => [...(peekRooms(account)?.values() ?? [])].filter((r) => r.state === "joined").map(viewOf),
  };

  /**
   * A presence that joins a room: with <x xmlns=muc>, or a groupchat 1.0 join (SPEC B9: a plain
   * available presence to room/nick) on a MUC service, or one that may be, while the services of the account's
   * domain are still being discovered (c2s then waits for discovery).
   */
  const joins = (el: Element, account: Account): boolean => {
    if (isJoin(el)) return true;
    const service = occupantDomain(el);
    if (service === undefined) return false;
    const services = m.views.services;
    if (services.isService(service)) return true;
    // Not known (yet): a contact on the account's own domain is never a room; elsewhere wait for discovery.
    return service.toLowerCase() !== account.domain.toLowerCase() && !services.settled(account.domain);
  };

  return {
    name: "muc-fold",
    wants(el: Element, direction: Direction, session: Session, origin: ChainOrigin): boolean {
      if (direction === "s2c") {
        // Only what the session's own leg relays is filtered; room traffic and local answers are this stage's own.
        if (origin !== "upstream") return false;
        const account = m.accounts.forSession(session);
        return account?.anchor !== undefined && (isFromAnchor(el, account.bare) || (el.name === "message" && isCarbon(el)));
      }
      const account = m.accounts.forSession(session);
      if (!account) return false;
      const to = el.attrs.to;
      if (to === undefined) return el.name === "iq" && el.attrs.type === "set" && !!el.getChild("enable", CARBONS);
      return peekRooms(account)?.has(bareKey(to)) === true || joins(el, account);
    },
    c2s(ctx: StanzaContext) {
      const session = ctx.session;
      const el = ctx.stanza;
      if (el.attrs.to === undefined) {
        session.slots.set(CARBONS_ENABLED, true); // carbons enable request; the server answers it
        return;
      }
      const account = m.accounts.forSession(session);
      if (!account) return;
      const room = roomOf(account, el.attrs.to);
      if (!room && !isJoin(el)) {
        // A groupchat 1.0 join, or a presence to room/nick on a domain not known to be a MUC service yet.
        const services = m.views.services;
        const fold = () => {
          // The session may have closed meanwhile (its account record may even be gone): nothing to join for.
          if (!session.online || m.accounts.forSession(session) !== account) return DROP;
          if (!services.isService(occupantDomain(el) ?? "")) return; // not a room: relayed as it is
          onSessionStanza(m, account, roomOf(account, el.attrs.to), session, el);
          return DROP;
        };
        return services.settled(account.domain) ? fold() : services.ready(account.domain, DISCOVERY_WAIT_MS).then(fold);
      }
      onSessionStanza(m, account, room, session, el);
      return DROP; // SPEC B1: handled on the anchor (or answered locally)
    },
    s2c(ctx: StanzaContext) {
      const account = m.accounts.forSession(ctx.session);
      // SPEC A7: the anchor is invisible, also to the account's own sessions (ejabberd tells them when it goes).
      if (account && isFromAnchor(ctx.stanza, account.bare)) return DROP;
      // SPEC C12: upstream carbons of anchor traffic never reach sessions.
      const fwd = forwardedOf(ctx.stanza);
      if (!account || !fwd) return;
      const anchorJid = account.anchor?.jid;
      const rooms = peekRooms(account);
      for (const jid of [fwd.attrs.to, fwd.attrs.from]) {
        if (jid === undefined) continue;
        if (jid === anchorJid || rooms?.has(bareKey(bareOf(jid)))) return DROP;
      }
    },
    anchor(account: Account, el: Element) {
      onAnchorStanza(m, account, el);
    },
  };
}

/** How long a possible groupchat 1.0 join waits for the discovery of the account's MUC services (SPEC B10). */
const DISCOVERY_WAIT_MS = 5000;

/** The domain of an available presence's `to` of the form local@domain/resource, if it is one. */
function occupantDomain(el: Element): string | undefined {
  if (el.name !== "presence" || el.attrs.type !== undefined) return undefined;
  const to = el.attrs.to ?? "";
  const at = to.indexOf("@");
  const slash = to.indexOf("/");
  return at > 0 && slash > at + 1 && slash < to.length - 1 ? to.slice(at + 1, slash) : undefined;
}

function viewOf(room: Room) {
  return { jid: room.jid, nick: room.nick, state: room.state, occupied: room.joined.size + room.burst.size > 0 };
}

function onAnchorDown(m: MucDeps, account: Account, permanent: boolean): void {
  const rooms = peekRooms(account);
  if (!rooms) return;
  const now = new Date().toISOString();
  for (const room of [...rooms.values()]) {
    room.downAt ??= now;
    if (room.state === "joining" && !room.self) {
      const e = new Element("presence", { type: "error" });
      e.c("error", { type: "wait" }).c(permanent ? "not-authorized" : "remote-server-timeout", { xmlns: STANZAS });
      failJoin(m, account, room, e);
    } else if (permanent) {
      // The server refuses the account's credentials now (password changed): the anchor cannot come
      // back, so joined sessions learn they are out (XEP-0045 333: technical reasons).
      fanOut(localUnavailable(room, undefined, undefined, "333"), room.audience(), m.metrics, { rewriteItemJid: true, origin: "local" });
      dropRoom(m, account, room);
    }
  }
}

/** From one of this account's anchors (resource `mucmux-<8 hex>`, SPEC A7). */
function isFromAnchor(el: Element, bare: string): boolean {
  const from = el.attrs.from;
  return from !== undefined && from.length === bare.length + 16 && from.startsWith("/mucmux-", bare.length) &&
    from.slice(0, bare.length).toLowerCase() === bare.toLowerCase();
}

function isCarbon(el: Element): boolean {
  return !!(el.getChild("received", CARBONS) ?? el.getChild("sent", CARBONS));
}

function forwardedOf(el: Element): Element | undefined {
  const c = el.getChild("received", CARBONS) ?? el.getChild("sent", CARBONS);
  return c?.getChild("forwarded", FORWARD)?.getChild("message");
}

function* roomStates(m: MucDeps): Iterable<[string, number]> {
  const counts = new Map<string, number>();
  for (const account of m.accounts.values()) {
    for (const room of peekRooms(account)?.values() ?? []) {
      const state = room.state === "joined" && room.joined.size === 0 && room.burst.size === 0 ? "kept" : room.state;
      counts.set(state, (counts.get(state) ?? 0) + 1);
    }
  }
  yield* counts;
}

