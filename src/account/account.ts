// One account (a bare JID): its sessions, credentials (memory only, SPEC A3), anchor and rooms.
import type { Link } from "../stream/link.js";
import type { Credentials } from "../stream/link-deps.js";
import { Anchor } from "./anchor.js";
import type { Room } from "./room.js";

export class Account {
  readonly sessions = new Set<Link>();
  readonly rooms = new Map<string, Room>();
  anchor: Anchor | undefined;
  /** Pending IQs sent on the anchor for sessions (SPEC C10): anchor id → origin. */
  readonly iqs = new Map<string, { link: Link; id: string; at: number }>();
  /** IQs from occupants forwarded to a session (SPEC C11): forwarded id → original. */
  readonly inboundIqs = new Map<string, { id: string; from: string; at: number }>();

  constructor(
    readonly bare: string,
    readonly domain: string,
    public credentials: Credentials,
  ) {}

  /** Any reason to keep this record alive: a session, a managed room, or the anchor's work. */
  get idle(): boolean {
    return this.sessions.size === 0 && this.rooms.size === 0;
  }

  /** Forget the credentials and stop the anchor (the record is being dropped). */
  dispose(): void {
    this.anchor?.close();
    this.anchor = undefined;
    this.credentials = { username: "", password: "" };
    for (const r of this.rooms.values()) r.clearTimers();
    this.rooms.clear();
    this.iqs.clear();
    this.inboundIqs.clear();
  }
}
