// What the account-level MUC stage's parts share: dependencies and a few small operations.
import { Element } from "@xmpp/xml";
import type { AccountRegistry } from "../../account/registry.js";
import type { Account } from "../../account/account.js";
import type { Room } from "../../account/room.js";
import type { Config } from "../../config/index.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { Logger } from "../../log.js";
import type { Link } from "../../stream/link.js";
import { bareKey } from "../../account/jid.js";
import { MUC_USER } from "./xmlutil.js";

export interface MucDeps {
  accounts: AccountRegistry;
  config: Config;
  metrics: Metrics;
  log: Logger;
}

let counter = 0;
/** A fresh id for stanzas the anchor sends on a session's behalf (SPEC C10). */
export function freshId(prefix: string): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}${counter.toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export function roomOf(account: Account, jid: string | undefined): Room | undefined {
  return jid === undefined ? undefined : account.rooms.get(bareKey(jid));
}

/** Send on the anchor; false if it is not online. */
export function viaAnchor(account: Account, el: Element): boolean {
  delete el.attrs.from; // the server stamps the anchor's JID
  return account.anchor?.send(el) ?? false;
}

/** Is the session in the room as far as room traffic goes (joined, or receiving its join burst)? */
export function inRoom(room: Room, link: Link): boolean {
  return room.joined.has(link) || room.burst.has(link);
}

/** Remove a room's state and drop the account record if nothing else needs it. */
export function dropRoom(m: MucDeps, account: Account, room: Room): void {
  room.clearTimers();
  if (account.rooms.get(bareKey(room.jid)) === room) account.rooms.delete(bareKey(room.jid));
  m.accounts.dropIfIdle(account);
}

/** An own unavailable presence for one session (SPEC C4): role none, the cached affiliation, 110. */
export function localUnavailable(room: Room, link: Link | undefined, id: string | undefined, extraCode?: string): Element {
  const p = new Element("presence", { type: "unavailable", from: `${room.jid}/${room.nick}`, ...(id ? { id } : {}) });
  const affiliation = room.self?.getChild("x", MUC_USER)?.getChild("item")?.attrs.affiliation ?? "none";
  const x = p.c("x", { xmlns: MUC_USER });
  x.c("item", { affiliation, role: "none", jid: link?.jid ?? "" }); // fan-out puts each session's JID here
  x.c("status", { code: "110" });
  if (extraCode) x.c("status", { code: extraCode });
  return p;
}
