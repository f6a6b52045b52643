// The typed event bus (Prosody's hook/event model): stages and the account registry talk through named
// events with typed payloads, never by importing each other. A handler that throws is logged and counted;
// the others still run. `emit` returns true when any handler returned true: the same call serves
// notifications ("a session closed"), questions ("is this room kept?") and requests ("keep this room
// joined": true when some stage took it).
import type { Element } from "@xmpp/xml";
import type { Account } from "../account/account.js";
import type { Session } from "./session.js";

export interface Events {
  /** A session bound its resource; the account record holds its credentials now (SPEC A3). */
  "session-bound": { account: Account; session: Session };
  /** A bound session's client said it is active or inactive (XEP-0352, SPEC C15). */
  "session-csi": { session: Session; active: boolean };
  /** SPEC G6: the account's record was restored at start from its kept anchor (no session yet). */
  "account-restored": { account: Account; push: readonly string[] };
  /** Whether any room of the account has the offline setting on, after it was loaded or changed (SPEC G6). */
  "offline-flags": { account: Account; any: boolean };
  /** The account's XEP-0357 registrations seen through mucmux changed (SPEC G3, G6). */
  "push-registrations": { account: Account; registrations: readonly string[] };
  /** A room message was queued for the account's next login (SPEC D6b): no device of it is connected. */
  "offline-queued": { account: Account; room: string; el: Element };
  /** A hibernated session continues on a new connection (XEP-0198, SPEC F5); its backlog was just written. */
  "session-resumed": { account: Account; session: Session };
  /** A bound session's stream is gone (closed, failed or drained). */
  "session-closed": { account: Account; session: Session };
  /** The anchor is online; `reconnected` after a drop (SPEC A9). */
  "anchor-online": { account: Account; reconnected: boolean };
  /**
   * The room sent the anchor its own occupant's presence again after the join: a presence change, or (SPEC H4)
   * another session of the account, another replica's anchor, joining with the same nick.
   */
  "anchor-self-presence": { account: Account; room: string };
  /** The anchor's stream is down; `permanent` when the server refused the credentials. */
  "anchor-down": { account: Account; permanent: boolean };
  /** The account left a room involuntarily (SPEC C7): status codes, and whether the room was destroyed. */
  "room-removed": { account: Account; room: string; codes: ReadonlySet<string>; destroyed: boolean };
  /** A room message reached the anchor while no session of the account was in the room (SPEC D6). */
  "room-unjoined-message": { account: Account; room: string; el: Element };
  /** Question: must `room` stay joined with no session in it (SPEC C5: the offline flag)? */
  "room-kept?": { account: Account; room: string };
  /** The account record is being dropped (no session, no stage state, or SIGTERM): stop its timers. */
  "account-disposed": { account: Account };
  /** Question: does some stage still hold state for the account (rooms it manages)? */
  "account-busy?": { account: Account };
  /** Request: join `room` for the account with no session in it (SPEC D7); true when a stage took it. */
  "room-keep": { account: Account; room: string; nick: string };
  /** Request: the reason to keep `room` went away; it lingers like a room its last session left (SPEC C5). */
  "room-release": { account: Account; room: string };
}

export type EventName = keyof Events;
export type Handler<K extends EventName> = (payload: Events[K]) => boolean | void;

export class EventBus {
  private readonly handlers = new Map<EventName, Handler<EventName>[]>();

  constructor(private readonly onError: (event: EventName, err: unknown) => void) {}

  on<K extends EventName>(event: K, handler: Handler<K>): () => void {
    let list = this.handlers.get(event);
    if (!list) this.handlers.set(event, (list = []));
    list.push(handler as Handler<EventName>);
    return () => {
      const at = list.indexOf(handler as Handler<EventName>);
      if (at >= 0) list.splice(at, 1);
    };
  }

  emit<K extends EventName>(event: K, payload: Events[K]): boolean {
    const list = this.handlers.get(event);
    if (!list) return false;
    let any = false;
    for (const h of list.slice()) { // a handler may unsubscribe (itself or another) while this runs
      try {
        if (h(payload) === true) any = true;
      } catch (err) {
        this.onError(event, err);
      }
    }
    return any;
  }
}
