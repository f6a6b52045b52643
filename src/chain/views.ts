// Read-only views one stage offers the others (a stage's state stays in its folder; other stages read it
// here, never by import). The owning stage fills its view in when it is created; until then it is empty.
import type { Account } from "../account/account.js";

export interface RoomView {
  /** The room's bare JID as first joined. */
  readonly jid: string;
  /** The account's nick in the room (AccountNick). */
  readonly nick: string;
  readonly state: "joining" | "joined" | "leaving";
  /** Some session of the account is in the room (joined, or receiving its join burst). */
  readonly occupied: boolean;
}

export interface RoomsView {
  /** The account's managed room with this bare JID (any case), if any. */
  get(account: Account, room: string): RoomView | undefined;
  /** Every room the account's anchor is in (SPEC H4: what a draining replica waits for before its anchor leaves). */
  joined(account: Account): RoomView[];
}

/** MUC services of the served domains (configured, discovered upstream, or learned from disco answers). */
export interface ServicesView {
  /** Is `domain` (any case) a MUC service? Cheap: asked per stanza. */
  isService(domain: string): boolean;
  /** Discovery for the served domain ran to an end at least once (or the services are configured). */
  settled(served: string): boolean;
  /** Resolves once `settled(served)`, or after `waitMs` (never rejects). */
  ready(served: string, waitMs?: number): Promise<void>;
  /** A disco#info answer with a conference identity passed by: remember its domain. */
  learn(domain: string): void;
}

export interface Views {
  rooms: RoomsView;
  services: ServicesView;
}

export function emptyViews(): Views {
  return {
    rooms: { get: () => undefined, joined: () => [] },
    services: { isService: () => false, settled: () => true, ready: async () => {}, learn: () => {} },
  };
}
