// ejabberd 23.01's own account storage, read for SPEC A12. With `auth_password_format: scram` its `users` table
// (sql/lite.sql; sql/lite.new.sql adds `server_host` under new_sql_schema) holds per account
//   password = base64 StoredKey, prefixed "sha256:" or "sha512:" unless the hash is SHA-1 (ejabberd_auth_sql
//              scram_hash_encode/2: auth_scram_hash names the hash; 23.01 has no hash column),
//   serverkey = base64 ServerKey, salt = base64 salt, iterationcount.
// With the plain format the row is (password, '', '', 0): nothing to import (get_password/2 reads it the same
// way). The Mnesia backend keeps the same #scram{} fields (base64 too) in its `passwd` table; `export2sql`
// writes them out as the SQL rows above (a plain password as `INSERT INTO users(username, password)`, without
// the SCRAM columns: ejabberd_auth_sql:export/1), which sql-dump.ts reads.
import Database from "better-sqlite3";
import { readFile, stat } from "node:fs/promises";
import type { ScramHash } from "../../store/store.js";
import { importedVerifier, UNKNOWN_HOST, VerifierFieldError, type ImportRecord } from "./records.js";
import { readUsersFromDump, SqlDumpError, type SqlEscapes } from "./sql-dump.js";

export interface EjabberdImportOptions {
  /**
   * The host the accounts belong to. Required unless the rows name it (`server_host`, new_sql_schema); with
   * `server_host` it selects that host's rows.
   */
  host?: string | undefined;
  now?: number;
}

export interface EjabberdDumpOptions extends EjabberdImportOptions {
  /** How the dump's string literals are escaped (sql-dump.ts); "auto" by default. */
  escapes?: SqlEscapes | "auto";
}

/** The whole source cannot be read: nothing was imported from it. */
export class EjabberdSourceError extends Error {}

/** The rows do not name their host and no --host was given: a usage error. */
export class EjabberdHostMissing extends EjabberdSourceError {}

/** A dump larger than this is refused: it is read whole (a V8 string holds at most about 512 MiB). */
const MAX_DUMP_BYTES = 256 * 1024 * 1024;
const COLUMNS = ["username", "password", "serverkey", "salt", "iterationcount"] as const;
const SCRAM_COLUMNS = ["serverkey", "salt", "iterationcount"] as const;

interface UserRow {
  username: unknown;
  server_host?: unknown;
  password: unknown;
  serverkey: unknown;
  salt: unknown;
  iterationcount: unknown;
}

