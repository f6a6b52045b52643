// `mucmux import-verifiers`: copies the SCRAM verifiers an XMPP server keeps in its own account storage into
// mucmux's store (SPEC A12). It reads the server's files read-only and prints counts per host; it never prints
// or logs a key, a salt or a password. Exit codes: 0 done, 1 some accounts or the source failed, 2 usage.
import { statSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../../config/index.js";
import { SqliteStore, StoreError } from "../../store/sqlite.js";
import { PgStore, describePgUrl, redactPgUrls } from "../../store/pg.js";
import type { Store } from "../../store/store.js";
import { createLogger } from "../../log.js";
import { EjabberdHostMissing, EjabberdSourceError, readEjabberdDump, readEjabberdSqlite } from "./ejabberd.js";
import { readProsodyAccounts } from "./prosody.js";
import type { ImportRecord } from "./records.js";
import { formatSummary, storeRecords } from "./run.js";
import type { SqlEscapes } from "./sql-dump.js";

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const NAME = "mucmux import-verifiers";

export const IMPORT_HELP = `Usage: ${NAME} (--prosody-data DIR | --ejabberd-sqlite FILE | --ejabberd-sql FILE)
                                [--host DOMAIN] [--config FILE] [--store PATH]

Copies the SCRAM verifiers the XMPP server keeps for its accounts into mucmux's store, so that
mucmux can check clients' SCRAM logins with the server's own salt and keys. Reads the server's
files only (mount them read-only); never prints a key, a salt or a password.

Sources (exactly one):
  --prosody-data DIR        Prosody 0.12 data_path with the file store (storage = "internal",
                            authentication = "internal_hashed"): DIR/<host>/accounts/<user>.dat
  --ejabberd-sqlite FILE    ejabberd 23.01 SQLite database (sql_type: sqlite, auth_method: sql,
                            auth_password_format: scram), opened read-only
  --ejabberd-sql FILE       SQL dump written by \`ejabberdctl export2sql HOST FILE\` (ejabberd 23.01,
                            auth_password_format: scram); only its users rows are read

Options:
  --host DOMAIN             import this host only; required when the rows do not name their host
                            (ejabberd without new_sql_schema)
  --ejabberd-sql-escapes auto|backslash|standard
                            how the dump escapes strings: backslash for every sql_type but sqlite
                            (and for servers without SQL), standard for sql_type: sqlite (default: auto)
  --config FILE             mucmux configuration whose store is written: store.url (PostgreSQL) when set,
                            else store.path (env MUCMUX_CONFIG)
  --store PATH|URL          SQLite file, or postgres://… URL, to write (default: the configuration's store)
  -h, --help                show this help and exit

Exit status: 0 done (accounts without a SCRAM verifier are skipped), 1 some accounts or the source
could not be read, 2 usage error.
`;

class UsageError extends Error {}

interface Parsed {
  source: { kind: "prosody" | "ejabberd-sqlite" | "ejabberd-sql"; path: string };
  host: string | undefined;
  escapes: SqlEscapes | "auto";
  config: string | undefined;
  store: string | undefined;
}

/** Where the import writes: a SQLite file, or the PostgreSQL store several replicas share (SPEC H). */
type Target = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string; timeoutMs: number };

const isPgUrl = (s: string) => /^postgres(ql)?:\/\//.test(s);

export async function importVerifiersCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  let args: Parsed | "help";
  let target: Target;
  try {
    args = parse(argv);
    if (args === "help") { io.stdout(IMPORT_HELP); return 0; }
    checkSource(args.source);
    target = args.store !== undefined
      ? (isPgUrl(args.store) ? { kind: "postgres", url: args.store, timeoutMs: 10_000 } : { kind: "sqlite", path: args.store })
      : configuredStore(args.config, io);
    if (target.kind === "sqlite" && target.path === ":memory:") {
      throw new UsageError("the store is ':memory:': an import there keeps nothing (give --store PATH)");
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.stderr(`${NAME}: ${err.message}\n(see ${NAME} --help)\n`);
      return 2;
    }
    throw err;
  }

  const storeName = target.kind === "sqlite" ? target.path : describeTarget(target.url);
  io.stdout(`importing SCRAM verifiers from ${describe(args.source)} into ${storeName}\n`);
  let found: AsyncIterable<ImportRecord> | ImportRecord[];
  try {
    // ejabberd's sources are read whole here (a broken one is refused before the store is touched);
    // Prosody's directory is read file by file while the records are stored.
    found = await records(args);
  } catch (err) {
    if (err instanceof EjabberdHostMissing) { io.stderr(`${NAME}: ${err.message}\n(see ${NAME} --help)\n`); return 2; }
    if (err instanceof EjabberdSourceError) { io.stderr(`${NAME}: ${err.message}\n`); return 1; }
    throw err;
  }
  let store: Store;
  try {
    store = target.kind === "sqlite"
      ? new SqliteStore(target.path)
      : await PgStore.open(target.url, { poolSize: 2, timeoutMs: target.timeoutMs, log: createLogger("silent") });
  } catch (err) {
    // StoreError (refused: not durable, damaged, newer schema, unreachable), or SQLite's own (cannot open the file).
    const text = err instanceof StoreError ? err.message : `store ${storeName}: ${err instanceof Error ? err.message : String(err)}`;
    io.stderr(`${NAME}: ${text}\n`);
    return 1;
  }
  try {
    const summary = await storeRecords(found, store);
    const { out, err } = formatSummary(summary);
    io.stdout(out);
    if (err) io.stderr(err);
    return summary.failures.length > 0 ? 1 : 0;
  } finally {
    if (store instanceof PgStore) await store.end();
    else store.close();
  }
}

