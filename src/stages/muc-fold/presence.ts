// SPEC C3: the anchor's presence in a room is the most available presence among the joined sessions,
// sent only when it changes (debounced); `xa` while the room is kept with nobody joined.
import { Element } from "@xmpp/xml";
import type { Room } from "./room.js";
import type { Account } from "../../account/account.js";
import { bareKey } from "../../account/jid.js";
import { roomsOf } from "./context.js";

/** chat > available > away > xa > dnd (SPEC C3). */
export const RANK: Record<string, number> = { chat: 5, "": 4, away: 3, xa: 2, dnd: 1 };
const DEBOUNCE_MS = 200;

function best(room: Room): { show: string; status: string | undefined } {
  if (room.joined.size === 0 && room.burst.size === 0 && room.waiting.length === 0) return { show: "xa", status: undefined };
  let top: { show: string; status: string | undefined; rank: number } = { show: "", status: undefined, rank: -1 };
  for (const p of room.presences.values()) {
    const show = p.getChildText("show") ?? "";
    const rank = RANK[show] ?? 4;
    if (rank > top.rank) top = { show, status: p.getChildText("status") ?? undefined, rank };
  }
  return top.rank < 0 ? { show: "", status: undefined } : top;
}

/** A presence to `to` carrying the aggregated availability. */
export function anchorPresence(room: Room, to: string): Element {
  const { show, status } = best(room);
  const p = new Element("presence", { to });
  if (show) p.c("show").t(show);
  if (status) p.c("status").t(status);
  room.sentPresenceKey = `${show}\u0000${status ?? ""}`;
  return p;
}

export function schedulePresence(account: Account, room: Room): void {
  clearTimeout(room.presenceTimer);
  room.presenceTimer = setTimeout(() => {
    if (room.state !== "joined" || roomsOf(account).get(bareKey(room.jid)) !== room) return;
    const { show, status } = best(room);
    if (`${show}\u0000${status ?? ""}` === room.sentPresenceKey) return;
    account.anchor?.send(anchorPresence(room, `${room.jid}/${room.nick}`));
  }, DEBOUNCE_MS);
  room.presenceTimer.unref();
}
