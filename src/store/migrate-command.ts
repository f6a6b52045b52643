// `mucmux store-migrate`: copies an SQLite store (store.path) into PostgreSQL (store.url) when an installation grows
// from one replica to several. Registrations with their catch-up points, the offline queue in its order, SCRAM
// verifiers, FAST tokens and kept anchors go over in one PostgreSQL transaction: all of it or nothing. The SQLite file
// is opened read-only. Prints counts, never a row, a key or the URL's password. Exit codes: 0 done, 1 failed (source,
// target, or a target that has data already without --force), 2 usage.
import { statSync } from "node:fs";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { ConfigError, loadConfig } from "../config/index.js";
import { describePgUrl, errText, redactPgUrls } from "./pg.js";
import { migratePg } from "./pg-schema.js";
import { SCHEMA_VERSION } from "./schema.js";
import { StoreError } from "./store.js";

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const NAME = "mucmux store-migrate";

export const STORE_MIGRATE_HELP = `Usage: ${NAME} [--from SQLITE_FILE] [--to postgres://USER:PASSWORD@HOST:PORT/DATABASE]
                            [--config FILE] [--force]

Copies mucmux's SQLite store into PostgreSQL, to run several replicas on one shared store:
room registrations with their catch-up points, queued offline messages (in their order),
SCRAM verifiers, FAST tokens and kept anchors, in one PostgreSQL transaction. The SQLite file
is only read. Stop mucmux first: what it writes after the copy started is not copied.

Options:
  --from FILE      the SQLite store (default: store.path of the configuration)
  --to URL         the PostgreSQL store (default: store.url of the configuration); its schema is
                   created or upgraded first
  --config FILE    mucmux configuration to take store.path and store.url from (env MUCMUX_CONFIG;
                   MUCMUX_STORE_URL and MUCMUX_STORE_PATH apply as for mucmux itself)
  --force          replace what the PostgreSQL store has already (registrations, queue, verifiers,
                   FAST tokens, kept anchors; leases stay); without it a store with data is refused
  -h, --help       show this help and exit

Exit status: 0 copied, 1 the copy failed (nothing was written), 2 usage error.
`;

class UsageError extends Error {}

interface Parsed { from: string | undefined; to: string | undefined; config: string | undefined; force: boolean }

/** What was copied, per kind. */
export interface MigrateCounts {
  registrations: number;
  queued: number;
  verifiers: number;
  fastTokens: number;
  keptAnchors: number;
}

const TABLES = ["offline_registrations", "offline_queue", "scram_verifiers", "fast_tokens", "kept_anchors"] as const;

export async function storeMigrateCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  let from: string;
  let to: string;
  let force: boolean;
  try {
    const args = parse(argv);
    if (args === "help") { io.stdout(STORE_MIGRATE_HELP); return 0; }
    force = args.force;
    let configured: { path: string; url: string | undefined } | undefined;
    const config = () => (configured ??= configuredStore(args.config, io));
    const noConfig = args.config === undefined && !io.env.MUCMUX_CONFIG && !io.env.MUCMUX_STORE_URL;
    if (args.to === undefined && noConfig) throw new UsageError("no PostgreSQL store: give --to postgres://... or --config FILE with store.url");
    from = args.from ?? config().path;
    to = args.to ?? config().url ?? "";
    if (to === "") throw new UsageError("no PostgreSQL store: give --to postgres://... or set store.url in the configuration");
    if (!/^postgres(ql)?:\/\//.test(to)) throw new UsageError("--to is a postgres:// URL");
    if (from === ":memory:") throw new UsageError("the SQLite store is ':memory:': there is nothing to copy (give --from FILE)");
    try {
      if (!statSync(from).isFile()) throw new UsageError(`${from} is not a file`);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.stderr(`${NAME}: ${err.message}\n(see ${NAME} --help)\n`);
      return 2;
    }
    throw err;
  }
  const where = describePgUrl(to);
  const target = `postgres ${where.host}:${where.port}/${where.database}`;
  io.stdout(`copying the SQLite store ${from} into ${target}\n`);

  let source: Database.Database;
  try {
    source = openSource(from);
  } catch (err) {
    io.stderr(`${NAME}: store ${from}: ${errText(err)}\n`);
    return 1;
  }
  const client = new pg.Client({ connectionString: to, connectionTimeoutMillis: 10_000 });
  client.on("error", () => {}); // surfaces through the pending query
  try {
    await client.connect();
    await migratePg(client);
    const counts = await copy(source, client, force);
    io.stdout(`copied: ${counts.registrations} registrations, ${counts.queued} queued messages, ${counts.verifiers} SCRAM verifiers, ` +
      `${counts.fastTokens} FAST tokens, ${counts.keptAnchors} kept anchors\n`);
    return 0;
  } catch (err) {
    io.stderr(`${NAME}: ${target}: ${err instanceof StoreError ? err.message : errText(err)}\n`);
    return 1;
  } finally {
    source.close();
    await client.end().catch(() => {});
  }
}

