// Prosody 0.12's own account storage, read for SPEC A12: the file store (`storage = "internal"`) keeps one
// account per file, `<data_path>/<encoded host>/accounts/<encoded user>.dat` (util/datamanager.lua getpath).
// mod_auth_internal_hashed writes { stored_key = hex, server_key = hex, salt = <the raw salt string, a UUID>,
// iteration_count = n } with the hash its `password_hash` option names, SHA-1 by default (SHA-256 is the only
// other one 0.12 knows); the file does not say which, the key length does (20 or 32 bytes). mod_auth_internal_plain
// writes { password = "…" }: no verifier to import, the account is reported as skipped.
import { opendir, open } from "node:fs/promises";
import path from "node:path";
import type { ScramHash } from "../../store/store.js";
import { LuaDataError, LuaTable, parseLuaData, type LuaValue } from "./lua-data.js";
import { importedVerifier, UNKNOWN_HOST, VerifierFieldError, type ImportRecord } from "./records.js";

/** Account files are a few hundred bytes; a larger one is not Prosody's. */
const MAX_ACCOUNT_FILE_BYTES = 64 * 1024;

export interface ProsodyImportOptions {
  /** Only this host (case-insensitive); all hosts with an accounts directory when unset. */
  host?: string | undefined;
  now?: number;
}

/**
 * util/datamanager.lua `decode`: every `%xx` is one byte. Its `encode` escapes every byte that is not a letter
 * or a digit (`%W`, lower-case hex), so a name with any other raw character is not one Prosody wrote: undefined.
 */
