// MUC offline delivery (SPEC D): the Tigase `{http://tigase.org/protocol/muc}offline` registration
// field, kept durably. Ordered before the MUC stage (src/stages/index.ts), so that c2s it sees a session's
// register IQ before the MUC stage routes it via the anchor, and s2c it sees the answer after the MUC stage
// mapped it back to the session. It reaches rooms and other stages only through events and read-only views.
import type { Element } from "@xmpp/xml";
import type { ChainOrigin, Direction, Stage, StanzaContext } from "../../chain/stage.js";
import type { Session } from "../../chain/session.js";
import type { Account } from "../../account/account.js";
import { bareKey } from "../../account/jid.js";
import { createContext, dropRegistration, ensureLoaded, type OfflineContext, type OfflineDeps } from "./context.js";
import { isPendingAnswer, onRegisterAnswer, onRegisterRequest } from "./register.js";
import { extendDiscoInfo } from "./disco.js";
import { onUnjoined } from "./delivery.js";
import { onBroadcastPresence, onResumed } from "./catchup.js";
import { createArchive, type Archive } from "./archive.js";
import { DISCO_INFO, REGISTER } from "./xml.js";

const NO_REJOIN = ["307", "321", "322"];

export function createMucOfflineStage(deps: OfflineDeps): Stage {
  const ctx = createContext(deps);
  for (const reason of ["cap_account", "cap_room", "ttl", "store_error", "duplicate"]) ctx.metrics.offlineDropped.inc({ reason }, 0);
  ctx.metrics.setOfflineQueueSource(async () => ctx.store()?.queueDepth(Date.now()));
  const archive = createArchive(ctx);
  subscribe(ctx, archive);

  return {
    name: "muc-offline",
    wants(el: Element, direction: Direction, session: Session, _origin: ChainOrigin): boolean {
      if (direction === "c2s") {
        if (el.name === "presence") return el.attrs.to === undefined;
        const t = el.attrs.type;
        const to = el.attrs.to;
        if (el.name !== "iq" || to === undefined || to.includes("/")) return false;
        return ((t === "get" || t === "set") && to.includes("@") && !!el.getChild("query", REGISTER)) ||
          (t === "get" && !!el.getChild("query", DISCO_INFO));
      }
      if (el.name !== "iq") return false;
      if (el.attrs.type === "error") return isPendingAnswer(session, el.attrs.id);
      return el.attrs.type === "result" && (isPendingAnswer(session, el.attrs.id) || !!el.getChild("query", DISCO_INFO));
    },
    c2s(s: StanzaContext) {
      const account = ctx.accounts.forSession(s.session);
      if (!account) return;
      if (s.stanza.name === "presence") return onBroadcastPresence(ctx, account, s.session, s.stanza);
      if (s.stanza.getChild("query", DISCO_INFO)) return noteDiscoQuestion(s.session, s.stanza);
      return onRegisterRequest(ctx, s, account, s.session);
    },
    s2c(s: StanzaContext) {
      const account = ctx.accounts.forSession(s.session);
      if (!account) return;
      if (isPendingAnswer(s.session, s.stanza.attrs.id)) {
        const result = onRegisterAnswer(ctx, s, account, s.session);
        if (result !== undefined) return result;
      }
      if (s.stanza.attrs.type === "result" && s.stanza.getChild("query", DISCO_INFO)) {
        // SPEC D1. Only an answer to this session's own question teaches a MUC service (SPEC B10): an
        // unsolicited result could name any domain.
        const asked = wasAsked(s.session, s.stanza);
        extendDiscoInfo(s.edit(), (domain) => { if (asked) ctx.views.services.learn(domain); });
      }
    },
    anchor(account: Account, el: Element) {
      archive.onAnchorStanza(account, el); // bookkeeping only: never takes a stanza from the MUC stage
    },
  };
}

const DISCO_ASKED = Symbol("mucmux.offline.disco-asked");
/** disco#info questions of one session waiting for their answer (id → asked JID); the oldest is forgotten beyond this. */
const MAX_DISCO_ASKED = 32;

/**
 * Kept in insertion order, the newest last: a question leaves at its answer, so that order is the least recently used
 * one. A Map only while questions are pending, not an LRUCache for the life of the session: every client asks its
 * server at login, and an LRUCache of 32 costs 2.4 KiB (memory per idle session).
 */
function noteDiscoQuestion(session: Session, iq: Element): void {
  const id = iq.attrs.id;
  if (id === undefined) return;
  let asked = session.slots.get(DISCO_ASKED) as Map<string, string> | undefined;
  if (!asked) session.slots.set(DISCO_ASKED, (asked = new Map()));
  asked.delete(id); // an id used again is the newest question
  asked.set(id, (iq.attrs.to ?? "").toLowerCase());
  if (asked.size > MAX_DISCO_ASKED) asked.delete(asked.keys().next().value as string);
}

/** Is this disco#info result the answer to a question the session asked (same id, from where it asked)? */
function wasAsked(session: Session, result: Element): boolean {
  const asked = session.slots.get(DISCO_ASKED) as Map<string, string> | undefined;
  const id = result.attrs.id;
  if (!asked || id === undefined) return false;
  const to = asked.get(id);
  if (to === undefined) return false;
  asked.delete(id);
  if (asked.size === 0) session.slots.delete(DISCO_ASKED);
  return to === (result.attrs.from ?? "").toLowerCase();
}

function subscribe(ctx: OfflineContext, archive: Archive): void {
  const { events } = ctx;
  // SPEC C5: a flagged room stays joined with no session in it.
  events.on("room-kept?", ({ account, room }) => ctx.state(account).flags.get(bareKey(room))?.offline === true);
  events.on("room-unjoined-message", ({ account, room, el }) => onUnjoined(ctx, account, room, el));
  events.on("room-removed", ({ account, room: jid, codes, destroyed }) => {
    const room = bareKey(jid);
    if (destroyed || codes.has("301")) {
      void ctx.state(account).serial(async () => void (await dropRegistration(ctx, account, room))); // SPEC C7
    } else if (NO_REJOIN.some((c) => codes.has(c))) {
      ctx.state(account).noRejoin.add(room);
    }
  });
  events.on("session-resumed", ({ account, session }) => onResumed(ctx, account, session));
  // SPEC D7: at a login, flagged rooms the account is not in are joined again (after a restart, say), and
  // what the room said meanwhile is read from its archive.
  // SPEC G6: so does an account whose kept anchor was restored at start.
  const rejoinFlagged = (account: Account) => {
    void ensureLoaded(ctx, account).then((ok) => {
      if (!ok) return;
      const st = ctx.state(account);
      events.emit("offline-flags", { account, any: [...st.flags.values()].some((r) => r.offline) });
      for (const reg of st.flags.values()) {
        if (!reg.offline || ctx.views.rooms.get(account, reg.room) || st.noRejoin.has(reg.room)) continue;
        const nick = reg.nick || (account.bare.split("@")[0] ?? "user");
        if (events.emit("room-keep", { account, room: reg.room, nick })) archive.catchUp(account, reg.room);
      }
    });
  };
  events.on("session-bound", ({ account }) => rejoinFlagged(account));
  events.on("account-restored", ({ account }) => rejoinFlagged(account));
}