/** Read-only, at a schema version this mucmux knows, and not damaged (PRAGMA quick_check). */
function openSource(path: string): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const meta = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    const row = meta ? db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined : undefined;
    if (!row) throw new Error("not a mucmux store (no schema version)");
    const version = Number(row.value);
    if (version > SCHEMA_VERSION) throw new Error(`schema version ${version}; this mucmux understands up to ${SCHEMA_VERSION}`);
    if (version < SCHEMA_VERSION) {
      throw new Error(`schema version ${version} is older than this mucmux's ${SCHEMA_VERSION}: start this mucmux on it once (it migrates the file), then copy`);
    }
    const check = db.pragma("quick_check(5)") as { quick_check: string }[];
    if (!(check.length === 1 && check[0]?.quick_check === "ok")) throw new Error("failed its integrity check (PRAGMA quick_check); restore it from a backup");
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

async function copy(source: Database.Database, c: pg.Client, force: boolean): Promise<MigrateCounts> {
  await c.query("BEGIN");
  try {
    // Lock the tables against a replica that might write while the copy runs (mucmux should be stopped anyway).
    await c.query(`LOCK TABLE ${TABLES.join(", ")} IN EXCLUSIVE MODE`);
    const present = (await c.query<{ t: string }>(TABLES.map((t) => `SELECT '${t}' AS t WHERE EXISTS (SELECT 1 FROM ${t})`).join(" UNION ALL "))).rows;
    if (present.length > 0) {
      if (!force) {
        throw new StoreError(`the PostgreSQL store has data already (${present.map((r) => r.t).join(", ")}): ` +
          "nothing was copied; give --force to replace it");
      }
      await c.query(`DELETE FROM ${TABLES.join("; DELETE FROM ")}`);
    }
    const counts: MigrateCounts = { registrations: 0, queued: 0, verifiers: 0, fastTokens: 0, keptAnchors: 0 };
    counts.registrations = await insertAll(c, "offline_registrations",
      ["account", "room", "nick", "offline", "via_mucmux", "updated_at", "last_key", "last_at"],
      source.prepare("SELECT account, room, nick, offline, via_mucmux, updated_at, last_key, last_at FROM offline_registrations ORDER BY account, room")
        .iterate() as Iterable<Record<string, unknown>>,
      (r) => [r.account, r.room, r.nick, r.offline === 1, r.via_mucmux === 1, r.updated_at, r.last_key, r.last_at]);
    // In id order: the new identity ids keep the delivery order (the ids themselves are new).
    counts.queued = await insertAll(c, "offline_queue", ["account", "room", "stanza", "received_at", "expires_at", "key"],
      source.prepare("SELECT account, room, stanza, received_at, expires_at, key FROM offline_queue ORDER BY id").iterate() as Iterable<Record<string, unknown>>,
      (r) => [r.account, r.room, r.stanza, r.received_at, r.expires_at, r.key]);
    counts.verifiers = await insertAll(c, "scram_verifiers",
      ["account", "hash", "salt", "iterations", "stored_key", "server_key", "source", "upstream", "sealed", "updated_at"],
      source.prepare("SELECT * FROM scram_verifiers ORDER BY account, hash").iterate() as Iterable<Record<string, unknown>>,
      (r) => [r.account, r.hash, r.salt, r.iterations, r.stored_key, r.server_key, r.source, r.upstream === 1, r.sealed, r.updated_at]);
    counts.fastTokens = await insertAll(c, "fast_tokens", ["account", "hash", "agent", "responder", "sealed", "expires_at", "count", "created_at"],
      source.prepare("SELECT * FROM fast_tokens ORDER BY account, created_at").iterate() as Iterable<Record<string, unknown>>,
      (r) => [r.account, r.hash, r.agent, r.responder, r.sealed, r.expires_at, r.count, r.created_at]);
    counts.keptAnchors = await insertAll(c, "kept_anchors", ["account", "sealed", "updated_at"],
      source.prepare("SELECT account, sealed, updated_at FROM kept_anchors ORDER BY account").iterate() as Iterable<Record<string, unknown>>,
      (r) => [r.account, r.sealed, r.updated_at]);
    await c.query("COMMIT");
    return counts;
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
}

/** Multi-row INSERTs of up to 500 rows, in the order given. */
async function insertAll<R>(c: pg.Client, table: string, columns: string[], rows: Iterable<R>, values: (r: R) => unknown[]): Promise<number> {
  const batch: unknown[][] = [];
  let n = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const params: unknown[] = [];
    const tuples = batch.map((row) => `(${row.map((v) => { params.push(v); return `$${params.length}`; }).join(", ")})`);
    await c.query(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${tuples.join(", ")}`, params);
    n += batch.length;
    batch.length = 0;
  };
  for (const r of rows) {
    batch.push(values(r));
    if (batch.length >= 500) await flush();
  }
  await flush();
  return n;
}

function parse(argv: readonly string[]): Parsed | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: "string" },
        to: { type: "string" },
        config: { type: "string" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    // parseArgs quotes the argument it refuses: never echo a URL with its password back.
    const text = err instanceof Error ? err.message.split("\n")[0] ?? "" : String(err);
    throw new UsageError(redactPgUrls(text));
  }
  if (values.help) return "help";
  if (values.from === "") throw new UsageError("--from needs a path");
  return { from: values.from, to: values.to, config: values.config, force: values.force ?? false };
}

/** store.path and store.url of the configuration mucmux would load (file from --config or MUCMUX_CONFIG, env). */
function configuredStore(file: string | undefined, io: CommandIo): { path: string; url: string | undefined } {
  const config = loadConfig({ file, env: io.env, onWarning: (m) => io.stderr(`${NAME}: warning: ${m}\n`) });
  return { path: config.store.path, url: config.store.url };
}
