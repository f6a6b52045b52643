// The account-level MUC stage (SPEC A7–A9, B, C): sessions' room traffic goes through the account's
// anchor; the anchor's room traffic is fanned out to the sessions that joined.
import type { Element } from "@xmpp/xml";
import { DROP, type Direction, type SessionView, type Stage, type StanzaContext } from "../../chain/stage.js";
import type { Link } from "../../stream/link.js";
import { bareKey, bareOf } from "../../account/jid.js";
import { CARBONS, FORWARD, isJoin } from "./xmlutil.js";
import type { MucDeps } from "./context.js";
import { onSessionStanza, CARBONS_ENABLED } from "./outbound.js";
import { onAnchorStanza } from "./inbound.js";
import { onSessionGone, startLinger } from "./leave.js";
import { rejoinAll } from "./rejoin.js";
import { failJoin, joinKept } from "./join.js";
import { fanOut } from "./fanout.js";
import { dropRoom, localUnavailable } from "./context.js";
import { Element as El } from "@xmpp/xml";

export function createMucFoldStage(m: MucDeps): Stage {
  m.accounts.addHandlers({
    onStanza: (account, el) => onAnchorStanza(m, account, el),
    onOnline: (account, reconnected) => { if (reconnected) rejoinAll(m, account); },
    onDown: (account, permanent) => {
      const now = new Date().toISOString();
      for (const room of [...account.rooms.values()]) {
        room.downAt ??= now;
        if (room.state === "joining" && !room.self) {
          const e = new El("presence", { type: "error" });
          e.c("error", { type: "wait" }).c(permanent ? "not-authorized" : "remote-server-timeout", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" });
          failJoin(m, account, room, e);
        } else if (permanent) {
          // The server refuses the account's credentials now (password changed): the anchor cannot come
          // back, so joined sessions learn they are out (XEP-0045 333: technical reasons).
          fanOut(localUnavailable(room, undefined, undefined, "333"), room.audience(), m.metrics, { rewriteItemJid: true });
          dropRoom(m, account, room);
        }
      }
    },
    onSessionClosed: (account, link) => onSessionGone(m, account, link),
  });
  m.metrics.setRoomStateSource(() => roomStates(m));
  m.accounts.provideRoomJoiner((account, roomJid, nick) => joinKept(m, account, roomJid, nick));
  // SPEC C5: a room kept only by a keeper (the offline flag was cleared) lingers like an implicit departure.
  m.accounts.provideKeepReleaser((account, roomJid) => {
    const room = account.rooms.get(bareKey(roomJid));
    if (room?.state === "joined" && room.joined.size === 0 && room.burst.size === 0 && room.waiting.length === 0) startLinger(m, account, room);
  });

  const linkOf = (s: SessionView) => s as Link;
  return {
    name: "muc-fold",
    wants(el: Element, direction: Direction, session: SessionView): boolean {
      const account = m.accounts.forSession(linkOf(session));
      if (!account) return false;
      if (direction === "s2c") return account.anchor !== undefined && (isFromAnchor(el, account.bare) || (el.name === "message" && isCarbon(el)));
      const to = el.attrs.to;
      if (to === undefined) return el.name === "iq" && el.attrs.type === "set" && !!el.getChild("enable", CARBONS);
      return account.rooms.has(bareKey(to)) || isJoin(el);
    },
    c2s(ctx: StanzaContext) {
      const link = linkOf(ctx.session);
      const el = ctx.stanza;
      if (el.attrs.to === undefined) {
        link.slots.set(CARBONS_ENABLED, true); // carbons enable request; the server answers it
        return;
      }
      const account = m.accounts.forSession(link);
      if (!account) return;
      onSessionStanza(m, account, account.rooms.get(bareKey(el.attrs.to)), link, el);
      return DROP; // SPEC B1: handled on the anchor (or answered locally)
    },
    s2c(ctx: StanzaContext) {
      const account = m.accounts.forSession(linkOf(ctx.session));
      // SPEC A7: the anchor is invisible, also to the account's own sessions (ejabberd tells them when it goes).
      if (account && isFromAnchor(ctx.stanza, account.bare)) return DROP;
      // SPEC C12: upstream carbons of anchor traffic never reach sessions.
      const fwd = forwardedOf(ctx.stanza);
      if (!account || !fwd) return;
      const anchorJid = account.anchor?.jid;
      for (const jid of [fwd.attrs.to, fwd.attrs.from]) {
        if (jid === undefined) continue;
        if (jid === anchorJid || account.rooms.has(bareKey(bareOf(jid)))) return DROP;
      }
    },
  };
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
    for (const room of account.rooms.values()) {
      const state = room.state === "joined" && room.joined.size === 0 && room.burst.size === 0 ? "kept" : room.state;
      counts.set(state, (counts.get(state) ?? 0) + 1);
    }
  }
  yield* counts;
}
