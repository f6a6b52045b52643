// State of one (account, room) pair (DESIGN.md): the anchor's occupancy, the sessions joined through it,
// and the caches a synthesized join is answered from (SPEC B3, B4, B8, C8).
import type { Element } from "@xmpp/xml";
import type { Session } from "../../chain/session.js";

/**
 * joining: the anchor's join is upstream, waiting for the self-presence (then the history burst until the
 * subject); joined: the anchor is an occupant (with or without joined sessions: without, the room is
 * *kept*, SPEC C5); leaving: the anchor's unavailable is upstream.
 */
export type RoomState = "joining" | "joined" | "leaving";

export interface HistoryRequest { maxchars?: number; maxstanzas?: number; seconds?: number; since?: string }

export interface JoinRequest {
  session: Session;
  id: string | undefined;
  nick: string;
  history: HistoryRequest | undefined;
  presence: Element;
}

export class Room {
  state: RoomState = "joining";
  /** AccountNick(R). */
  nick: string;
  readonly joined = new Set<Session>();
  /** Joins waiting for the anchor's self-presence (SPEC B2). */
  waiting: JoinRequest[] = [];
  /** Sessions that got the self-presence and still receive the history burst until the subject. */
  readonly burst = new Set<Session>();
  /** Joins that arrived during the burst; answered from the cache once it is complete. */
  late: JoinRequest[] = [];
  /** Other occupants' current presence by nick (SPEC C8). */
  readonly occupants = new Map<string, Element>();
  /** Presence from the room's bare JID (ejabberd sends one with caps). */
  roomPresence: Element | undefined;
  /** The anchor's own self-presence as upstream sent it. */
  self: Element | undefined;
  readonly history: Element[] = [];
  subject: Element | undefined;
  /** Each joined session's latest presence to the room (SPEC C3). */
  readonly presences = new Map<Session, Element>();
  /** The anchor's presence last sent upstream, as a comparable key. */
  sentPresenceKey = "";
  presenceTimer: NodeJS.Timeout | undefined;
  lingerTimer: NodeJS.Timeout | undefined;
  burstTimer: NodeJS.Timeout | undefined;
  /** Session that left last and waits for upstream's confirmation (SPEC C6). */
  leaver: { session: Session; id: string | undefined } | undefined;
  /** Every waiting session left explicitly before the join completed: leave once it does. */
  leaveWhenJoined = false;
  /** A nick change in flight (SPEC C2). */
  pendingNick: { session: Session; nick: string; id: string | undefined } | undefined;
  /** Re-joining after the anchor reconnected (SPEC A9): occupants before the drop, to send differences. */
  rejoin: { occupants: Map<string, Element>; subject: string | undefined } | undefined;
  /** The join payload (`<x xmlns=muc>` with password) used for re-joins. */
  joinX: Element | undefined;

  constructor(readonly jid: string, nick: string, private readonly historySize: number) {
    this.nick = nick;
  }

  /** SPEC B8: bounded history cache. */
  addHistory(el: Element): void {
    this.history.push(el);
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
  }

  /** When the anchor's stream was lost (the `since` of a re-join when the cache has no message). */
  downAt: string | undefined;

  /** The newest delay stamp in the cache (for `since` on re-join, SPEC A9). */
  lastStamp(): string | undefined {
    const last = this.history.at(-1);
    return last?.getChild("delay", "urn:xmpp:delay")?.attrs.stamp;
  }

  hasStanzaId(id: string): boolean {
    return this.history.some((m) => m.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id === id);
  }

  clearTimers(): void {
    clearTimeout(this.presenceTimer);
    clearTimeout(this.lingerTimer);
    clearTimeout(this.burstTimer);
    this.lingerTimer = undefined;
  }

  /** Every session that should hear live room traffic now. */
  audience(): Session[] {
    return [...this.joined, ...this.burst];
  }
}
