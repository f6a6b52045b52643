// PostgreSQL schema and its migrations, versioned on their own (not SQLite's numbers) in a `meta` table like SQLite's.
// Every step has its way back. Several replicas may start at once: migratePg holds a PostgreSQL advisory lock while it
// reads the version and applies steps, each step in one transaction, so exactly one replica migrates and the others
// find the work done.
import type pg from "pg";
import { StoreError } from "./store.js";

export const PG_SCHEMA_VERSION = 2;

/** The advisory lock key of the migrations ('mucmux' in ASCII). */
const LOCK = "120350946719096";

interface Step { up: string; down: string }

const STEPS: Record<number, Step> = {
  // 1: everything the SQLite store keeps at its schema 6 (SPEC D, A10–A15, G6). Times are Unix milliseconds (bigint),
  // as the callers give them; only leases (step 2) use the database's clock.
  1: {
    up: `
      CREATE TABLE offline_registrations (
        account text NOT NULL,
        room text NOT NULL,
        nick text NOT NULL,
        offline boolean NOT NULL,
        via_mucmux boolean NOT NULL,
        updated_at bigint NOT NULL,
        last_key text,
        last_at bigint,
        PRIMARY KEY (account, room)
      );
      -- Identity ids are never reused, so an id handed to a session names one message for good. A replica delivering
      -- a message claims it (claimed_by, claimed_until) so another replica's pending() skips it.
      CREATE TABLE offline_queue (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account text NOT NULL,
        room text NOT NULL,
        stanza text NOT NULL,
        received_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        key text,
        claimed_by text,
        claimed_until timestamptz
      );
      CREATE INDEX offline_queue_account ON offline_queue (account, id);
      CREATE INDEX offline_queue_room ON offline_queue (account, room, id);
      CREATE INDEX offline_queue_expiry ON offline_queue (expires_at);
      CREATE UNIQUE INDEX offline_queue_key ON offline_queue (account, room, key) WHERE key IS NOT NULL;
      CREATE TABLE scram_verifiers (
        account text NOT NULL,
        hash text NOT NULL,
        salt bytea NOT NULL,
        iterations integer NOT NULL,
        stored_key bytea NOT NULL,
        server_key bytea NOT NULL,
        source text NOT NULL,
        upstream boolean NOT NULL,
        sealed bytea,
        updated_at bigint NOT NULL,
        PRIMARY KEY (account, hash)
      );
      CREATE TABLE fast_tokens (
        account text NOT NULL,
        hash bytea NOT NULL,
        agent text NOT NULL,
        responder bytea NOT NULL,
        sealed bytea NOT NULL,
        expires_at bigint NOT NULL,
        count bigint NOT NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (account, hash)
      );
      CREATE INDEX fast_tokens_agent ON fast_tokens (account, agent, created_at);
      CREATE TABLE kept_anchors (
        account text PRIMARY KEY,
        sealed bytea NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
    down: "DROP TABLE kept_anchors; DROP TABLE fast_tokens; DROP TABLE scram_verifiers; DROP TABLE offline_queue; DROP TABLE offline_registrations;",
  },
  // 2: several replicas (SPEC H1–H4): their announcements and the accounts' leases, with fencing tokens from a sequence.
  2: {
    up: `
      CREATE TABLE replicas (
        id text PRIMARY KEY,
        address text NOT NULL,
        seen_at timestamptz NOT NULL
      );
      CREATE SEQUENCE account_lease_tokens AS bigint;
      CREATE TABLE account_leases (
        account text PRIMARY KEY,
        owner text NOT NULL,
        token bigint NOT NULL,
        expires_at timestamptz NOT NULL
      );
    `,
    down: "DROP TABLE account_leases; DROP SEQUENCE account_lease_tokens; DROP TABLE replicas;",
  },
};

/**
 * Bring the database `client` is connected to to `target` (default PG_SCHEMA_VERSION), up or down; refuses a schema
 * newer than this mucmux knows. Holds the migrations' advisory lock throughout. Returns the version it found.
 */
export async function migratePg(client: pg.ClientBase, target = PG_SCHEMA_VERSION): Promise<number> {
  if (!Number.isInteger(target) || target < 0 || target > PG_SCHEMA_VERSION) throw new Error(`no schema version ${target} (0..${PG_SCHEMA_VERSION})`);
  await client.query(`SELECT pg_advisory_lock(${LOCK})`);
  try {
    await client.query("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)");
    const row = (await client.query<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")).rows[0];
    const version = row ? Number(row.value) : 0;
    if (version > PG_SCHEMA_VERSION) {
      throw new StoreError(`PostgreSQL store has schema version ${version}; this mucmux understands up to ${PG_SCHEMA_VERSION} (a newer mucmux wrote it)`);
    }
    const step = async (sql: string, to: number) => {
      await client.query("BEGIN");
      try {
        if (sql) await client.query(sql);
        await client.query("INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(to)]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    };
    for (let v = version + 1; v <= target; v++) await step(STEPS[v]?.up ?? "", v);
    for (let v = version; v > target; v--) await step(STEPS[v]?.down ?? "", v - 1);
    return version;
  } finally {
    await client.query(`SELECT pg_advisory_unlock(${LOCK})`).catch(() => {});
  }
}
