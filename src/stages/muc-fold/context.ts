// What the account-level MUC stage's parts share: dependencies, the per-account room state (kept in the
// account's slot of this stage, so the account record knows nothing of rooms) and a few small operations.
import { Element } from "@xmpp/xml";
import type { AccountRegistry } from "../../account/registry.js";
import type { Account } from "../../account/account.js";
import type { Session } from "../../chain/session.js";
import type { EventBus } from "../../chain/events.js";
import type { Views } from "../../chain/views.js";
import type { Config } from "../../config/index.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { Logger } from "../../log.js";
import { bareKey } from "../../account/jid.js";
import type { Room } from "./room.js";
import { MUC_USER } from "./xmlutil.js";

export interface MucDeps {
  accounts: AccountRegistry;
  events: EventBus;
  /** What other parts offer read-only: the MUC services of the served domains, the rooms view (filled in by this stage). */
  views: Views;
  config: Config;
  metrics: Metrics;
  log: Logger;
}

const ROOMS = Symbol("muc-fold.rooms");

/** The account's managed rooms by bare-JID key (created on first use). */
export function roomsOf(account: Account): Map<string, Room> {
  return account.slot(ROOMS, () => new Map<string, Room>());
}

/** The account's managed rooms, without creating the map (hot path: per stanza). */
export function peekRooms(account: Account): ReadonlyMap<string, Room> | undefined {
  return account.slots.get(ROOMS) as Map<string, Room> | undefined;
}

export function roomOf(account: Account, jid: string | undefined): Room | undefined {
  return jid === undefined ? undefined : peekRooms(account)?.get(bareKey(jid));
}

/** Is the session in the room as far as room traffic goes (joined, or receiving its join burst)? */
export function inRoom(room: Room, session: Session): boolean {
  return room.joined.has(session) || room.burst.has(session);
}

/** Remove a room's state and drop the account record if nothing else needs it. */
export function dropRoom(m: MucDeps, account: Account, room: Room): void {
  room.clearTimers();
  const rooms = roomsOf(account);
  if (rooms.get(bareKey(room.jid)) === room) rooms.delete(bareKey(room.jid));
  m.accounts.dropIfIdle(account);
}

/** An own unavailable presence for one session (SPEC C4): role none, the cached affiliation, 110. */
export function localUnavailable(room: Room, session: Session | undefined, id: string | undefined, extraCode?: string): Element {
  const p = new Element("presence", { type: "unavailable", from: `${room.jid}/${room.nick}`, ...(id ? { id } : {}) });
  const affiliation = room.self?.getChild("x", MUC_USER)?.getChild("item")?.attrs.affiliation ?? "none";
  const x = p.c("x", { xmlns: MUC_USER });
  x.c("item", { affiliation, role: "none", jid: session?.jid ?? "" }); // fan-out puts each session's JID here
  x.c("status", { code: "110" });
  if (extraCode) x.c("status", { code: extraCode });
  return p;
}

/** Must the room stay joined with nobody in it (SPEC C5: some stage keeps it, e.g. the offline flag)? */
export function isKept(m: MucDeps, account: Account, room: string): boolean {
  return m.events.emit("room-kept?", { account, room });
}
