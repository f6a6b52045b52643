// PostgreSQL store (several replicas share it, SPEC H): the same Store semantics as the SQLite store (sqlite.ts), plus
// the account leases (LeaseStore). node-postgres pool of store.poolSize connections; every connect and statement is
// bounded by store.timeoutSeconds, and a failure rejects the call with a StoreError naming host:port/database (never
// the password). Times of queued messages, tokens and registrations are the callers' (Unix ms, as with SQLite); leases
// and delivery claims use the database's clock only (clock_timestamp()), so replicas' clock skew cannot matter.
//
// Exactly once across replicas: pending() claims the rows it returns (UPDATE ... FROM (SELECT ... FOR UPDATE SKIP
// LOCKED)), so another store instance's pending() skips them while the claim lasts; with a fence (SPEC H3) the
// account's lease is what excludes the others: enqueue, pending and markSeen act only while this replica holds it with
// the token it believes it has, checked in the same statement or transaction (the lease row is locked FOR SHARE, so a
// concurrent takeover waits for it, and after the takeover the stale token matches nothing).
import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Logger } from "../log.js";
import { migratePg, PG_SCHEMA_VERSION } from "./pg-schema.js";
import {
  StoreError,
  type CatchUpPoint, type EnqueueOutcome, type FastToken, type Fence, type Lease, type LeaseStore, type NewQueuedMessage,
  type QueuedMessage, type QueueLimits, type ReplicaInfo, type RoomRegistration, type ScramHash, type Store, type StoredVerifier,
} from "./store.js";

export interface PgStoreOptions {
  poolSize: number;
  /** store.timeoutSeconds in ms: connect, wait for a pooled connection, and each statement. */
  timeoutMs: number;
  fence?: Fence;
  log: Logger;
  /** How long an unfenced pending() keeps its rows from other store instances (default 10 s). */
  claimMs?: number;
  /** The periodic health probe (default 2 s). */
  probeMs?: number;
}

