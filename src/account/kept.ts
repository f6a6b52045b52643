// Kept anchors (SPEC G6, an operator opt-in: anchors.keepKeyFile): an account with a room whose offline setting is
// on keeps its anchor across mucmux restarts, so that room messages said before the user's next login are still
// queued and still wake the phone (SPEC G1). What the anchor logs in with, and the account's push registrations,
// are stored sealed with AES-256-GCM under the operator's key (a Kubernetes Secret, say): the store alone opens
// nothing; the store together with the key logs in as those users, which is the trade-off the operator accepts.
import { readFileSync } from "node:fs";
import type { Account } from "./account.js";
import type { AccountRegistry } from "./registry.js";
import type { Credentials, Secret } from "./credentials.js";
import type { EventBus } from "../chain/events.js";
import type { Store } from "../store/store.js";
import type { Logger } from "../log.js";
import { bareKey } from "./jid.js";
import { openBlob, sealBlob } from "../sasl/seal.js";
import type { ScramHash } from "../sasl/scram.js";

/** The key file: 32 bytes, raw or as 64 hex digits or base64 text (what `openssl rand` writes). */
export function readKeepKey(file: string): Buffer {
  const raw = readFileSync(file);
  if (raw.length === 32) return raw;
  const text = raw.toString("utf8").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  const b64 = Buffer.from(text, "base64");
  if (b64.length === 32 && /^[A-Za-z0-9+/=_-]+$/.test(text)) return b64;
  throw new Error(`${file}: anchors.keepKeyFile must hold a 32-byte key (raw, 64 hex digits or base64), e.g. \`openssl rand -base64 32\``);
}

interface KeptRecord {
  username: string;
  secret: { kind: "password"; password: string } | { kind: "client-key"; hash: ScramHash; clientKey: string; serverKey: string; salt: string; iterations: number };
  push: string[];
}

const AAD = (account: string) => Buffer.from(`mucmux kept anchor ${account}`);

function toRecord(c: Credentials, push: readonly string[]): KeptRecord {
  const s = c.secret;
  const secret: KeptRecord["secret"] = s.kind === "password" ? s : {
    kind: "client-key", hash: s.hash, iterations: s.iterations,
    clientKey: s.clientKey.toString("base64"), serverKey: s.serverKey.toString("base64"), salt: s.salt.toString("base64"),
  };
  return { username: c.username, secret, push: [...push] };
}

function fromRecord(r: KeptRecord): Credentials {
  const s = r.secret;
  const secret: Secret = s.kind === "password" ? s : {
    kind: "client-key", hash: s.hash, iterations: s.iterations,
    clientKey: Buffer.from(s.clientKey, "base64"), serverKey: Buffer.from(s.serverKey, "base64"), salt: Buffer.from(s.salt, "base64"),
  };
  return { username: r.username, secret };
}

export interface KeptDeps {
  key: Buffer;
  store(): Store | undefined;
  accounts: AccountRegistry;
  events: EventBus;
  log: Logger;
}

export class KeptAnchors {
  /** Accounts with a room whose offline setting is on, as the offline stage last said. */
  private readonly flagged = new Map<string, boolean>();
  /** Push registrations per account, as the wake-up stage last said. */
  private readonly push = new Map<string, readonly string[]>();

  constructor(private readonly deps: KeptDeps) {
    const { events } = deps;
    events.on("offline-flags", ({ account, any }) => {
      this.flagged.set(bareKey(account.bare), any);
      void this.review(account);
    });
    events.on("push-registrations", ({ account, registrations }) => {
      this.push.set(bareKey(account.bare), registrations);
      void this.review(account);
    });
    events.on("session-bound", ({ account }) => void this.review(account)); // the newest credentials
    events.on("anchor-down", ({ account, permanent }) => {
      if (permanent) void this.forget(bareKey(account.bare)); // the credentials no longer log in
    });
  }

  /** At start (or, with several replicas, once their leases are taken): kept accounts get their records back, with their credentials and push registrations. */
  async restoreAll(only?: ReadonlySet<string>): Promise<number> {
    const store = this.deps.store();
    if (!store) return 0;
    let n = 0;
    for (const row of await store.keptAnchors()) {
      // SPEC H: with several replicas, only the accounts whose leases this replica took.
      if (only && !only.has(row.account)) continue;
      const text = openBlob(this.deps.key, AAD(row.account), row.sealed);
      if (text === undefined) {
        this.deps.log.warn({ account: row.account }, "a kept anchor does not open with this key; dropped");
        await store.deleteKeptAnchor(row.account);
        continue;
      }
      const record = JSON.parse(text) as KeptRecord;
      this.flagged.set(row.account, true);
      this.push.set(row.account, record.push);
      this.deps.accounts.restore(row.account, fromRecord(record), record.push);
      n++;
    }
    return n;
  }

  /** Keep, update or forget the account's record after what changed. */
  private async review(account: Account): Promise<void> {
    const key = bareKey(account.bare);
    const store = this.deps.store();
    if (!store) return;
    try {
      if (this.flagged.get(key) !== true || !account.credentials) {
        if (this.flagged.get(key) === false) await store.deleteKeptAnchor(key);
        return;
      }
      const sealed = sealBlob(this.deps.key, AAD(key), JSON.stringify(toRecord(account.credentials, this.push.get(key) ?? [])));
      await store.saveKeptAnchor(key, sealed, Date.now());
    } catch {
      // counted and logged by the instrumented store; the next change tries again
    }
  }

  private async forget(key: string): Promise<void> {
    this.flagged.delete(key);
    await this.deps.store()?.deleteKeptAnchor(key).catch(() => undefined);
  }
}
