// Several replicas sharing PostgreSQL (SPEC H): the account leases, the internal link and the drain that hands
// accounts over. app.ts wires it to the sessions and the account registry through callbacks (no import of them here).
import { hostname, networkInterfaces } from "node:os";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type tls from "node:tls";
import type { Config } from "../config/index.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { LeaseStore } from "../store/store.js";
import { LeaseManager, type Route } from "./leases.js";
import { InternalLink, type HandoffPreamble } from "./internal.js";

export interface ClusterDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  store: LeaseStore;
  /** The account still needs this replica: sessions (hibernated too), an anchor or room state. */
  inUse(account: string): boolean;
  /** Another replica owns these accounts now: end their sessions and anchors here. */
  onLost(accounts: readonly string[]): void;
  /** Kept anchors this replica just took the leases of: restore them (SPEC G6). */
  onAdopted(accounts: readonly string[]): void;
  /** A client another replica handed here: undefined when a session took it, else why it is refused. */
  acceptHandedIn(preamble: HandoffPreamble, socket: tls.TLSSocket): string | undefined;
}

export class Cluster {
  readonly replicaId: string;
  private leases!: LeaseManager;
  private internal!: InternalLink;
  private address = "";
  /** The internal listener's port, once listening. */
  port: number | undefined;
  private adoptTimer: NodeJS.Timeout | undefined;
  private adopting = false;
  private stopped = false;

  constructor(private readonly deps: ClusterDeps) {
    this.replicaId = deps.config.cluster.replicaId ?? `${hostname()}-${randomBytes(3).toString("hex")}`;
  }

  /** SPEC H3: the lease the store may act under for `account` (none before the replica started). */
  fence(account: string): { owner: string; token: number } {
    const leases = this.leases as LeaseManager | undefined; // set in start()
    return leases?.fence(account) ?? { owner: this.replicaId, token: 0 };
  }

  /** Listen on the internal link, announce this replica, start renewing and adopting. */
  async start(): Promise<void> {
    const { config, log, metrics } = this.deps;
    const c = config.cluster;
    const read = (file: string | undefined, key: string) => {
      if (!file) throw new Error(`cluster.${key} is required when store.url is set`);
      return readFileSync(file);
    };
    this.internal = new InternalLink({
      cert: read(c.cert, "cert"),
      key: read(c.key, "key"),
      ca: read(c.ca, "ca"),
      log: log.child({ component: "cluster" }),
      metrics: {
        handoff: (direction, result) => metrics.clusterHandoffs.inc({ direction, result }),
        bytes: (direction, n) => metrics.clusterBytes.inc({ direction }, n),
        pipes: (delta) => metrics.clusterPipesOpen.inc(delta),
      },
      onSession: (preamble, socket) => this.acceptHandedIn(preamble, socket),
    });
    for (const direction of ["out", "in"] as const) {
      metrics.clusterBytes.inc({ direction }, 0);
      for (const result of ["ok", "refused", "failed"] as const) metrics.clusterHandoffs.inc({ direction, result }, 0);
    }
    for (const change of ["acquired", "adopted", "lost", "released"]) metrics.clusterLeaseChanges.inc({ change }, 0);
    const port = await this.internal.listen(c.host, c.port);
    this.port = port;
    this.address = c.advertise ?? `${advertisedHost(c.host)}:${port}`;
    this.leases = new LeaseManager({
      store: this.deps.store,
      replicaId: this.replicaId,
      address: this.address,
      leaseMs: c.leaseSeconds * 1000,
      log: log.child({ component: "leases" }),
      inUse: (account) => this.deps.inUse(account),
      onLost: (accounts) => this.deps.onLost(accounts),
      onReleased: () => void this.adopt(),
      metrics: {
        held: (n) => metrics.clusterLeasesHeld.set(n),
        acquired: (how) => metrics.clusterLeaseChanges.inc({ change: how === "new" ? "acquired" : "adopted" }),
        lost: (n) => metrics.clusterLeaseChanges.inc({ change: "lost" }, n),
      },
    });
    await this.leases.start();
    log.info({ replica: this.replicaId, address: this.address, leaseSeconds: c.leaseSeconds }, "cluster replica started");
    await this.adopt();
    // Kept anchors of a replica that died are found once its leases expire (a SIGTERM'd one notifies at once).
    this.adoptTimer = setInterval(() => void this.adopt(), c.leaseSeconds * 1000);
    this.adoptTimer.unref();
  }

  private acceptHandedIn(preamble: HandoffPreamble, socket: tls.TLSSocket): string | undefined {
    if (this.stopped) return "replica is shutting down";
    return this.deps.acceptHandedIn(preamble, socket);
  }

  private async adopt(): Promise<void> {
    // Only a replica that can open kept anchors (anchors.keepKeyFile) takes their leases.
    if (this.adopting || this.stopped || !this.deps.config.anchors.keepKeyFile) return;
    this.adopting = true;
    try {
      const adopted = await this.leases.adoptOrphans();
      if (adopted.length > 0) {
        this.deps.log.info({ accounts: adopted.length }, "kept anchors adopted from another replica");
        this.deps.onAdopted(adopted);
      }
    } finally {
      this.adopting = false;
    }
  }

  /** SPEC H2, for the Links (ClusterPort). */
  route(account: string, handedIn: boolean, unreachable?: string): Promise<Route> {
    const deadlineMs = this.deps.config.cluster.leaseSeconds * 1000 + 2000;
    return this.leases.route(account, { deadlineMs, unreachable }).then((r) =>
      r.kind === "remote" && handedIn ? { kind: "unavailable", reason: "the account moved to another replica; log in again" } : r);
  }

  handOff(address: string, preamble: HandoffPreamble, prelude: string, detach: () => Socket): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return this.internal.handOff(address, preamble, prelude, detach);
  }

  /**
   * SPEC H4, first half of a SIGTERM drain: take no more handed-in clients, end the pipes carried for other replicas,
   * expire every lease and tell the others, so the accounts' next logins are served elsewhere at once.
   */
  async release(): Promise<void> {
    this.stopped = true;
    clearInterval(this.adoptTimer);
    this.internal.close();
    const n = this.leases.size;
    await this.leases.releaseAll();
    this.deps.metrics.clusterLeaseChanges.inc({ change: "released" }, n);
  }

  /**
   * SPEC H4, second half: each account's anchor stays in its rooms until another replica owns the account and
   * `rejoined` says its anchor is in each of them too (so the room sees nobody leave), or until `deadline`;
   * `dispose` ends it here.
   */
  async handOver(
    accounts: readonly string[], deadline: number, dispose: (account: string) => void, rejoined: (account: string) => boolean,
  ): Promise<number> {
    let waiting = [...accounts];
    while (waiting.length > 0 && Date.now() < deadline) {
      const next: string[] = [];
      for (const account of waiting) {
        if (rejoined(account) && await this.leases.ownedElsewhere(account)) dispose(account);
        else next.push(account);
      }
      waiting = next;
      if (waiting.length > 0) await new Promise((r) => setTimeout(r, 200));
    }
    return waiting.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.adoptTimer);
    this.internal?.close();
    await this.leases?.stop();
  }
}

/** The address the other replicas reach this one at: the listener's own, or this host's first non-loopback one. */
function advertisedHost(host: string): string {
  if (host !== "0.0.0.0" && host !== "::") return host.includes(":") ? `[${host}]` : host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
