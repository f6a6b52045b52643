// Account leases (SPEC H1–H4): which replica owns an account, i.e. serves all of its sessions and runs its anchor, so
// the fold stays exact however a load balancer spreads connections. The lease lives in the shared store (PostgreSQL),
// with a fencing token that changes at every change of owner; this replica renews what it holds every third of the
// lease time, releases what it no longer needs, and gives up at once what the store says it lost.
import type { Fence, Lease, LeaseStore } from "../store/store.js";
import type { Logger } from "../log.js";

/** Where a login for an account goes (SPEC H2). */
export type Route =
  | { kind: "local" }
  /** Another live replica owns the account: hand the session to it. */
  | { kind: "remote"; owner: string; address: string }
  /** Nobody could be made owner in time (store down, owner unreachable and its lease not yet expired). */
  | { kind: "unavailable"; reason: string };

export interface LeaseManagerDeps {
  store: LeaseStore;
  replicaId: string;
  /** host:port of this replica's internal listener, announced to the others. */
  address: string;
  leaseMs: number;
  log: Logger;
  /** The account is still needed here (sessions, a hibernated session, an anchor, room state): keep its lease. */
  inUse(account: string): boolean;
  /** Leases this replica lost (another replica owns the accounts now): end their sessions and anchors here. */
  onLost(accounts: readonly string[]): void;
  /** Another replica released leases: look for kept anchors to adopt (SPEC G6). */
  onReleased?(): void;
  metrics?: {
    held(n: number): void;
    acquired(how: "new" | "expired"): void;
    lost(n: number): void;
  };
  /** Test hook: the clock (milliseconds). */
  now?(): number;
}

interface Held {
  token: number;
  /** A login was routed here at this time: kept at least a login's length even before the account exists. */
  pinnedUntil: number;
}

/** A lease call that fails is tried again this often, after this long, within the login's deadline. */
const STORE_RETRIES = 5;
const STORE_RETRY_MS = 300;

/** How long a just-acquired lease stays held without an account using it: a login takes at most this long to bind. */
const PIN_MS = 60_000;

