// The stage chain (DESIGN.md): each stage may leave a stanza alone, change it, answer it, re-route it,
// or drop it by returning DROP. c2s runs stages in order, s2c in reverse (like Envoy's filter chains).
// Stages see sessions through the Session port and accounts through the Account record; they talk to
// each other only through typed events (events.ts), never by import.
import type { Element } from "@xmpp/xml";
import type { Origin, Session } from "./session.js";
import type { Account } from "../account/account.js";

export const DROP = Symbol("mucmux.drop");
export type Direction = "c2s" | "s2c";
/**
 * A stage's verdict: go on (undefined), or DROP. A promise holds this one stanza until it settles (e.g. a
 * lookup the stage must wait for); the rest of the chain then runs. Other stanzas are not held meanwhile.
 */
export type StageResult = void | typeof DROP | Promise<void | typeof DROP>;
/** Where a stanza in the chain comes from: the client (c2s), or one of the outbound origins (s2c). */
export type ChainOrigin = "client" | Origin;

export interface StanzaContext {
  readonly direction: Direction;
  readonly origin: ChainOrigin;
  readonly session: Session;
  /** The stanza as earlier stages left it. Change it in place only through `edit()`. */
  stanza: Element;
  /**
   * The stanza, safe to change: a fanned-out stanza is shared by every session it goes to, so the first
   * `edit()` of such a stanza replaces `stanza` with this session's own copy.
   */
  edit(): Element;
  /** Send a stanza back toward where this one came from (an answer to the client passes its outbound chain). */
  reply(el: Element): void;
  /**
   * Send a stanza onward in this stanza's direction, through the stages after the one that handled this
   * stanza (also when called later, e.g. after awaiting the store), then to the destination.
   */
  forward(el: Element): void;
}

export interface Stage {
  readonly name: string;
  /** Cheap test. Stanzas no stage wants take the pass-through path: no context, no chain run. */
  wants(stanza: Element, direction: Direction, session: Session, origin: ChainOrigin): boolean;
  c2s?(ctx: StanzaContext): StageResult;
  s2c?(ctx: StanzaContext): StageResult;
  /**
   * A stanza that arrived on the account's anchor (after the account's IQ tracker took the answers it was
   * waiting for). Runs in stage order; DROP ends the run. The element belongs to the anchor's stream: copy
   * what you keep.
   */
  anchor?(account: Account, el: Element): void | typeof DROP;
}
