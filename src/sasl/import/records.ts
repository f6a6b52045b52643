// What an importer reports for each account it finds in a server's storage (SPEC A12): a verifier to store,
// an account skipped for a stated reason (no SCRAM verifier in the server's storage), or a place that could
// not be read. Reasons never quote keys, salts or passwords: they are printed.
import { bareKey } from "../../account/jid.js";
import type { ScramHash, StoredVerifier } from "../../store/store.js";

export type ImportRecord =
  | { kind: "verifier"; host: string; account: string; where: string; verifier: StoredVerifier }
  | { kind: "skipped"; host: string; account: string; where: string; reason: string }
  | { kind: "failed"; host: string; where: string; reason: string };

/** Host name used for failures that belong to no known host (e.g. a directory name that does not decode). */
export const UNKNOWN_HOST = "(unknown host)";

/** Key length in bytes of each hash (RFC 5802 §3: StoredKey = H(ClientKey), ServerKey = HMAC(…)). */
export const KEY_BYTES: Record<ScramHash, number> = { "SHA-1": 20, "SHA-256": 32, "SHA-512": 64 };

/**
 * Largest iteration count accepted: both servers keep it in a signed 32-bit integer (ejabberd's SQL column,
 * Prosody's Lua number written with %d). A larger one is damage, not configuration.
 */
export const MAX_ITERATIONS = 2 ** 31 - 1;
/** Longest salt accepted, in bytes (Prosody uses a 36-byte UUID string, ejabberd 16 random bytes). */
export const MAX_SALT_BYTES = 1024;

export class VerifierFieldError extends Error {}

export interface VerifierFields {
  user: string;
  host: string;
  hash: ScramHash;
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Checks the fields and builds the imported verifier (SPEC A12: source imported, upstream true, nothing sealed). */
export function importedVerifier(f: VerifierFields, now: number): StoredVerifier {
  const bytes = KEY_BYTES[f.hash];
  if (f.storedKey.length !== bytes) throw new VerifierFieldError(`stored key is ${f.storedKey.length} bytes, ${f.hash} needs ${bytes}`);
  if (f.serverKey.length !== bytes) throw new VerifierFieldError(`server key is ${f.serverKey.length} bytes, ${f.hash} needs ${bytes}`);
  if (f.salt.length === 0) throw new VerifierFieldError("empty salt");
  if (f.salt.length > MAX_SALT_BYTES) throw new VerifierFieldError(`salt longer than ${MAX_SALT_BYTES} bytes`);
  if (!Number.isSafeInteger(f.iterations) || f.iterations < 1 || f.iterations > MAX_ITERATIONS) {
    throw new VerifierFieldError(`iteration count is not an integer from 1 to ${MAX_ITERATIONS}`);
  }
  if (f.user === "" || /[@/\s]/.test(f.user)) throw new VerifierFieldError("not a usable user name");
  return {
    account: accountOf(f.user, f.host),
    hash: f.hash,
    salt: Buffer.from(f.salt),
    iterations: f.iterations,
    storedKey: Buffer.from(f.storedKey),
    serverKey: Buffer.from(f.serverKey),
    source: "imported",
    upstream: true,
    sealed: undefined,
    updatedAt: now,
  };
}

/** The store's account key: the lower-cased bare JID. */
export function accountOf(user: string, host: string): string {
  return bareKey(`${user}@${host}`);
}