async function records(args: Parsed): Promise<AsyncIterable<ImportRecord> | ImportRecord[]> {
  switch (args.source.kind) {
    case "prosody": return readProsodyAccounts(args.source.path, { host: args.host });
    case "ejabberd-sqlite": return readEjabberdSqlite(args.source.path, { host: args.host });
    case "ejabberd-sql": return readEjabberdDump(args.source.path, { host: args.host, escapes: args.escapes });
  }
}

function parse(argv: readonly string[]): Parsed | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        "prosody-data": { type: "string" },
        "ejabberd-sqlite": { type: "string" },
        "ejabberd-sql": { type: "string" },
        "ejabberd-sql-escapes": { type: "string" },
        host: { type: "string" },
        config: { type: "string" },
        store: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    // parseArgs quotes the argument it refuses: never echo a URL with its password back.
    throw new UsageError(redactPgUrls(err instanceof Error ? err.message.split("\n")[0] ?? "" : String(err)));
  }
  if (values.help) return "help";
  const sources = ([["prosody", values["prosody-data"]], ["ejabberd-sqlite", values["ejabberd-sqlite"]], ["ejabberd-sql", values["ejabberd-sql"]]] as const)
    .filter((s): s is readonly [Parsed["source"]["kind"], string] => s[1] !== undefined);
  if (sources.length !== 1) throw new UsageError("give exactly one of --prosody-data, --ejabberd-sqlite, --ejabberd-sql");
  const [kind, path] = sources[0] as readonly [Parsed["source"]["kind"], string];
  if (path === "") throw new UsageError(`--${kind === "prosody" ? "prosody-data" : kind} needs a path`);
  const escapes = values["ejabberd-sql-escapes"] ?? "auto";
  if (escapes !== "auto" && escapes !== "backslash" && escapes !== "standard") throw new UsageError("--ejabberd-sql-escapes is auto, backslash or standard");
  if (values["ejabberd-sql-escapes"] !== undefined && kind !== "ejabberd-sql") throw new UsageError("--ejabberd-sql-escapes goes with --ejabberd-sql");
  const host = values.host;
  if (host !== undefined && !/^[^\s@/]+$/.test(host)) throw new UsageError("--host is a domain name");
  if (values.store === "") throw new UsageError("--store needs a path");
  return { source: { kind, path }, host, escapes, config: values.config, store: values.store };
}

function checkSource(source: Parsed["source"]): void {
  let st;
  try {
    st = statSync(source.path);
  } catch (err) {
    throw new UsageError(`cannot read ${source.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (source.kind === "prosody" && !st.isDirectory()) throw new UsageError(`${source.path} is not a directory (--prosody-data is Prosody's data_path)`);
  if (source.kind !== "prosody" && !st.isFile()) throw new UsageError(`${source.path} is not a file`);
}

/** The store of the configuration the main command would load (file from --config or MUCMUX_CONFIG, env). */
function configuredStore(file: string | undefined, io: CommandIo): Target {
  const config = loadConfig({ file, env: io.env, onWarning: (m) => io.stderr(`${NAME}: warning: ${m}\n`) });
  const { url, path, timeoutSeconds } = config.store;
  return url !== undefined ? { kind: "postgres", url, timeoutMs: timeoutSeconds * 1000 } : { kind: "sqlite", path };
}

/** A PostgreSQL store as printed: never the user or the password of its URL. */
function describeTarget(url: string): string {
  const d = describePgUrl(url);
  return `PostgreSQL ${d.host}:${d.port}/${d.database}`;
}

function describe(source: Parsed["source"]): string {
  switch (source.kind) {
    case "prosody": return `Prosody data directory ${source.path}`;
    case "ejabberd-sqlite": return `ejabberd SQLite database ${source.path}`;
    case "ejabberd-sql": return `ejabberd SQL dump ${source.path}`;
  }
}
