// SQLite schema and its migrations. The version lives in the `meta` table; each step runs in one
// transaction, so a store is always at a version some mucmux understands.
import type Database from "better-sqlite3";

export const SCHEMA_VERSION = 6;

const STEPS: Record<number, string> = {
  // 1: the relay keeps nothing durable yet; only `meta` exists.
  1: "",
  // 2: MUC offline delivery (SPEC D): registrations with the offline flag, and the message queue.
  2: `
    CREATE TABLE offline_registrations (
      account TEXT NOT NULL,
      room TEXT NOT NULL,
      nick TEXT NOT NULL,
      offline INTEGER NOT NULL,
      via_mucmux INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      PRIMARY KEY (account, room)
    ) WITHOUT ROWID;
    -- AUTOINCREMENT: ids are never reused, so an id handed to a session names one message for good.
    CREATE TABLE offline_queue (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      account TEXT NOT NULL,
      room TEXT NOT NULL,
      stanza TEXT NOT NULL,
      received_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE INDEX offline_queue_account ON offline_queue (account, id);
    CREATE INDEX offline_queue_room ON offline_queue (account, room, id);
    CREATE INDEX offline_queue_expiry ON offline_queue (expires_at);
  `,
  // 3: exactly once across crashes and restarts (SPEC D6b, D7). Queued messages carry their stable id (the room's
  // stanza-id; at most once per account and room), and each registration remembers the newest stable id
  // the account's anchor received in that room: the point from which the room's archive is read after a
  // restart.
  3: `
    ALTER TABLE offline_queue ADD COLUMN key TEXT;
    CREATE UNIQUE INDEX offline_queue_key ON offline_queue (account, room, key) WHERE key IS NOT NULL;
    ALTER TABLE offline_registrations ADD COLUMN last_key TEXT;
    ALTER TABLE offline_registrations ADD COLUMN last_at INTEGER;
  `,
  // 4: SCRAM verifiers (SPEC A10–A13): per account and hash, learned at a login with the password or imported from
  // the server's own account storage. Never a password or a ClientKey in clear (docs/security.md).
  4: `
    CREATE TABLE scram_verifiers (
      account TEXT NOT NULL,
      hash TEXT NOT NULL,
      salt BLOB NOT NULL,
      iterations INTEGER NOT NULL,
      stored_key BLOB NOT NULL,
      server_key BLOB NOT NULL,
      source TEXT NOT NULL,
      upstream INTEGER NOT NULL,
      sealed BLOB,
      updated_at INTEGER NOT NULL,
      PRIMARY KEY (account, hash)
    ) WITHOUT ROWID;
  `,
  // 5: FAST tokens (SPEC A15): a hash of what the client presents, the account's secret sealed under a key
  // derived from it; never the token itself.
  5: `
    CREATE TABLE fast_tokens (
      account TEXT NOT NULL,
      hash BLOB NOT NULL,
      agent TEXT NOT NULL,
      responder BLOB NOT NULL,
      sealed BLOB NOT NULL,
      expires_at INTEGER NOT NULL,
      count INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (account, hash)
    ) WITHOUT ROWID;
    CREATE INDEX fast_tokens_agent ON fast_tokens (account, agent, created_at);
  `,
  // 6: kept anchors (SPEC G6, opt-in): the account's credentials and push registrations sealed under the
  // operator's key (anchors.keepKeyFile); never anything password-equivalent in clear.
  6: `
    CREATE TABLE kept_anchors (
      account TEXT PRIMARY KEY,
      sealed BLOB NOT NULL,
      updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
  `,
};

/**
 * The way back from each version to the one before (operators downgrading, and the tests that go to 0 and up again).
 * SQLite ≥ 3.35 drops columns (better-sqlite3 12 bundles 3.5x); an index on a column goes first.
 */
const DOWN: Record<number, string> = {
  1: "",
  2: "DROP TABLE offline_queue; DROP TABLE offline_registrations;",
  3: `
    DROP INDEX offline_queue_key;
    ALTER TABLE offline_queue DROP COLUMN key;
    ALTER TABLE offline_registrations DROP COLUMN last_key;
    ALTER TABLE offline_registrations DROP COLUMN last_at;
  `,
  4: "DROP TABLE scram_verifiers;",
  5: "DROP INDEX fast_tokens_agent; DROP TABLE fast_tokens;",
  6: "DROP TABLE kept_anchors;",
};

/**
 * Bring `db` to `target` (default SCHEMA_VERSION), up or down, one transaction per step; refuses a store written by a
 * newer mucmux (its steps are unknown here). Returns the version it found.
 */
export function migrate(db: Database.Database, path: string, target = SCHEMA_VERSION): number {
  if (!Number.isInteger(target) || target < 0 || target > SCHEMA_VERSION) throw new Error(`no schema version ${target} (0..${SCHEMA_VERSION})`);
  db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
  const version = row ? Number(row.value) : 0;
  if (version > SCHEMA_VERSION) {
    throw new Error(`store ${path} has schema version ${version}; this mucmux understands up to ${SCHEMA_VERSION}`);
  }
  const setVersion = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)");
  for (let v = version + 1; v <= target; v++) {
    db.transaction(() => {
      const sql = STEPS[v];
      if (sql) db.exec(sql);
      setVersion.run(String(v));
    })();
  }
  for (let v = version; v > target; v--) {
    db.transaction(() => {
      const sql = DOWN[v];
      if (sql) db.exec(sql);
      setVersion.run(String(v - 1));
    })();
  }
  return version;
}