/** PostgreSQL URLs in `text` (an argument echoed back in a usage error) replaced by one without user or password. */
export function redactPgUrls(text: string): string {
  return text.replace(/postgres(ql)?:\/\/[^\s'"]*/g, "postgres://…");
}

/** Where the store is, for logs and errors: never the user or the password. */
export function describePgUrl(url: string): { host: string; port: number; database: string } {
  try {
    const u = new URL(url);
    const host = u.hostname || new URLSearchParams(u.search).get("host") || "localhost";
    return { host, port: Number(u.port || 5432), database: decodeURIComponent(u.pathname.replace(/^\//, "")) || "(default)" };
  } catch {
    return { host: "(unparsable store.url)", port: 0, database: "" };
  }
}

export const LEASE_CHANNEL = "mucmux_leases";

interface RegistrationRow { account: string; room: string; nick: string; offline: boolean; via_mucmux: boolean }
interface VerifierRow {
  account: string; hash: string; salt: Buffer; iterations: number; stored_key: Buffer; server_key: Buffer;
  source: string; upstream: boolean; sealed: Buffer | null; updated_at: number;
}
interface FastRow {
  account: string; hash: Buffer; agent: string; responder: Buffer; sealed: Buffer; expires_at: number; count: number; created_at: number;
}
interface QueueRow { id: number; account: string; room: string; stanza: string; received_at: number; expires_at: number }
interface LeaseRow { account: string; owner: string; token: number; ms: number }

const INT8 = 20;
/** bigint columns (ids, Unix ms, counts, tokens) as JS numbers: all stay below 2^53. */
const types = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === INT8 && format !== "binary" ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format),
} as pg.CustomTypesConfig;

const LEASE_COLUMNS = "account, owner, token, round(extract(epoch FROM (expires_at - clock_timestamp())) * 1000)::float8 AS ms";
// SPEC H3: the lease is this replica's while its owner and token are; an expired lease nobody took over yet is still
// its own (only a takeover, which draws a new token, makes another owner), so a store outage longer than the lease
// time does not fence the owner off its own accounts once the database is back.
const HOLDS = "SELECT 1 FROM account_leases WHERE account = $1 AND owner = $2 AND token = $3 FOR SHARE";
const noDrops = () => ({ cap_account: 0, cap_room: 0, ttl: 0 });

export class PgStore implements Store, LeaseStore {
  private ok = true;
  private closed = false;
  private ending: Promise<void> | undefined;
  private probing = false;
  private readonly probeTimer: NodeJS.Timeout;
  /** This instance's name in delivery claims and in its own NOTIFY payloads. */
  private readonly instance = randomUUID();
  private readonly claimMs: number;
  private readonly released = new Set<() => void>();
  private listenClient: pg.Client | undefined;
  private relisten: NodeJS.Timeout | undefined;
  private fence: Fence | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly clientConfig: pg.ClientConfig,
    readonly where: { host: string; port: number; database: string },
    private readonly log: Logger,
    opts: PgStoreOptions,
  ) {
    this.fence = opts.fence;
    this.claimMs = opts.claimMs ?? 10_000;
    this.probeTimer = setInterval(() => void this.probe(), opts.probeMs ?? 2000);
    this.probeTimer.unref();
  }

  /** Connects, migrates (under an advisory lock: several replicas may start at once) and returns the store. */
  static async open(url: string, opts: PgStoreOptions): Promise<PgStore> {
    const where = describePgUrl(url);
    const label = `${where.host}:${where.port}/${where.database}`;
    const clientConfig: pg.ClientConfig = {
      connectionString: url, connectionTimeoutMillis: opts.timeoutMs, keepAlive: true, types,
      application_name: "mucmux",
    };
    // The migration runs on its own connection without the statement timeout: waiting for another replica's
    // migration (the advisory lock) may take longer than one statement may.
    const setup = new pg.Client(clientConfig);
    setup.on("error", () => {}); // a failure surfaces through the pending query
    try {
      await setup.connect();
      const from = await migratePg(setup);
      if (from !== PG_SCHEMA_VERSION) opts.log.info({ ...where, from, to: PG_SCHEMA_VERSION }, "store schema migrated");
    } catch (err) {
      if (err instanceof StoreError) throw new StoreError(`store postgres ${label}: ${err.message}`);
      throw new StoreError(`store postgres ${label}: ${errText(err)}`);
    } finally {
      await setup.end().catch(() => {});
    }
    const pool = new pg.Pool({
      ...clientConfig,
      max: opts.poolSize,
      statement_timeout: opts.timeoutMs,
      query_timeout: opts.timeoutMs,
      idle_in_transaction_session_timeout: Math.max(opts.timeoutMs * 2, 1000),
    });
    const store = new PgStore(pool, clientConfig, where, opts.log, opts);
    // An idle pooled connection that breaks (server restart, network) emits here: never an uncaught 'error'.
    pool.on("error", (err) => {
      store.ok = false;
      opts.log.warn({ ...where, err: errText(err) }, "store connection lost");
    });
    return store;
  }

  /** SPEC H3: the lease check for enqueue, pending and markSeen (the cluster code sets it once it runs). */
  setFence(fence: Fence | undefined): void {
    this.fence = fence;
  }

  healthy(): boolean {
    return !this.closed && this.ok;
  }

  close(): void {
    void this.end();
  }

  /** close(), awaited: every pooled connection and the LISTEN connection are closed. */
  end(): Promise<void> {
    if (this.ending) return this.ending;
    this.closed = true;
    clearInterval(this.probeTimer);
    if (this.relisten) clearTimeout(this.relisten);
    const listen = this.listenClient;
    this.listenClient = undefined;
    this.ending = Promise.all([
      this.pool.end().catch(() => {}),
      listen?.end().catch(() => {}),
    ]).then(() => {});
    return this.ending;
  }

  private async probe(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    try {
      await this.pool.query("SELECT 1");
      this.ok = true;
    } catch {
      this.ok = false;
    } finally {
      this.probing = false;
    }
  }

  /** Runs one operation: a failure becomes a StoreError naming host:port/database; a lost connection turns healthy() false. */
  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError(`store postgres ${this.label()}: ${op}: the store is closed`);
    try {
      const out = await fn();
      this.ok = true;
      return out;
    } catch (err) {
      if (unavailable(err)) this.ok = false;
      throw new StoreError(`store postgres ${this.label()}: ${op}: ${errText(err)}`, { cause: err });
    }
  }

  private label(): string {
    return `${this.where.host}:${this.where.port}/${this.where.database}`;
  }

  private query<R extends pg.QueryResultRow>(op: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.call(op, () => this.pool.query<R>(text, values));
  }

  /** One transaction on one pooled connection; a deadlock or serialization failure is retried (twice). */
  private tx<T>(op: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.call(op, async () => {
      for (let attempt = 1; ; attempt++) {
        const c = await this.pool.connect();
        let broken: Error | undefined;
        try {
          await c.query("BEGIN");
          const out = await fn(c);
          await c.query("COMMIT");
          return out;
        } catch (err) {
          await c.query("ROLLBACK").catch((e: unknown) => { broken = e instanceof Error ? e : new Error(String(e)); });
          if (attempt < 3 && retryable(err)) continue;
          throw err;
        } finally {
          c.release(broken);
        }
      }
    });
  }

  private fenceFor(account: string): { owner: string; token: number } | undefined {
    return this.fence?.(account);
  }

  async registrations(account: string): Promise<RoomRegistration[]> {
    const { rows } = await this.query<RegistrationRow>("registrations",
      "SELECT account, room, nick, offline, via_mucmux FROM offline_registrations WHERE account = $1 ORDER BY room", [account]);
    return rows.map((r) => ({ account: r.account, room: r.room, nick: r.nick, offline: r.offline, createdViaMucmux: r.via_mucmux }));
  }

  async saveRegistration(r: RoomRegistration, now: number): Promise<void> {
    // An upsert, not a replace: saving the form again keeps the room's catch-up point.
    await this.query("save_registration",
      "INSERT INTO offline_registrations (account, room, nick, offline, via_mucmux, updated_at) VALUES ($1, $2, $3, $4, $5, $6) " +
        "ON CONFLICT (account, room) DO UPDATE SET nick = excluded.nick, offline = excluded.offline, " +
        "via_mucmux = excluded.via_mucmux, updated_at = excluded.updated_at",
      [r.account, r.room, r.nick, r.offline, r.createdViaMucmux, now]);
  }

  async deleteRegistration(account: string, room: string): Promise<void> {
    await this.query("delete_registration", "DELETE FROM offline_registrations WHERE account = $1 AND room = $2", [account, room]);
  }

  async enqueue(m: NewQueuedMessage, limits: QueueLimits, now: number): Promise<EnqueueOutcome> {
    const fence = this.fenceFor(m.account);
    return this.tx("enqueue", async (c): Promise<EnqueueOutcome> => {
      if (fence && (await c.query(HOLDS, [m.account, fence.owner, fence.token])).rowCount === 0) {
        return { queued: false, duplicate: false, fenced: true, dropped: noDrops() };
      }
      const dropped = { ...noDrops(), ttl: (await c.query("DELETE FROM offline_queue WHERE expires_at <= $1", [now])).rowCount ?? 0 };
      // A cap of 0 keeps nothing: the message itself is the one dropped.
      if (limits.maxPerRoom === 0) return { queued: false, duplicate: false, dropped: { ...dropped, cap_room: 1 } };
      if (limits.maxPerAccount === 0) return { queued: false, duplicate: false, dropped: { ...dropped, cap_account: 1 } };
      // A key queued already: the same message came again (an archive catch-up overlapping what was queued).
      const inserted = await c.query(
        "INSERT INTO offline_queue (account, room, stanza, received_at, expires_at, key) VALUES ($1, $2, $3, $4, $5, $6) " +
          "ON CONFLICT (account, room, key) WHERE key IS NOT NULL DO NOTHING",
        [m.account, m.room, m.stanza, m.receivedAt, m.expiresAt, m.key ?? null]);
      if (inserted.rowCount === 0) return { queued: false, duplicate: true, dropped };
      // The catch-up point moves in the same transaction: after a crash, both or neither.
      if (m.key !== undefined) {
        await c.query("UPDATE offline_registrations SET last_key = $1, last_at = $2 WHERE account = $3 AND room = $4",
          [m.key, m.receivedAt, m.account, m.room]);
      }
      // Full: the oldest messages make room (the newest are what the user needs; MAM has the rest).
      const count = async (sql: string, args: unknown[]) => (await c.query<{ n: number }>(sql, args)).rows[0]?.n ?? 0;
      const inRoom = await count("SELECT count(*) AS n FROM offline_queue WHERE account = $1 AND room = $2", [m.account, m.room]);
      if (inRoom > limits.maxPerRoom) {
        dropped.cap_room = (await c.query("DELETE FROM offline_queue WHERE id IN (SELECT id FROM offline_queue " +
          "WHERE account = $1 AND room = $2 ORDER BY id LIMIT $3)", [m.account, m.room, inRoom - limits.maxPerRoom])).rowCount ?? 0;
      }
      const inAccount = await count("SELECT count(*) AS n FROM offline_queue WHERE account = $1", [m.account]);
      if (inAccount > limits.maxPerAccount) {
        dropped.cap_account = (await c.query("DELETE FROM offline_queue WHERE id IN (SELECT id FROM offline_queue " +
          "WHERE account = $1 ORDER BY id LIMIT $2)", [m.account, inAccount - limits.maxPerAccount])).rowCount ?? 0;
      }
      return { queued: true, duplicate: false, dropped };
    });
  }

  async pending(account: string, now: number, afterId: number, limit: number): Promise<QueuedMessage[]> {
    const fence = this.fenceFor(account);
    // Fenced: the lease excludes every other replica, so rows another instance claimed (a previous owner that died
    // while delivering) are taken at once. Unfenced: another instance's unexpired claim hides its rows.
    const { rows } = await this.query<QueueRow>("pending",
      "WITH lease AS (SELECT 1 FROM account_leases WHERE account = $1 AND owner = $6 AND token = $7 FOR SHARE), " +
      "pick AS (SELECT id FROM offline_queue WHERE account = $1 AND expires_at > $2 AND id > $3 " +
        "AND ($8::boolean IS FALSE OR EXISTS (SELECT 1 FROM lease)) " +
        "AND ($8::boolean OR claimed_by IS NULL OR claimed_by = $5 OR claimed_until <= clock_timestamp()) " +
        "ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) " +
      "UPDATE offline_queue q SET claimed_by = $5, claimed_until = clock_timestamp() + $9 * interval '1 millisecond' " +
        "FROM pick WHERE q.id = pick.id RETURNING q.id, q.account, q.room, q.stanza, q.received_at, q.expires_at",
      [account, now, afterId, limit, this.instance, fence?.owner ?? "", fence?.token ?? 0, fence !== undefined, this.claimMs]);
    return rows.sort((a, b) => a.id - b.id).map((r) => ({
      id: r.id, account: r.account, room: r.room, stanza: r.stanza, receivedAt: r.received_at, expiresAt: r.expires_at,
    }));
  }

  async remove(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.query("remove", "DELETE FROM offline_queue WHERE id = ANY($1::bigint[])", [[...ids]]);
  }

  async expire(now: number): Promise<number> {
    return (await this.query("expire", "DELETE FROM offline_queue WHERE expires_at <= $1", [now])).rowCount ?? 0;
  }

  async queueDepth(now: number): Promise<number> {
    return (await this.query<{ n: number }>("queue_depth", "SELECT count(*) AS n FROM offline_queue WHERE expires_at > $1", [now])).rows[0]?.n ?? 0;
  }

  async markSeen(account: string, room: string, key: string, at: number): Promise<void> {
    const fence = this.fenceFor(account);
    if (!fence) {
      await this.query("mark_seen", "UPDATE offline_registrations SET last_key = $1, last_at = $2 WHERE account = $3 AND room = $4",
        [key, at, account, room]);
      return;
    }
    await this.query("mark_seen",
      "WITH lease AS (SELECT 1 FROM account_leases WHERE account = $3 AND owner = $5 AND token = $6 FOR SHARE) " +
        "UPDATE offline_registrations SET last_key = $1, last_at = $2 WHERE account = $3 AND room = $4 AND EXISTS (SELECT 1 FROM lease)",
      [key, at, account, room, fence.owner, fence.token]);
  }

  async catchUpFrom(account: string, room: string): Promise<CatchUpPoint | undefined> {
    const { rows } = await this.query<{ last_key: string | null; last_at: number | null; updated_at: number }>("catch_up_from",
      "SELECT last_key, last_at, updated_at FROM offline_registrations WHERE account = $1 AND room = $2", [account, room]);
    const r = rows[0];
    if (!r) return undefined;
    return r.last_key !== null && r.last_at !== null ? { key: r.last_key, at: r.last_at } : { key: undefined, at: r.updated_at };
  }

  async verifiers(account: string): Promise<StoredVerifier[]> {
    const { rows } = await this.query<VerifierRow>("verifiers", "SELECT * FROM scram_verifiers WHERE account = $1 ORDER BY hash", [account]);
    return rows.map((r) => ({
      account: r.account, hash: r.hash as ScramHash, salt: r.salt, iterations: r.iterations, storedKey: r.stored_key,
      serverKey: r.server_key, source: r.source === "imported" ? "imported" : "learned", upstream: r.upstream,
      sealed: r.sealed ?? undefined, updatedAt: r.updated_at,
    }));
  }

  async saveVerifiers(vs: readonly StoredVerifier[]): Promise<void> {
    if (vs.length === 0) return;
    await this.tx("save_verifiers", async (c) => {
      for (const v of vs) {
        await c.query("INSERT INTO scram_verifiers (account, hash, salt, iterations, stored_key, server_key, source, upstream, sealed, updated_at) " +
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (account, hash) DO UPDATE SET salt = excluded.salt, " +
          "iterations = excluded.iterations, stored_key = excluded.stored_key, server_key = excluded.server_key, source = excluded.source, " +
          "upstream = excluded.upstream, sealed = excluded.sealed, updated_at = excluded.updated_at",
          [v.account, v.hash, v.salt, v.iterations, v.storedKey, v.serverKey, v.source, v.upstream, v.sealed ?? null, v.updatedAt]);
      }
    });
  }

  async deleteVerifiers(account: string, hash?: ScramHash): Promise<number> {
    const r = hash === undefined
      ? await this.query("delete_verifiers", "DELETE FROM scram_verifiers WHERE account = $1", [account])
      : await this.query("delete_verifiers", "DELETE FROM scram_verifiers WHERE account = $1 AND hash = $2", [account, hash]);
    return r.rowCount ?? 0;
  }

  async fastToken(account: string, hash: Buffer, now: number): Promise<FastToken | undefined> {
    const r = (await this.query<FastRow>("fast_token",
      "SELECT * FROM fast_tokens WHERE account = $1 AND hash = $2 AND expires_at > $3", [account, hash, now])).rows[0];
    return r && {
      account: r.account, hash: r.hash, agent: r.agent, responder: r.responder, sealed: r.sealed, expiresAt: r.expires_at,
      count: r.count, createdAt: r.created_at,
    };
  }

  async saveFastToken(t: FastToken, keep: number, now: number): Promise<void> {
    await this.tx("save_fast_token", async (c) => {
      await c.query("DELETE FROM fast_tokens WHERE account = $1 AND expires_at <= $2", [t.account, now]);
      await c.query("INSERT INTO fast_tokens (account, hash, agent, responder, sealed, expires_at, count, created_at) " +
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account, hash) DO UPDATE SET agent = excluded.agent, " +
        "responder = excluded.responder, sealed = excluded.sealed, expires_at = excluded.expires_at, count = excluded.count, " +
        "created_at = excluded.created_at",
        [t.account, t.hash, t.agent, t.responder, t.sealed, t.expiresAt, t.count, t.createdAt]);
      await c.query("DELETE FROM fast_tokens WHERE account = $1 AND agent = $2 AND hash NOT IN " +
        "(SELECT hash FROM fast_tokens WHERE account = $1 AND agent = $2 ORDER BY created_at DESC LIMIT $3)", [t.account, t.agent, keep]);
    });
  }

  async useFastToken(account: string, hash: Buffer, count: number): Promise<boolean> {
    const r = await this.query("use_fast_token", "UPDATE fast_tokens SET count = $1 WHERE account = $2 AND hash = $3 AND count < $1",
      [count, account, hash]);
    return (r.rowCount ?? 0) > 0;
  }

  async deleteFastTokens(account: string, hash?: Buffer): Promise<number> {
    const r = hash === undefined
      ? await this.query("delete_fast_tokens", "DELETE FROM fast_tokens WHERE account = $1", [account])
      : await this.query("delete_fast_tokens", "DELETE FROM fast_tokens WHERE account = $1 AND hash = $2", [account, hash]);
    return r.rowCount ?? 0;
  }

  async keptAnchors(): Promise<{ account: string; sealed: Buffer }[]> {
    return (await this.query<{ account: string; sealed: Buffer }>("kept_anchors", "SELECT account, sealed FROM kept_anchors ORDER BY account")).rows;
  }

  async saveKeptAnchor(account: string, sealed: Buffer, now: number): Promise<void> {
    await this.query("save_kept_anchor", "INSERT INTO kept_anchors (account, sealed, updated_at) VALUES ($1, $2, $3) " +
      "ON CONFLICT (account) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at", [account, sealed, now]);
  }

  async deleteKeptAnchor(account: string): Promise<void> {
    await this.query("delete_kept_anchor", "DELETE FROM kept_anchors WHERE account = $1", [account]);
  }

  // --- LeaseStore (SPEC H1–H4) ---

  async heartbeat(id: string, address: string): Promise<void> {
    await this.query("heartbeat", "INSERT INTO replicas (id, address, seen_at) VALUES ($1, $2, clock_timestamp()) " +
      "ON CONFLICT (id) DO UPDATE SET address = excluded.address, seen_at = excluded.seen_at", [id, address]);
  }

  async replica(id: string): Promise<ReplicaInfo | undefined> {
    const r = (await this.query<{ id: string; address: string; ms: number }>("replica",
      "SELECT id, address, round(extract(epoch FROM (clock_timestamp() - seen_at)) * 1000)::float8 AS ms FROM replicas WHERE id = $1", [id])).rows[0];
    return r && { id: r.id, address: r.address, seenMsAgo: r.ms };
  }

  async retire(id: string): Promise<void> {
    await this.query("retire", "DELETE FROM replicas WHERE id = $1", [id]);
  }

  async lease(account: string): Promise<Lease | undefined> {
    const r = (await this.query<LeaseRow>("lease", `SELECT ${LEASE_COLUMNS} FROM account_leases WHERE account = $1`, [account])).rows[0];
    return r && toLease(r);
  }

  async acquire(account: string, owner: string, ttlMs: number): Promise<Lease> {
    // One statement: insert, or take over an expired lease (a new token from the sequence), or extend one's own (the
    // token stays; no token is drawn when the caller holds the lease already). The row lock of ON CONFLICT DO UPDATE
    // serializes racing acquirers: the second sees the first's fresh lease and its WHERE fails.
    const won = (await this.query<LeaseRow>("acquire",
      "INSERT INTO account_leases AS l (account, owner, token, expires_at) VALUES ($1, $2, " +
        "CASE WHEN EXISTS (SELECT 1 FROM account_leases WHERE account = $1 AND owner = $2) THEN 0 ELSE nextval('account_lease_tokens') END, " +
        "clock_timestamp() + $3 * interval '1 millisecond') " +
      "ON CONFLICT (account) DO UPDATE SET token = CASE WHEN l.owner = excluded.owner THEN l.token ELSE excluded.token END, " +
        "owner = excluded.owner, expires_at = excluded.expires_at " +
        "WHERE l.owner = excluded.owner OR (l.expires_at <= clock_timestamp() AND excluded.token > 0) " +
      `RETURNING ${LEASE_COLUMNS}`, [account, owner, ttlMs])).rows[0];
    if (won) return toLease(won);
    const held = await this.lease(account);
    if (!held) throw new StoreError(`store postgres ${this.label()}: acquire: the lease row vanished`);
    return held;
  }

  async renew(owner: string, held: ReadonlyMap<string, number>, ttlMs: number): Promise<string[]> {
    if (held.size === 0) return [];
    const accounts = [...held.keys()];
    const tokens = accounts.map((a) => held.get(a) ?? 0);
    const { rows } = await this.query<{ account: string }>("renew",
      "WITH h AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS h(account, token)), " +
      "u AS (UPDATE account_leases l SET expires_at = clock_timestamp() + $4 * interval '1 millisecond' FROM h " +
        "WHERE l.account = h.account AND l.token = h.token AND l.owner = $1 RETURNING l.account) " +
      "SELECT h.account FROM h WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.account = h.account) ORDER BY h.account",
      [owner, accounts, tokens, ttlMs]);
    return rows.map((r) => r.account);
  }

  async release(owner: string, held: ReadonlyMap<string, number>): Promise<void> {
    if (held.size === 0) return;
    const accounts = [...held.keys()];
    const tokens = accounts.map((a) => held.get(a) ?? 0);
    await this.query("release",
      "UPDATE account_leases l SET expires_at = clock_timestamp() FROM unnest($2::text[], $3::bigint[]) AS h(account, token) " +
        "WHERE l.account = h.account AND l.token = h.token AND l.owner = $1 AND l.expires_at > clock_timestamp()",
      [owner, accounts, tokens]);
  }

  async orphanedKeptAnchors(): Promise<string[]> {
    const { rows } = await this.query<{ account: string }>("orphaned_kept_anchors",
      "SELECT k.account FROM kept_anchors k LEFT JOIN account_leases l ON l.account = k.account " +
        "WHERE l.account IS NULL OR l.expires_at <= clock_timestamp() ORDER BY k.account");
    return rows.map((r) => r.account);
  }

  async notifyReleased(): Promise<void> {
    // The payload is this instance's name: its own LISTEN connection ignores it.
    await this.query("notify_released", "SELECT pg_notify($1, $2)", [LEASE_CHANNEL, this.instance]);
  }

  onReleased(listener: () => void): () => void {
    this.released.add(listener);
    this.listen(false);
    return () => {
      this.released.delete(listener);
    };
  }

  /** One dedicated connection (not from the pool) LISTENs; after an error it reconnects a second later. */
  private listen(again: boolean): void {
    if (this.listenClient || this.closed || this.released.size === 0) return;
    const c = new pg.Client({ ...this.clientConfig });
    this.listenClient = c;
    let failed = false;
    const retry = (err?: unknown) => {
      if (failed) return;
      failed = true;
      if (err !== undefined && !this.closed) this.log.warn({ ...this.where, err: errText(err) }, "store LISTEN connection lost; reconnecting");
      c.removeAllListeners("notification");
      void c.end().catch(() => {});
      if (this.listenClient === c) this.listenClient = undefined;
      if (this.closed) return;
      this.relisten = setTimeout(() => { this.relisten = undefined; this.listen(true); }, 1000);
      this.relisten.unref();
    };
    c.on("error", retry);
    c.on("end", () => retry(new Error("connection ended")));
    c.on("notification", (n) => {
      if (n.channel === LEASE_CHANNEL && n.payload !== this.instance) this.emitReleased();
    });
    c.connect().then(() => c.query(`LISTEN ${LEASE_CHANNEL}`)).then(() => {
      // Releases may have been missed while the connection was down: a hint is cheap.
      if (again) this.emitReleased();
    }, retry);
  }

  private emitReleased(): void {
    for (const l of [...this.released]) {
      try {
        l();
      } catch (err) {
        this.log.warn({ err: errText(err) }, "lease release listener failed");
      }
    }
  }
}

function toLease(r: LeaseRow): Lease {
  return { account: r.account, owner: r.owner, token: r.token, expiresInMs: r.ms };
}

/** An error as one line: its message, its code, or the messages of an AggregateError (a connect to several addresses). */
export function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || (err instanceof AggregateError ? err.errors.map((e: unknown) => errText(e)).join("; ") : err.name);
    return typeof code === "string" && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(err);
}

/** The server or the connection failed (not the statement): connection errors, admin shutdown, out of resources, timeouts. */
function unavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (!(err instanceof pg.DatabaseError)) return true;
  return typeof code === "string" && /^(08|53|57)/.test(code);
}

function retryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === "40001" || code === "40P01";
}
