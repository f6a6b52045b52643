// The verifiers mucmux checks SCRAM logins against (SPEC A10–A13), kept in the store: learned at logins that
// carried the password (SPEC A11), or imported from the server's own storage (SPEC A12). Never a password or a
// ClientKey in clear: a learned verifier seals the password under a key only a login's ClientKey opens.
import { createHmac, randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { Store, StoredVerifier } from "../store/store.js";
import type { Secret } from "../account/credentials.js";
import type { Logger } from "../log.js";
import { equalKeys, keysOf, saltedPassword, type ScramHash } from "./scram.js";
import { openBlob, sealBlob, sealingKey } from "./seal.js";

/** What an upstream password login saw of the server's SCRAM parameters (sasl-client.ts). */
export interface UpstreamSalt { hash: ScramHash; salt: Buffer; iterations: number; salted: Buffer }

export interface VerifierDeps {
  store(): Store | undefined;
  iterations: number;
  log: Logger;
  /** A verifier was learned (new or replacing a stale one) or dropped as stale. */
  onChange?(what: "learned" | "stale", hash: ScramHash): void;
  now?(): number;
}

/** After a proof failed against a stored verifier, the account's next SCRAM logins for this long are relayed. */
const SUSPECT_MS = 10 * 60_000;

export class VerifierBook {
  /** account|hash → when suspicion ends (the user may have changed the password on the server). */
  private readonly suspects = new LRUCache<string, number>({ max: 10_000 });
  /** account|hash → fingerprint of a password already checked against the stored verifier by this process. */
  private readonly checked = new LRUCache<string, string>({ max: 50_000 });
  /** Keys the fingerprints (never stored): equal fingerprints mean equal passwords, in this process only. */
  private readonly pepper = randomBytes(32);
  private readonly now: () => number;
  private batch: { v: StoredVerifier; resolve(): void; reject(err: unknown): void }[] = [];

  constructor(private readonly deps: VerifierDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * The verifier a SCRAM login of `account` with `hash` is checked against; undefined when there is none, the
   * store cannot be read, or a recent proof failure makes it suspect (the login is then relayed, SPEC A13).
   */
  async find(account: string, hash: ScramHash): Promise<StoredVerifier | undefined> {
    const until = this.suspects.get(`${account}|${hash}`);
    if (until !== undefined && until > this.now()) return undefined;
    return this.peek(account, hash);
  }

  /** The stored verifier whether suspect or not (a -PLUS login cannot be relayed; a relayed login is checked against it). */
  async peek(account: string, hash: ScramHash): Promise<StoredVerifier | undefined> {
    try {
      return (await this.deps.store()?.verifiers(account))?.find((v) => v.hash === hash);
    } catch {
      return undefined; // the instrumented store logged and counted it; the login is relayed
    }
  }

  /** A relayed login proved the stored verifier still right: it is no longer suspect. */
  trust(account: string, hash: ScramHash): void {
    this.suspects.delete(`${account}|${hash}`);
  }

  /** A client's proof did not match: perhaps the password changed on the server (SPEC A11). */
  suspect(account: string, hash: ScramHash): void {
    this.suspects.set(`${account}|${hash}`, this.now() + SUSPECT_MS);
  }

  /** The upstream refused what this verifier gave, or accepted a relayed login it refused: it is stale. */
  async drop(account: string, hash: ScramHash): Promise<void> {
    this.checked.delete(`${account}|${hash}`);
    try {
      if (((await this.deps.store()?.deleteVerifiers(account, hash)) ?? 0) > 0) this.deps.onChange?.("stale", hash);
    } catch { /* logged by the store wrapper; the next learn replaces it anyway */ }
  }

  /** The account's upstream secret from a verifier and the ClientKey a login proved (SPEC A11, A12). */
  secretFor(v: StoredVerifier, clientKey: Buffer): Secret | undefined {
    if (v.sealed) {
      const password = unseal(v, clientKey);
      if (password !== undefined) return { kind: "password", password };
    }
    if (v.upstream) return { kind: "client-key", hash: v.hash, clientKey, serverKey: v.serverKey, salt: v.salt, iterations: v.iterations };
    return undefined;
  }

  /**
   * The upstream accepted `password` (SPEC A11): make sure the account has a matching verifier for each hash in
   * `hashes` (what mucmux offers clients). The hash the upstream login used keeps the upstream's own salt and
   * count; the others get a salt of mucmux's own. Best effort: a store failure is logged, the login unaffected.
   */
  async learn(account: string, password: string, upstream: UpstreamSalt | undefined, hashes: readonly ScramHash[]): Promise<void> {
    const store = this.deps.store();
    if (!store || hashes.length === 0) return;
    try {
      const existing = new Map((await store.verifiers(account)).map((v) => [v.hash, v]));
      for (const hash of hashes) {
        const key = `${account}|${hash}`;
        const fp = this.fingerprint(key, password);
        const old = existing.get(hash);
        if (old && this.checked.get(key) === fp) continue;
        const fromUpstream = upstream?.hash === hash ? upstream : undefined;
        if (old) {
          const salted = fromUpstream && equalKeys(fromUpstream.salt, old.salt) && fromUpstream.iterations === old.iterations
            ? fromUpstream.salted
            : await saltedPassword(hash, password, old.salt, old.iterations);
          if (equalKeys(keysOf(hash, salted).storedKey, old.storedKey)) {
            this.checked.set(key, fp);
            continue;
          }
        }
        const salt = fromUpstream?.salt ?? randomBytes(16);
        const iterations = fromUpstream?.iterations ?? this.deps.iterations;
        const salted = fromUpstream?.salted ?? (await saltedPassword(hash, password, salt, iterations));
        const keys = keysOf(hash, salted);
        const v: StoredVerifier = {
          account, hash, salt, iterations, storedKey: keys.storedKey, serverKey: keys.serverKey,
          source: "learned", upstream: fromUpstream !== undefined, sealed: undefined, updatedAt: this.now(),
        };
        v.sealed = seal(v, keys.clientKey, password);
        await this.save(store, v);
        this.checked.set(key, fp);
        this.deps.onChange?.("learned", hash);
      }
    } catch (err) {
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not learn SCRAM verifiers");
    }
  }

  /**
   * Learned verifiers are written in batches, one transaction per loop turn: a burst of first logins (a fresh
   * deployment) must not cost one synchronous commit each inside one turn of the event loop (SPEC E1).
   */
  private save(store: Store, v: StoredVerifier): Promise<void> {
    return new Promise((resolve, reject) => {
      this.batch.push({ v, resolve, reject });
      if (this.batch.length > 1) return;
      setImmediate(() => {
        const batch = this.batch.splice(0);
        store.saveVerifiers(batch.map((b) => b.v)).then(
          () => { for (const b of batch) b.resolve(); },
          (err: unknown) => { for (const b of batch) b.reject(err); },
        );
      });
    });
  }

  private fingerprint(key: string, password: string): string {
    return createHmac("sha256", this.pepper).update(key).update("\0").update(password).digest("base64");
  }
}

// ---- the sealed password ----------------------------------------------------------------------------------
// Under HKDF-SHA-256(ClientKey, salt, "mucmux sealed password"), the row's account and hash as associated data (a
// blob moved to another row does not open). The store holds StoredKey = H(ClientKey), not ClientKey: opening
// the seal takes what a login proves, or a dictionary attack on the verifier itself.

const passwordKey = (v: StoredVerifier, clientKey: Buffer) => sealingKey(clientKey, v.salt, "mucmux sealed password");
const aad = (v: StoredVerifier) => Buffer.from(`${v.account}\0${v.hash}`);

export const seal = (v: StoredVerifier, clientKey: Buffer, password: string): Buffer => sealBlob(passwordKey(v, clientKey), aad(v), password);

export const unseal = (v: StoredVerifier, clientKey: Buffer): string | undefined =>
  v.sealed ? openBlob(passwordKey(v, clientKey), aad(v), v.sealed) : undefined;
