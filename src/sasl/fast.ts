// FAST (XEP-0484) tokens mucmux issues at SASL2 logins (SPEC A15), with the HT-SHA-256-NONE mechanism
// (draft-schmaus-kitten-sasl-ht): the client proves the token with HMAC(token, "Initiator"), mucmux answers with
// HMAC(token, "Responder"). The store keeps SHA-256 of the client's proof and the account's upstream secret sealed
// under a key derived from that proof, so a FAST login still authenticates upstream after a restart, and nothing
// in the store opens without the token the client holds.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { openBlob, sealBlob, sealingKey } from "./seal.js";
import type { Store } from "../store/store.js";
import type { Secret } from "../account/credentials.js";
import { utf8, type ScramHash } from "./scram.js";

export const HT_MECHANISM = "HT-SHA-256-NONE";
/** Tokens kept per account and client (user-agent id): a rotation keeps the previous one usable once. */
const KEEP_PER_AGENT = 2;

export interface FastDeps {
  store(): Store | undefined;
  /** Token lifetime; 0 turns FAST off. */
  ttlMs: number;
  now?(): number;
}

/** The HT initial response: authcid NUL HMAC(token, "Initiator") (32 bytes for SHA-256). */
export function parseHtResponse(raw: Buffer): { username: string; initiator: Buffer } | undefined {
  const nul = raw.indexOf(0);
  if (nul <= 0 || raw.length - nul - 1 !== 32) return undefined;
  const username = utf8(raw.subarray(0, nul));
  return username === undefined ? undefined : { username, initiator: raw.subarray(nul + 1) };
}

const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
const proofHash = (initiator: Buffer) => createHash("sha256").update(initiator).digest();

export class FastTokens {
  private readonly now: () => number;

  constructor(private readonly deps: FastDeps) {
    this.now = deps.now ?? Date.now;
  }

  get enabled(): boolean { return this.deps.ttlMs > 0; }

  /** A new token for `account`, unlocking `secret` upstream; undefined when FAST is off or the store failed. */
  async issue(account: string, agent: string, secret: Secret): Promise<{ token: string; expiry: Date } | undefined> {
    const store = this.deps.store();
    if (!store || !this.enabled) return undefined;
    const token = randomBytes(32).toString("base64url");
    // The client uses the token's text as the HMAC key (its UTF-8 bytes).
    const initiator = hmac(token, "Initiator");
    const now = this.now();
    const hash = proofHash(initiator);
    const expiresAt = now + this.deps.ttlMs;
    try {
      await store.saveFastToken({
        account, hash, agent, responder: hmac(token, "Responder"), sealed: sealSecret(account, initiator, secret),
        expiresAt, count: -1, createdAt: now,
      }, KEEP_PER_AGENT, now);
    } catch {
      return undefined; // logged and counted by the store wrapper; the login itself succeeded
    }
    return { token, expiry: new Date(expiresAt) };
  }

  /**
   * A FAST login: the account's secret and the server's answer when `initiator` proves an unexpired token and
   * `count` (when sent) is above the last one used with it; undefined otherwise (the client gets not-authorized).
   */
  async check(account: string, initiator: Buffer, count: number | undefined): Promise<{ secret: Secret; responder: Buffer } | undefined> {
    const store = this.deps.store();
    if (!store || !this.enabled) return undefined;
    const hash = proofHash(initiator);
    const t = await store.fastToken(account, hash, this.now()).catch(() => undefined);
    if (!t || !timingSafeEqual(t.hash, hash)) return undefined;
    // A replayed proof (XEP-0484): the count must grow, checked and recorded in one step (two logins at once).
    if (count !== undefined && !(await store.useFastToken(account, hash, count).catch(() => false))) return undefined;
    const secret = openSecret(account, initiator, t.sealed);
    return secret ? { secret, responder: t.responder } : undefined;
  }

  /** The upstream refused what a token unlocked (the password changed): the token is useless now. */
  async revoke(account: string, initiator: Buffer): Promise<void> {
    await this.deps.store()?.deleteFastTokens(account, proofHash(initiator)).catch(() => 0);
  }
}

// ---- the sealed secret: under HKDF-SHA-256(HMAC(token, "Initiator")), the account as associated data.

type SealedSecret =
  | { kind: "password"; password: string }
  | { kind: "client-key"; hash: ScramHash; clientKey: string; serverKey: string; salt: string; iterations: number };

const secretKey = (initiator: Buffer) => sealingKey(initiator, Buffer.alloc(0), "mucmux fast secret");

function sealSecret(account: string, initiator: Buffer, secret: Secret): Buffer {
  const plain: SealedSecret = secret.kind === "password"
    ? secret
    : { kind: "client-key", hash: secret.hash, clientKey: secret.clientKey.toString("base64"), serverKey: secret.serverKey.toString("base64"),
      salt: secret.salt.toString("base64"), iterations: secret.iterations };
  return sealBlob(secretKey(initiator), Buffer.from(account), JSON.stringify(plain));
}

function openSecret(account: string, initiator: Buffer, blob: Buffer): Secret | undefined {
  const text = openBlob(secretKey(initiator), Buffer.from(account), blob);
  if (text === undefined) return undefined;
  const s = JSON.parse(text) as SealedSecret;
  if (s.kind === "password") return { kind: "password", password: s.password };
  return {
    kind: "client-key", hash: s.hash, clientKey: Buffer.from(s.clientKey, "base64"), serverKey: Buffer.from(s.serverKey, "base64"),
    salt: Buffer.from(s.salt, "base64"), iterations: s.iterations,
  };
}