export class LeaseManager {
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => void) | undefined;
  private stopped = false;
  private renewing: Promise<void> | undefined;

  constructor(private readonly deps: LeaseManagerDeps) {}

  get replicaId(): string { return this.deps.replicaId; }
  get size(): number { return this.held.size; }
  holds(account: string): boolean { return this.held.has(account); }
  accounts(): string[] { return [...this.held.keys()]; }

  /** SPEC H3: the store acts for an account only under the token this replica holds (a stale owner is fenced off). */
  readonly fence: Fence = (account) => ({ owner: this.deps.replicaId, token: this.held.get(account)?.token ?? 0 });

  private now(): number { return this.deps.now?.() ?? Date.now(); }

  async start(): Promise<void> {
    await this.deps.store.heartbeat(this.deps.replicaId, this.deps.address);
    const every = Math.max(200, Math.floor(this.deps.leaseMs / 3));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
    this.unlisten = this.deps.store.onReleased(() => this.deps.onReleased?.());
  }

  /**
   * SPEC H2: the owner of `account` for a login arriving here: this replica when it holds the lease or can take it
   * (free or expired), else the live owner's address. An owner that stopped heartbeating is waited out until its
   * lease expires (at most the lease time), then the lease is taken over.
   */
  async route(account: string, opts: { deadlineMs: number; unreachable?: string | undefined }): Promise<Route> {
    const deadline = this.now() + opts.deadlineMs;
    let storeFailures = 0;
    for (;;) {
      if (this.stopped) return { kind: "unavailable", reason: "this replica is shutting down" };
      const mine = this.held.get(account);
      if (mine) {
        mine.pinnedUntil = Math.max(mine.pinnedUntil, this.now() + PIN_MS);
        return { kind: "local" };
      }
      let lease: Lease;
      try {
        lease = await this.deps.store.acquire(account, this.deps.replicaId, this.deps.leaseMs);
      } catch (err) {
        // A database restarting refuses a moment longer than it takes to accept connections: try again briefly.
        if (this.now() + STORE_RETRY_MS < deadline && ++storeFailures <= STORE_RETRIES) {
          await new Promise((r) => setTimeout(r, STORE_RETRY_MS));
          continue;
        }
        this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, "lease store unavailable");
        return { kind: "unavailable", reason: "the lease store is unavailable" };
      }
      if (lease.owner === this.deps.replicaId) {
        if (!this.held.has(account)) {
          this.held.set(account, { token: lease.token, pinnedUntil: this.now() + PIN_MS });
          this.deps.metrics?.acquired("new");
          this.deps.metrics?.held(this.held.size);
        }
        return { kind: "local" };
      }
      // Another replica holds it: hand over to it while it is alive; wait out the lease of one that is not.
      const replica = lease.owner === opts.unreachable ? undefined : await this.deps.store.replica(lease.owner).catch(() => undefined);
      if (replica && replica.seenMsAgo < this.deps.leaseMs) return { kind: "remote", owner: lease.owner, address: replica.address };
      const wait = Math.max(50, Math.min(lease.expiresInMs + 20, 1000));
      if (this.now() + wait > deadline) return { kind: "unavailable", reason: "the account's owner is unreachable and its lease has not expired yet" };
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Renew what is still needed, release what is not, give up what the store says is gone. */
  private tick(): Promise<void> {
    if (this.renewing || this.stopped) return this.renewing ?? Promise.resolve();
    this.renewing = this.renewNow().finally(() => { this.renewing = undefined; });
    return this.renewing;
  }

  private async renewNow(): Promise<void> {
    const { store, replicaId, leaseMs } = this.deps;
    await store.heartbeat(replicaId, this.deps.address).catch(() => undefined);
    const now = this.now();
    const keep = new Map<string, number>();
    const drop = new Map<string, number>();
    for (const [account, h] of this.held) (h.pinnedUntil > now || this.deps.inUse(account) ? keep : drop).set(account, h.token);
    if (drop.size > 0) {
      for (const account of drop.keys()) this.held.delete(account);
      await store.release(replicaId, drop).catch(() => undefined); // unreleased ones simply expire
      this.deps.metrics?.held(this.held.size);
    }
    if (keep.size === 0) return;
    let lost: string[];
    try {
      lost = await store.renew(replicaId, keep, leaseMs);
    } catch (err) {
      // The store is down: nobody can take the leases either; they are renewed once it is back, or found lost.
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, "lease renewal failed");
      return;
    }
    if (lost.length === 0) return;
    for (const account of lost) this.held.delete(account);
    this.deps.metrics?.lost(lost.length);
    this.deps.metrics?.held(this.held.size);
    this.deps.log.warn({ accounts: lost.length }, "leases lost to another replica; their sessions end here");
    this.deps.onLost(lost);
  }

  /** Kept anchors nobody owns (SPEC G6): take their leases; returns the accounts this replica now owns. */
  async adoptOrphans(): Promise<string[]> {
    if (this.stopped) return [];
    const adopted: string[] = [];
    for (const account of await this.deps.store.orphanedKeptAnchors().catch(() => [] as string[])) {
      if (this.held.has(account)) continue;
      const lease = await this.deps.store.acquire(account, this.deps.replicaId, this.deps.leaseMs).catch(() => undefined);
      if (lease?.owner !== this.deps.replicaId) continue;
      this.held.set(account, { token: lease.token, pinnedUntil: this.now() + PIN_MS });
      this.deps.metrics?.acquired("expired");
      adopted.push(account);
    }
    if (adopted.length > 0) this.deps.metrics?.held(this.held.size);
    return adopted;
  }

  /**
   * SPEC H4 (SIGTERM): expire every lease now and tell the other replicas, so they take the accounts at the next login
   * instead of after the lease time. Routing here stops; the fence keeps this replica from acting for them any more.
   */
  async releaseAll(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.renewing;
    const all = new Map([...this.held].map(([a, h]) => [a, h.token] as const));
    this.held.clear();
    this.deps.metrics?.held(0);
    if (all.size > 0) await this.deps.store.release(this.deps.replicaId, all).catch(() => undefined);
    await this.deps.store.notifyReleased().catch(() => undefined);
  }

  /** Whether another replica owns `account` now (the drain waits for this before its anchor leaves the rooms). */
  async ownedElsewhere(account: string): Promise<boolean> {
    const lease = await this.deps.store.lease(account).catch(() => undefined);
    return lease !== undefined && lease.owner !== this.deps.replicaId && lease.expiresInMs > 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unlisten?.();
    await this.renewing;
    await this.deps.store.retire(this.deps.replicaId).catch(() => undefined);
  }
}
