// MUC offline delivery (SPEC D): the Tigase `{http://tigase.org/protocol/muc}offline` registration
// field, kept durably. Ordered before the MUC stage (src/stages/index.ts), so that c2s it sees a session's
// register IQ before the MUC stage routes it via the anchor, and s2c it sees the answer after the MUC stage
// mapped it back to the session. It reaches rooms and anchors only through the account registry's hooks.
import type { Element } from "@xmpp/xml";
import type { Direction, SessionView, Stage, StanzaContext } from "../../chain/stage.js";
import type { Link } from "../../stream/link.js";
import { bareKey } from "../../account/jid.js";
import { createContext, dropRegistration, ensureLoaded, type OfflineContext, type OfflineDeps } from "./context.js";
import { isPendingAnswer, onRegisterAnswer, onRegisterRequest } from "./register.js";
import { extendDiscoInfo } from "./disco.js";
import { onUnjoined } from "./delivery.js";
import { onBroadcastPresence } from "./catchup.js";
import { createArchive, type Archive } from "./archive.js";
import { DISCO_INFO, REGISTER } from "./xml.js";

const NO_REJOIN = ["307", "321", "322"];

export function createMucOfflineStage(deps: OfflineDeps): Stage {
  const ctx = createContext(deps);
  for (const reason of ["cap_account", "cap_room", "ttl", "store_error", "duplicate"]) ctx.metrics.offlineDropped.inc({ reason }, 0);
  ctx.metrics.setOfflineQueueSource(async () => ctx.store()?.queueDepth(Date.now()));
  registerHooks(ctx);

  const linkOf = (s: SessionView) => s as Link;
  return {
    name: "muc-offline",
    wants(el: Element, direction: Direction, session: SessionView): boolean {
      if (direction === "c2s") {
        if (el.name === "presence") return el.attrs.to === undefined;
        const t = el.attrs.type;
        const to = el.attrs.to;
        return el.name === "iq" && (t === "get" || t === "set") && to !== undefined && to.includes("@") && !to.includes("/") &&
          !!el.getChild("query", REGISTER);
      }
      if (el.name !== "iq") return false;
      if (el.attrs.type === "error") return isPendingAnswer(linkOf(session), el.attrs.id);
      return el.attrs.type === "result" && (isPendingAnswer(linkOf(session), el.attrs.id) || !!el.getChild("query", DISCO_INFO));
    },
    c2s(s: StanzaContext) {
      const link = linkOf(s.session);
      const account = ctx.accounts.forSession(link);
      if (!account) return;
      if (s.stanza.name === "presence") return onBroadcastPresence(ctx, account, link, s.stanza);
      return onRegisterRequest(ctx, s, account, link);
    },
    s2c(s: StanzaContext) {
      const link = linkOf(s.session);
      const account = ctx.accounts.forSession(link);
      if (!account) return;
      if (isPendingAnswer(link, s.stanza.attrs.id)) {
        const result = onRegisterAnswer(ctx, s, account, link);
        if (result !== undefined) return result;
      }
      if (s.stanza.attrs.type === "result") extendDiscoInfo(s.stanza, ctx.mucDomains); // SPEC D1
    },
  };
}

function registerHooks(ctx: OfflineContext): void {
  const { accounts } = ctx;
  const archive: Archive = createArchive(ctx);
  accounts.addHandlers({
    onStanza: (account, el) => {
      try {
        archive.onAnchorStanza(account, el);
      } catch (err) {
        ctx.log.error({ err }, "offline archive bookkeeping failed"); // never the MUC stage's problem
      }
    },
    onOnline: () => {},
    onDown: () => {},
    onSessionClosed: () => {},
  });
  // SPEC C5: a flagged room stays joined with no session in it.
  accounts.addKeeper((account, roomJid) => ctx.state(account).flags.get(bareKey(roomJid))?.offline === true);
  accounts.addUnjoinedHandler((account, roomJid, el) => {
    try {
      onUnjoined(ctx, account, roomJid, el);
    } catch (err) {
      ctx.log.error({ err }, "offline handling failed"); // never the MUC stage's problem
    }
  });
  accounts.addRemovalHandler((account, roomJid, codes, destroyed) => {
    const room = bareKey(roomJid);
    if (destroyed || codes.has("301")) {
      void ctx.state(account).serial(async () => void (await dropRegistration(ctx, account, room))); // SPEC C7
    } else if (NO_REJOIN.some((c) => codes.has(c))) {
      ctx.state(account).noRejoin.add(room);
    }
  });
  // SPEC D7: at a login, flagged rooms the account is not in are joined again (after a restart, say), and
  // what the room said meanwhile is read from its archive (issue 6 item 15).
  accounts.addSessionBoundHandler((account) => {
    void ensureLoaded(ctx, account).then((ok) => {
      if (!ok) return;
      const st = ctx.state(account);
      for (const reg of st.flags.values()) {
        if (!reg.offline || account.rooms.has(reg.room) || st.noRejoin.has(reg.room)) continue;
        if (accounts.keepRoomJoined(account, reg.room, reg.nick || (account.bare.split("@")[0] ?? "user"))) archive.catchUp(account, reg.room);
      }
    });
  });
}
