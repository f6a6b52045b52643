// Client State Indication at mucmux (XEP-0352, SPEC C15, C16): while a device says it is inactive, what is not urgent
// for it waits — room presence churn (only the latest presence per sender is kept), chat states, receipts and
// markers without a body — and is flushed, in order, before anything urgent, when too much waits, or on <active/>.
// Last in the outbound order, so it sees every stanza toward the device as the other stages left it: relayed,
// fanned out from the anchor, or synthesized.
import type { Element } from "@xmpp/xml";
import { DROP, type Stage, type StanzaContext } from "../../chain/stage.js";
import type { Session } from "../../chain/session.js";
import type { EventBus } from "../../chain/events.js";
import type { Metrics } from "../../metrics/metrics.js";

export interface CsiDeps {
  events: EventBus;
  metrics: Metrics;
}

/** Held stanzas per inactive session before a flush: bounds memory for a device that stays inactive for days. */
export const MAX_HELD = 256;

const STATE = Symbol("csi");

interface CsiState {
  inactive: boolean;
  /** Held stanzas in arrival order, each this session's own copy, sent on through `forward` at a flush. */
  held: StanzaContext[];
}

/** Payloads that make a message urgent besides a body or subject: encrypted messages, call proposals, archive results. */
const URGENT_CHILDREN = new Set([
  "encrypted eu.siacs.conversations.axolotl", "encrypted urn:xmpp:omemo:2", "openpgp urn:xmpp:openpgp:0", "x jabber:x:encrypted",
  "result urn:xmpp:mam:2", "result urn:xmpp:mam:1",
]);
/** Every element of these makes a message urgent: call signalling (XEP-0353: propose, retract, accept, reject, proceed), direct invitations. */
const URGENT_NAMESPACES = new Set(["urn:xmpp:jingle-message:0", "jabber:x:conference"]);
const MUC_USER = "http://jabber.org/protocol/muc#user";
const CARBONS = "urn:xmpp:carbons:2";

/** SPEC C16: what must reach an inactive device at once. */
export function isUrgent(el: Element): boolean {
  if (el.name === "iq") return true;
  const type = el.attrs.type;
  if (el.name === "presence") return type !== undefined && type !== "unavailable"; // subscriptions, errors, probes
  if (el.name !== "message" || type === "error") return true;
  for (const child of el.getChildElements()) {
    const ns = child.attrs.xmlns ?? "";
    if (child.name === "body" || child.name === "subject") return true;
    if (URGENT_CHILDREN.has(`${child.name} ${ns}`) || URGENT_NAMESPACES.has(ns)) return true;
    if (ns === MUC_USER && child.getChild("invite")) return true; // a mediated room invitation
    if ((child.name === "received" || child.name === "sent") && child.attrs.xmlns === CARBONS) {
      const inner = child.getChild("forwarded")?.getChild("message");
      if (inner && isUrgent(inner)) return true;
    }
  }
  return false;
}

const CHATSTATES = "http://jabber.org/protocol/chatstates";

/** What a room or server adds to any message: it does not make a chat state more than a chat state. */
const METADATA = new Set(["urn:xmpp:occupant-id:0", "urn:xmpp:sid:0", "urn:xmpp:delay", "http://jabber.org/protocol/muc#user"]);

/** Held stanzas a later one of the same sender replaces: presences, and messages that are only a chat state. */
function supersedable(el: Element): "presence" | "chatstate" | undefined {
  if (el.name === "presence") return "presence";
  let state = false;
  for (const c of el.getChildElements()) {
    const ns = c.attrs.xmlns ?? "";
    if (ns === CHATSTATES) state = true;
    else if (!METADATA.has(ns)) return undefined;
  }
  return state ? "chatstate" : undefined;
}

export function createCsiStage(deps: CsiDeps): Stage {
  const { events, metrics } = deps;
  const stateOf = (s: Session) => s.slots.get(STATE) as CsiState | undefined;
  const flush = (st: CsiState) => {
    const held = st.held;
    st.held = [];
    if (held.length > 0) metrics.csiStanzas.inc({ outcome: "flushed" }, held.length);
    for (const ctx of held) ctx.forward(ctx.stanza);
  };
  events.on("session-csi", ({ session, active }) => {
    let st = stateOf(session);
    if (active) {
      if (!st?.inactive) return;
      st.inactive = false;
      return void flush(st); // SPEC C16: the device has the current state at once
    }
    if (!st) session.slots.set(STATE, (st = { inactive: true, held: [] }));
    st.inactive = true;
  });
  events.on("session-closed", ({ session }) => {
    const st = stateOf(session);
    if (st) st.held = []; // nothing can reach it any more (what mattered was urgent and went at once)
  });

  return {
    name: "csi",
    // Local stanzas (answers to the device's own requests, offline deliveries that wait for their write) go at once.
    wants: (_el, direction, session, origin) => direction === "s2c" && origin !== "local" && stateOf(session)?.inactive === true,
    s2c(ctx) {
      const st = stateOf(ctx.session) as CsiState;
      if (isUrgent(ctx.stanza)) {
        flush(st); // held ones first: the order toward the device is kept
        return;
      }
      const el = ctx.edit(); // this session's own copy: a fanned-out stanza is shared and changed after this call
      const kind = supersedable(el);
      if (kind !== undefined) {
        // SPEC C15: of a sender's presences, and of its chat states, only the latest matters.
        const at = st.held.findIndex((c) => supersedable(c.stanza) === kind && c.stanza.attrs.from === el.attrs.from);
        if (at >= 0) {
          st.held.splice(at, 1);
          metrics.csiStanzas.inc({ outcome: "superseded" });
        }
      }
      st.held.push(ctx);
      metrics.csiStanzas.inc({ outcome: "held" });
      if (st.held.length > MAX_HELD) flush(st);
      return DROP;
    },
  };
}
