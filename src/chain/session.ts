// The Session port: what stages and account/ see of one client session. stream/'s Link implements it; unit
// tests use fakes. Every stanza toward the device goes through `deliver`, which runs the session's outbound
// (s2c) chain and then its one writer: relayed, synthesized and fanned-out stanzas alike.
import type { Element } from "@xmpp/xml";
import type { Prepared } from "./prepared.js";

/**
 * Where a stanza toward a device comes from: the session's own upstream leg, the account's anchor (room
 * traffic, IQ answers through the anchor), or mucmux itself (join answers from the cache, offline deliveries,
 * local replies).
 */
export type Origin = "upstream" | "anchor" | "local";

export interface DeliverOptions {
  /** Default "local". */
  origin?: Origin | undefined;
  /**
   * The stanza already serialized once for many sessions (fan-out). Used by the writer when no stage
   * replaced or edited the stanza; `el.attrs.to` must be this session's JID while `deliver` runs.
   */
  prepared?: Prepared | undefined;
  /**
   * The caller keeps `el` (a cached stanza, one of several copies) and may change it once `deliver` returns:
   * a stage that edits or holds it gets its own copy. Implied by `prepared`.
   */
  shared?: boolean | undefined;
  /** The bytes were handed to the socket (`err` undefined), or never will be (dropped, session closed). */
  onWritten?: ((err?: Error | null) => void) | undefined;
}

export interface Session {
  readonly id: number;
  /** The full JID the server bound for this session, once bound. */
  readonly jid: string | undefined;
  /** Bound and not closing: what is delivered now can reach the device. */
  readonly online: boolean;
  /**
   * Its client connection is gone and it waits for a resume (XEP-0198, SPEC F4): what is delivered meanwhile
   * reaches the device only if it comes back in time. Absent: false.
   */
  readonly hibernated?: boolean;
  /** Per-stage private state (the session owns the storage, each stage its own key). */
  readonly slots: Map<symbol, unknown>;
  /** Toward the device: through this session's outbound chain and its writer. */
  deliver(el: Element, opts?: DeliverOptions): void;
  /** Toward the server on the session's own upstream leg (what the c2s chain's onward does). */
  sendUpstream(el: Element): void;
}