/** The `users` table of an ejabberd SQLite database (sql_type: sqlite), opened read-only. */
export function readEjabberdSqlite(file: string, opts: EjabberdImportOptions = {}): ImportRecord[] {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new EjabberdSourceError(`${file}: cannot open it as an SQLite database (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    let columns: string[];
    try {
      columns = (db.prepare("SELECT name FROM pragma_table_info('users')").all() as { name: string }[]).map((c) => c.name.toLowerCase());
    } catch (err) {
      throw new EjabberdSourceError(`${file}: not a readable SQLite database (${err instanceof Error ? err.message : String(err)})`);
    }
    const withHost = checkColumns(file, columns, opts);
    const sql = `SELECT ${withHost ? "server_host, " : ""}${COLUMNS.join(", ")} FROM users ORDER BY ${withHost ? "server_host, " : ""}username`;
    const rows = db.prepare(sql).safeIntegers(true).all() as UserRow[];
    return rows.flatMap((row, n) => recordOf(row, `${file}: users row ${n + 1}`, opts) ?? []);
  } finally {
    db.close();
  }
}

/** The `users` rows of an `ejabberdctl export2sql` dump (or any dump of that shape). */
export async function readEjabberdDump(file: string, opts: EjabberdDumpOptions = {}): Promise<ImportRecord[]> {
  const size = (await stat(file)).size;
  if (size > MAX_DUMP_BYTES) throw new EjabberdSourceError(`${file}: larger than ${MAX_DUMP_BYTES / 1024 / 1024} MiB`);
  let dump;
  try {
    dump = readUsersFromDump(await readFile(file), opts.escapes ?? "auto");
  } catch (err) {
    if (err instanceof SqlDumpError) throw new EjabberdSourceError(`${file}: ${err.message}`);
    throw err;
  }
  const host = opts.host?.toLowerCase() ?? UNKNOWN_HOST;
  const records: ImportRecord[] = dump.errors.map((e) => ({ kind: "failed", host, where: `${file}:${e.line}`, reason: e.reason }));
  const columns = [...new Set(dump.rows.flatMap((r) => [...r.values.keys()]))];
  // A plain password is exported as INSERT INTO users(username, password): the SCRAM columns keep their defaults.
  if (dump.rows.length > 0) checkColumns(file, [...columns, ...SCRAM_COLUMNS], opts);
  for (const row of dump.rows) {
    const present = SCRAM_COLUMNS.filter((c) => row.values.has(c));
    if (present.length > 0 && present.length < SCRAM_COLUMNS.length) {
      records.push({ kind: "failed", host, where: `${file}:${row.line}`, reason: `the INSERT names ${present.join(", ")} but not all of ${SCRAM_COLUMNS.join(", ")}` });
      continue;
    }
    const fields = { serverkey: "", salt: "", iterationcount: 0, ...Object.fromEntries(row.values) } as unknown as UserRow;
    const record = recordOf(fields, `${file}:${row.line}`, opts);
    if (record) records.push(record);
  }
  return records;
}

/** True when the rows carry `server_host`. Throws EjabberdSourceError for a layout that is not 23.01's. */
function checkColumns(file: string, columns: readonly string[], opts: EjabberdImportOptions): boolean {
  // ejabberd 25.03 added users.type (several verifiers per account): another layout, not read here.
  if (columns.includes("type")) throw new EjabberdSourceError(`${file}: users has a 'type' column (ejabberd 25.03 or later); this importer reads ejabberd 23.01's layout`);
  const missing = COLUMNS.filter((c) => !columns.includes(c));
  if (missing.length > 0) throw new EjabberdSourceError(`${file}: users has no column ${missing.join(", ")}: not ejabberd's users table with SCRAM columns`);
  const withHost = columns.includes("server_host");
  if (!withHost && opts.host === undefined) {
    throw new EjabberdHostMissing(`${file}: the rows do not name their host (no server_host column): give --host`);
  }
  return withHost;
}

/** One row's record; undefined for a row of another host than the one asked for. */
function recordOf(row: UserRow, where: string, opts: EjabberdImportOptions): ImportRecord | undefined {
  const rowHost = typeof row.server_host === "string" ? row.server_host.toLowerCase() : undefined;
  const host = rowHost ?? opts.host?.toLowerCase() ?? UNKNOWN_HOST;
  if (rowHost !== undefined && opts.host !== undefined && rowHost !== opts.host.toLowerCase()) return undefined;
  if (row.server_host !== undefined && rowHost === undefined) return { kind: "failed", host, where, reason: "server_host is not text" };
  try {
    if (typeof row.username !== "string") throw new VerifierFieldError("username is not text");
    const user = row.username;
    const password = text(row.password, "password");
    const serverkey = text(row.serverkey, "serverkey");
    const salt = text(row.salt, "salt");
    const iterations = integer(row.iterationcount);
    if (serverkey === "" && salt === "" && iterations === 0) {
      // ejabberd_auth_sql:get_password/2: {Password, <<>>, <<>>, 0} is a plain password.
      return { kind: "skipped", host, account: `${user}@${host}`, where, reason: "plain password (auth_password_format: plain): no SCRAM verifier stored" };
    }
    const [hash, storedKey] = splitHash(password);
    const verifier = importedVerifier({
      user, host, hash, storedKey: base64(storedKey, "stored key"), serverKey: base64(serverkey, "serverkey"),
      salt: base64(salt, "salt"), iterations,
    }, opts.now ?? Date.now());
    return { kind: "verifier", host, account: verifier.account, where, verifier };
  } catch (err) {
    if (err instanceof VerifierFieldError) return { kind: "failed", host, where: `${where} (${accountName(row, host)})`, reason: err.message };
    throw err;
  }
}

/** scram_hash_encode/2 in reverse: "sha256:"/"sha512:" name the hash, no prefix is SHA-1. */
function splitHash(password: string): [ScramHash, string] {
  if (password.startsWith("sha256:")) return ["SHA-256", password.slice(7)];
  if (password.startsWith("sha512:")) return ["SHA-512", password.slice(7)];
  return ["SHA-1", password];
}

function text(value: unknown, name: string): string {
  if (typeof value !== "string") throw new VerifierFieldError(`${name} is not text`);
  return value;
}

function integer(value: unknown): number {
  if (typeof value === "bigint") {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new VerifierFieldError("iterationcount is out of range");
    return Number(value);
  }
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw new VerifierFieldError("iterationcount is not an integer");
  return value;
}

/** Strict base64 (what Erlang's base64:encode/1 writes): padded, no whitespace, round-trips. */
function base64(value: string, name: string): Buffer {
  const bytes = Buffer.from(value, "base64");
  if (value.length === 0 || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || bytes.toString("base64") !== value) {
    throw new VerifierFieldError(`${name} is not base64`);
  }
  return bytes;
}

/** The row's account for messages (user names are not secret), or a placeholder when the name is unusable. */
function accountName(row: UserRow, host: string): string {
  return typeof row.username === "string" && row.username.length <= 1023 ? `${row.username}@${host}` : "(no usable username)";
}
