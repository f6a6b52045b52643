// The stage chain (DESIGN.md): each stage may leave a stanza alone, change it, answer it, re-route it,
// or drop it by returning DROP. c2s runs stages in order, s2c in reverse (like Envoy's filter chains).
import type { Element } from "@xmpp/xml";

export const DROP = Symbol("mucmux.drop");
export type Direction = "c2s" | "s2c";
export type StageResult = void | typeof DROP;

/** What a stage sees of the session a stanza belongs to. */
export interface SessionView {
  readonly id: number;
  /** Full JID upstream bound for this session, once bound. */
  readonly jid: string | undefined;
  /** Per-stage private slots (the Link owns the storage, each stage its own key). */
  readonly slots: Map<symbol, unknown>;
}

export interface StanzaContext {
  readonly direction: Direction;
  readonly session: SessionView;
  stanza: Element;
  /** Send a stanza back toward where this one came from (e.g. an answer to the client). */
  reply(el: Element): void;
  /** Send a stanza onward in this stanza's direction (after the remaining stages, not through them). */
  forward(el: Element): void;
}

export interface Stage {
  readonly name: string;
  /** Cheap test. Stanzas no stage wants take the pass-through path: serialized once, no chain run. */
  wants(stanza: Element, direction: Direction, session: SessionView): boolean;
  c2s?(ctx: StanzaContext): StageResult;
  s2c?(ctx: StanzaContext): StageResult;
}
