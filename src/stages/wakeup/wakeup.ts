// Wake-up stanzas (SPEC G1–G5): what a room message becomes so that the server's own push module (Prosody
// mod_cloud_notify, ejabberd mod_push) wakes a phone that is away, and how mucmux recognises one again. Pure
// functions and the per-account policy; the stage (index.ts) wires them to the chain and the anchor.
import { Element } from "@xmpp/xml";

export const NS_WAKEUP = "urn:mucmux:wakeup:0";
const HINTS = "urn:xmpp:hints";
const CARBONS = "urn:xmpp:carbons:2";
const FORWARD = "urn:xmpp:forward:0";
const MAM = new Set(["urn:xmpp:mam:2", "urn:xmpp:mam:1"]);
const MUC_USER = "http://jabber.org/protocol/muc#user";
/** Longest body carried in a wake-up (a notification line, not the message). */
const BODY_MAX = 200;

/** Where a wake-up sits in a stanza toward a device: the stanza itself, a carbon copy, an archive result. */
export type WakeupPlace = "direct" | "carbon" | "archive";

const isMarker = (c: Element) => c.name === "wakeup" && c.attrs.xmlns === NS_WAKEUP;

/** SPEC G4: is `el` (or the message a carbon or an archive result wraps) a wake-up? Cheap: children only. */
export function wakeupIn(el: Element): WakeupPlace | undefined {
  for (const c of el.children) {
    if (typeof c === "string") continue;
    if (isMarker(c)) return "direct";
    const ns = c.attrs.xmlns ?? "";
    const wrapped = ((c.name === "received" || c.name === "sent") && ns === CARBONS) ? "carbon"
      : (c.name === "result" && MAM.has(ns)) ? "archive" : undefined;
    if (!wrapped) continue;
    const inner = c.getChild("forwarded", FORWARD)?.getChild("message");
    if (inner?.getChildElements().some(isMarker)) return wrapped;
  }
  return undefined;
}

/** What a room message is to a phone's notifications. */
export interface RoomMessage {
  /** The room's bare JID. */
  room: string;
  /** The sender's nick. */
  nick: string;
  body: string;
  /** It names the account's own nick in the room. */
  mention: boolean;
}

/**
 * SPEC G2: a room message a device would notify about: a body, from an occupant other than the account itself
 * (its own messages come back from the room), groupchat or a private message through the room; not a subject
 * change, an error, a chat state or a marker.
 */
export function notifiable(el: Element, accountNick: string | undefined): RoomMessage | undefined {
  if (el.name !== "message") return undefined;
  const type = el.attrs.type ?? "normal";
  if (type !== "groupchat" && type !== "chat" && type !== "normal") return undefined;
  const from = el.attrs.from ?? "";
  const slash = from.indexOf("/");
  if (slash < 0) return undefined; // the room itself (status, configuration), not an occupant
  const body = el.getChildText("body");
  if (!body || body.trim() === "") return undefined;
  if (type !== "groupchat" && !el.getChild("x", MUC_USER)) return undefined; // a 1:1 message: the server's own business
  const nick = from.slice(slash + 1);
  if (accountNick !== undefined && nick === accountNick) return undefined;
  return { room: from.slice(0, slash), nick, body, mention: mentions(body, accountNick) };
}

/** The account's nick as a word of the body (any case), as clients highlight a mention. */
export function mentions(body: string, nick: string | undefined): boolean {
  if (!nick) return false;
  const b = body.toLowerCase();
  const n = nick.toLowerCase();
  for (let at = b.indexOf(n); at >= 0; at = b.indexOf(n, at + 1)) {
    const before = at === 0 ? "" : b[at - 1] as string;
    const after = b[at + n.length] ?? "";
    if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) return true;
  }
  return false;
}

/**
 * SPEC G1, G3: the wake-up for `m`, to the account's bare JID: a chat message the server stores offline (or queues
 * for a hibernated session) and pushes for like any 1:1 message, kept out of the archive (`no-permanent-store`),
 * never carbon-copied, marked for mucmux. Its body says what a 1:1 notification would: who, where, and the text
 * only with `includeBody`.
 */
export function wakeupStanza(account: string, id: string, m: RoomMessage, includeBody: boolean): Element {
  const room = m.room.split("@")[0] ?? m.room;
  const text = includeBody ? `${m.nick} (${room}): ${truncate(m.body)}` : `${m.nick} (${room})`;
  return new Element("message", { to: account, type: "chat", id })
    .c("body").t(text).up()
    .c("no-permanent-store", { xmlns: HINTS }).up()
    .c("no-copy", { xmlns: HINTS }).up()
    .c("wakeup", { xmlns: NS_WAKEUP, room: m.room }).up();
}

function truncate(s: string): string {
  const chars = [...s];
  return chars.length <= BODY_MAX ? s : `${chars.slice(0, BODY_MAX - 1).join("")}…`;
}

export interface WakeupPolicy {
  /** While a wake-up is unanswered, at most one per this many ms (mentions excepted). */
  intervalMs: number;
  /** Unanswered wake-ups per account (mentions excepted). */
  maxPending: number;
}

export type Decision = "send" | "coalesced" | "capped" | "no_push";

/** Per account: its push registrations seen through mucmux, and the wake-ups no device has answered yet. */
export class AccountWakeups {
  /** `jid\0node` of each XEP-0357 registration the server confirmed. */
  readonly registrations = new Set<string>();
  pending = 0;
  private lastSentAt = 0;
  /** The room message last decided on (one message fanned out to several hibernated devices wakes once). */
  private lastKey: string | undefined;

  /** SPEC G3: whether this room message wakes the account now; `key` identifies the message. */
  decide(now: number, key: string, mention: boolean, policy: WakeupPolicy): Decision | "duplicate" {
    if (key === this.lastKey) return "duplicate";
    this.lastKey = key;
    if (this.registrations.size === 0) return "no_push";
    if (!mention) {
      if (this.pending >= policy.maxPending) return "capped";
      if (this.pending > 0 && now - this.lastSentAt < policy.intervalMs) return "coalesced";
    }
    this.pending++;
    this.lastSentAt = now;
    return "send";
  }

  /** A device of the account came back (logged in or resumed): what was pending is answered. */
  answered(): void {
    this.pending = 0;
  }
}
