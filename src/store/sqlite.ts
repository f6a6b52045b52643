// SQLite store (the embedded default): one file, WAL mode, schema versioned in a meta table (schema.ts).
// better-sqlite3 is synchronous; the async Store methods just run the statement and settle.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { EnqueueOutcome, NewQueuedMessage, QueuedMessage, QueueLimits, RoomRegistration, Store } from "./store.js";
import { migrate } from "./schema.js";

interface RegistrationRow { account: string; room: string; nick: string; offline: number; via_mucmux: number }
interface QueueRow { id: number; account: string; room: string; stanza: string; received_at: number; expires_at: number }

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private closed = false;
  private readonly q: ReturnType<typeof statements>;

  /** `path` may be ':memory:' (unit tests; nothing survives the process). */
  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 2000");
    migrate(this.db, path);
    this.q = statements(this.db);
  }

  healthy(): boolean {
    if (this.closed) return false;
    try {
      this.db.prepare("SELECT 1").get();
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  async registrations(account: string): Promise<RoomRegistration[]> {
    return (this.q.registrations.all(account) as RegistrationRow[]).map((r) => ({
      account: r.account, room: r.room, nick: r.nick, offline: r.offline === 1, createdViaMucmux: r.via_mucmux === 1,
    }));
  }

  async saveRegistration(r: RoomRegistration, now: number): Promise<void> {
    this.q.saveRegistration.run(r.account, r.room, r.nick, r.offline ? 1 : 0, r.createdViaMucmux ? 1 : 0, now);
  }

  async deleteRegistration(account: string, room: string): Promise<void> {
    this.q.deleteRegistration.run(account, room);
  }

  async enqueue(m: NewQueuedMessage, limits: QueueLimits, now: number): Promise<EnqueueOutcome> {
    return this.db.transaction((): EnqueueOutcome => {
      const dropped = { cap_account: 0, cap_room: 0, ttl: this.q.expire.run(now).changes };
      // A cap of 0 keeps nothing: the message itself is the one dropped.
      if (limits.maxPerRoom === 0) return { queued: false, dropped: { ...dropped, cap_room: 1 } };
      if (limits.maxPerAccount === 0) return { queued: false, dropped: { ...dropped, cap_account: 1 } };
      this.q.insert.run(m.account, m.room, m.stanza, m.receivedAt, m.expiresAt);
      // Full: the oldest messages make room (the newest are what the user needs; MAM has the rest).
      const inRoom = (this.q.countRoom.get(m.account, m.room) as { n: number }).n;
      if (inRoom > limits.maxPerRoom) dropped.cap_room = this.q.trimRoom.run(m.account, m.room, inRoom - limits.maxPerRoom).changes;
      const inAccount = (this.q.countAccount.get(m.account) as { n: number }).n;
      if (inAccount > limits.maxPerAccount) dropped.cap_account = this.q.trimAccount.run(m.account, inAccount - limits.maxPerAccount).changes;
      return { queued: true, dropped };
    })();
  }

  async pending(account: string, now: number, afterId: number, limit: number): Promise<QueuedMessage[]> {
    return (this.q.pending.all(account, now, afterId, limit) as QueueRow[]).map((r) => ({
      id: r.id, account: r.account, room: r.room, stanza: r.stanza, receivedAt: r.received_at, expiresAt: r.expires_at,
    }));
  }

  async remove(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    this.db.transaction(() => { for (const id of ids) this.q.remove.run(id); })();
  }

  async expire(now: number): Promise<number> {
    return this.q.expire.run(now).changes;
  }

  async queueDepth(now: number): Promise<number> {
    return (this.q.depth.get(now) as { n: number }).n;
  }
}

function statements(db: Database.Database) {
  return {
    registrations: db.prepare("SELECT account, room, nick, offline, via_mucmux FROM offline_registrations WHERE account = ?"),
    saveRegistration: db.prepare(
      "INSERT OR REPLACE INTO offline_registrations (account, room, nick, offline, via_mucmux, updated_at) VALUES (?, ?, ?, ?, ?, ?)"),
    deleteRegistration: db.prepare("DELETE FROM offline_registrations WHERE account = ? AND room = ?"),
    insert: db.prepare("INSERT INTO offline_queue (account, room, stanza, received_at, expires_at) VALUES (?, ?, ?, ?, ?)"),
    countRoom: db.prepare("SELECT count(*) AS n FROM offline_queue WHERE account = ? AND room = ?"),
    countAccount: db.prepare("SELECT count(*) AS n FROM offline_queue WHERE account = ?"),
    trimRoom: db.prepare(
      "DELETE FROM offline_queue WHERE id IN (SELECT id FROM offline_queue WHERE account = ? AND room = ? ORDER BY id LIMIT ?)"),
    trimAccount: db.prepare("DELETE FROM offline_queue WHERE id IN (SELECT id FROM offline_queue WHERE account = ? ORDER BY id LIMIT ?)"),
    pending: db.prepare(
      "SELECT id, account, room, stanza, received_at, expires_at FROM offline_queue WHERE account = ? AND expires_at > ? AND id > ? ORDER BY id LIMIT ?"),
    remove: db.prepare("DELETE FROM offline_queue WHERE id = ?"),
    expire: db.prepare("DELETE FROM offline_queue WHERE expires_at <= ?"),
    depth: db.prepare("SELECT count(*) AS n FROM offline_queue WHERE expires_at > ?"),
  };
}