export function decodeProsodyName(name: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x25) {
      const hex = name.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (/[A-Za-z0-9]/.test(name[i] as string)) {
      bytes.push(c);
    } else {
      return undefined;
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/** Every account of every (or one) host under a Prosody data directory, one record each, host by host. */
export async function* readProsodyAccounts(dataDir: string, opts: ProsodyImportOptions = {}): AsyncGenerator<ImportRecord> {
  const now = opts.now ?? Date.now();
  const wanted = opts.host?.toLowerCase();
  for (const entry of await sortedEntries(dataDir)) {
    if (!entry.isDirectory()) continue;
    const accounts = path.join(dataDir, entry.name, "accounts");
    let files;
    try {
      files = await sortedEntries(accounts);
    } catch (err) {
      if (isNotFound(err)) continue; // a host without accounts (or not a host directory at all)
      yield { kind: "failed", host: decodeProsodyName(entry.name) ?? UNKNOWN_HOST, where: accounts, reason: errnoText(err) };
      continue;
    }
    const host = decodeProsodyName(entry.name);
    // With --host, a directory whose name Prosody cannot have written is not that host's.
    if (host === undefined && wanted !== undefined) continue;
    if (host === undefined) {
      yield { kind: "failed", host: UNKNOWN_HOST, where: path.join(dataDir, entry.name), reason: "not a host name Prosody encodes (util/datamanager.lua)" };
      continue;
    }
    if (wanted !== undefined && host.toLowerCase() !== wanted) continue;
    for (const file of files) {
      // `name.dat~` is the datamanager's scratch file during a write; only `.dat` is the account.
      if (!file.name.endsWith(".dat")) continue;
      yield await readAccountFile(path.join(accounts, file.name), file.name.slice(0, -4), host, now);
    }
  }
}

async function readAccountFile(file: string, encodedUser: string, host: string, now: number): Promise<ImportRecord> {
  const user = decodeProsodyName(encodedUser);
  if (user === undefined) return { kind: "failed", host, where: file, reason: "not a user name Prosody encodes (util/datamanager.lua)" };
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(file);
  } catch (err) {
    return { kind: "failed", host, where: file, reason: err instanceof Error && !("code" in err) ? err.message : errnoText(err) };
  }
  let data: LuaValue;
  try {
    data = parseLuaData(bytes);
  } catch (err) {
    if (err instanceof LuaDataError) return { kind: "failed", host, where: `${file}:${err.line}:${err.column}`, reason: err.reason };
    throw err;
  }
  try {
    const outcome = accountFromData(data, user, host, now);
    return outcome.kind === "verifier"
      ? { kind: "verifier", host, account: outcome.verifier.account, where: file, verifier: outcome.verifier }
      : { kind: "skipped", host, account: `${user}@${host}`, where: file, reason: outcome.reason };
  } catch (err) {
    if (err instanceof VerifierFieldError) return { kind: "failed", host, where: file, reason: err.message };
    throw err;
  }
}

/** mod_auth_internal_hashed's fields of one account file, checked (throws VerifierFieldError). */
export function accountFromData(data: LuaValue, user: string, host: string, now: number):
  { kind: "verifier"; verifier: ReturnType<typeof importedVerifier> } | { kind: "skipped"; reason: string } {
  if (!(data instanceof LuaTable)) throw new VerifierFieldError("the file's value is not a table");
  const field = (name: string) => data.fields.get(name);
  const password = field("password");
  if (password !== undefined) {
    if (!Buffer.isBuffer(password)) throw new VerifierFieldError("password is not a string");
    // internal_hashed tests a non-empty plain password first and re-hashes it at the next login, so any
    // hashed fields next to it are not what Prosody checks.
    if (password.length > 0) return { kind: "skipped", reason: "plain password (internal_plain, or not yet hashed): no SCRAM verifier stored" };
  }
  const stored = field("stored_key");
  const server = field("server_key");
  if (stored === undefined && server === undefined && field("salt") === undefined) {
    return { kind: "skipped", reason: "no credentials stored" };
  }
  const storedKey = hexField("stored_key", stored);
  const serverKey = hexField("server_key", server);
  const salt = field("salt");
  if (!Buffer.isBuffer(salt)) throw new VerifierFieldError("salt is missing or not a string");
  const iterations = field("iteration_count");
  if (typeof iterations !== "number") throw new VerifierFieldError("iteration_count is missing or not a number");
  const hash = hashOfKeyLength(storedKey.length);
  return { kind: "verifier", verifier: importedVerifier({ user, host, hash, salt, iterations, storedKey, serverKey }, now) };
}

function hexField(name: string, value: LuaValue | undefined): Buffer {
  if (!Buffer.isBuffer(value)) throw new VerifierFieldError(`${name} is missing or not a string`);
  const text = value.toString("latin1");
  // util/hex.lua writes lower-case pairs; Buffer.from(…, "hex") would stop silently at the first bad pair.
  if (text.length === 0 || text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) throw new VerifierFieldError(`${name} is not hexadecimal`);
  return Buffer.from(text, "hex");
}

/** password_hash = "SHA-1" (the default) or "SHA-256": the only two Prosody 0.12's SCRAM library registers. */
function hashOfKeyLength(bytes: number): ScramHash {
  if (bytes === 20) return "SHA-1";
  if (bytes === 32) return "SHA-256";
  throw new VerifierFieldError(`stored_key is ${bytes} bytes: neither SHA-1 (20) nor SHA-256 (32)`);
}

async function readSmallFile(file: string): Promise<Buffer> {
  const handle = await open(file, "r");
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error("not a regular file");
    if (stat.size > MAX_ACCOUNT_FILE_BYTES) throw new Error(`larger than ${MAX_ACCOUNT_FILE_BYTES} bytes: not a Prosody account file`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function sortedEntries(dir: string) {
  const entries = [];
  for await (const e of await opendir(dir)) entries.push(e);
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const isNotFound = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT" || (err as NodeJS.ErrnoException | undefined)?.code === "ENOTDIR";

/** An fs error without its path (the caller names the place): "EACCES: permission denied". */
export function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === "string" && typeof e.message === "string") return e.message.replace(/,.*$/, "");
  return err instanceof Error ? err.message : String(err);
}
