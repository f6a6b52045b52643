// Several mucmux replicas sharing PostgreSQL, for the cluster integration tests: a throwaway PostgreSQL
// (test/support/postgres.ts), N mucmux child processes (src/main.ts through tsx, as spawnMucmuxChild starts them) in
// front of one Prosody or ejabberd, each with its own client, admin and internal-link ports on loopback (kept across
// restarts), the internal link's certificates from a test CA (cluster-certs.ts), and the test's round-robin balancer
// (balancer.ts) in front of the replicas' direct-TLS client ports, which is where the test clients connect.
// Every replica's output is kept (also that of earlier processes of the same replica, after a kill or a restart) and
// audited for secrets; logTail() gives the tail of each, for the failure message of a test.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import path from "node:path";
import { startBalancer, type Balancer } from "./balancer.js";
import { clusterCertificates } from "./cluster-certs.js";
import { addTestSecret } from "./log-audit.js";
import { metric, spawnMucmuxChild, writeTestConfig, type MucmuxChild } from "./mucmux.js";
import { freePorts, waitForPort } from "./ports.js";
import { startPostgres, type PgServer } from "./postgres.js";
import { within } from "./proc.js";
import type { XmppTestServer } from "./server.js";
import { poll } from "./wait.js";

export interface ReplicaPorts {
  starttls: number;
  direct: number;
  admin: number;
  cluster: number;
}

export interface TestCluster {
  readonly server: XmppTestServer;
  readonly pg: PgServer;
  /** In front of the replicas' direct-TLS (xmpps://) client ports, in replica order. */
  readonly balancer: Balancer;
  readonly size: number;
  readonly leaseSeconds: number;
  ports(i: number): ReplicaPorts;
  directPort(i: number): number;
  adminPort(i: number): number;
  /** Is replica i's process running (started and not yet exited)? */
  running(i: number): boolean;
  /** The running replicas' indexes. */
  up(): number[];
  /** SIGKILL replica i and wait for it to be gone. */
  kill(i: number): Promise<void>;
  /** SIGTERM replica i and wait for its exit (bounded by `timeoutMs`, default 60 s); resolves with its exit code. */
  term(i: number, timeoutMs?: number): Promise<number | null>;
  /** Starts replica i again (after kill or term) on the same ports and config; resolves once it is ready. */
  restart(i: number): Promise<void>;
  /** Starts replica i without waiting for it (a kill may land during its start-up); ready(i) waits. */
  spawn(i: number): void;
  /** Resolves once replica i listens on its client port and its /readyz answers 200. */
  ready(i: number, timeoutMs?: number): Promise<void>;
  /** One sample of a metric on replica i (0 when absent). */
  metric(i: number, name: string, labels?: string): Promise<number>;
  /** The sum of a metric over the running replicas. */
  metricSum(name: string, labels?: string): Promise<number>;
  /** The sample of a metric on each running replica, by index (undefined: not running or not answering). */
  metricEach(name: string, labels?: string): Promise<(number | undefined)[]>;
  /** Indexes of the running replicas that hold at least one lease. */
  leaseHolders(): Promise<number[]>;
  /** The last `lines` lines of every process each replica ran, labelled, for a failure message. */
  logTail(lines?: number): string;
  /** Stops the replicas (SIGTERM, then SIGKILL), the balancer and PostgreSQL; audits every log; idempotent. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  server: XmppTestServer;
  /** Replicas (default 3). */
  size?: number;
  /** cluster.leaseSeconds (default 2). */
  leaseSeconds?: number;
  /** Config sections merged over the generated ones, for every replica (e.g. anchors.keepKeyFile). */
  extra?: Record<string, Record<string, unknown>>;
  /** Log level of the replicas (default MUCMUX_TEST_CLUSTER_LOG or info: JSON lines kept for failure messages). */
  logLevel?: string;
}

interface Replica {
  index: number;
  ports: ReplicaPorts;
  configFile: string;
  proc: MucmuxChild | undefined;
  /** Output of this replica's earlier processes (labelled), most recent last. */
  history: string[];
  starts: number;
}

const MAX_HISTORY = 6;

export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const size = opts.size ?? 3;
  const leaseSeconds = opts.leaseSeconds ?? 2;
  const certs = clusterCertificates(size);
  const pg = await startPostgres({ name: "cluster" });
  const pgPassword = new URL(pg.url).password;
  if (pgPassword) addTestSecret(decodeURIComponent(pgPassword)); // the store URL's password must never be logged
  const replicas: Replica[] = [];
  let balancer: Balancer | undefined;
  const run = randomBytes(2).toString("hex");
  try {
    for (let i = 0; i < size; i++) {
      const [starttls = 0, direct = 0, admin = 0, cluster = 0] = await freePorts(4);
      const ports = { starttls, direct, admin, cluster };
      const cert = certs.replicas[i];
      if (!cert) throw new Error(`no certificate for replica ${i + 1}`);
      const configFile = writeTestConfig({
        upstreamPort: opts.server.port,
        ports,
        logLevel: opts.logLevel ?? process.env.MUCMUX_TEST_CLUSTER_LOG ?? "info",
        storeUrl: pg.url,
        cluster: {
          host: "127.0.0.1", port: cluster, advertise: `127.0.0.1:${cluster}`,
          cert: cert.certFile, key: cert.keyFile, ca: certs.caFile,
          replicaId: `r${i + 1}-${run}`, leaseSeconds,
        },
        ...(opts.extra ? { extra: opts.extra } : {}),
      });
      replicas.push({ index: i, ports, configFile, proc: undefined, history: [], starts: 0 });
    }
    balancer = await startBalancer(replicas.map((r) => r.ports.direct));
  } catch (e) {
    await balancer?.close();
    await pg.stop();
    throw e;
  }
  const lb = balancer;

  const replica = (i: number): Replica => {
    const r = replicas[i];
    if (!r) throw new Error(`no replica ${i}`);
    return r;
  };
  const alive = (r: Replica) => !!r.proc && r.proc.child.exitCode === null && r.proc.child.signalCode === null;
  const retire = (r: Replica, how: string) => {
    if (!r.proc) return;
    r.history.push(`--- replica ${r.index + 1}, process ${r.starts} (pid ${r.proc.pid}, ${how}):\n${r.proc.output()}`);
    if (r.history.length > MAX_HISTORY) r.history.shift();
    r.proc.checkLog(); // every line of every process is audited for secrets
    r.proc = undefined;
  };
  const spawn = (i: number) => {
    const r = replica(i);
    if (alive(r)) throw new Error(`replica ${i + 1} is running`);
    if (r.proc) retire(r, "exited");
    r.starts++;
    r.proc = spawnMucmuxChild(r.configFile);
  };
  const ready = async (i: number, timeoutMs = 30_000) => {
    const r = replica(i);
    const failed = () => (r.proc && !alive(r) ? `replica ${i + 1} exited (${String(r.proc.child.exitCode ?? r.proc.child.signalCode)}):\n${r.proc.output().slice(-4000)}` : undefined);
    await waitForPort(r.ports.direct, { timeoutMs, failed });
    const ok = await poll(async () => {
      if (failed()) return true;
      try {
        return (await fetch(`http://127.0.0.1:${r.ports.admin}/readyz`)).status === 200;
      } catch {
        return false;
      }
    }, timeoutMs, 50);
    const why = failed();
    if (why) throw new Error(why);
    if (!ok) throw new Error(`replica ${i + 1}: /readyz not 200 within ${timeoutMs} ms\n${r.proc?.output().slice(-4000) ?? ""}`);
  };
  const kill = async (i: number) => {
    const r = replica(i);
    if (!r.proc) return;
    if (alive(r)) r.proc.child.kill("SIGKILL");
    await r.proc.exited;
    retire(r, "SIGKILL");
  };
  const term = async (i: number, timeoutMs = 60_000) => {
    const r = replica(i);
    if (!r.proc) return null;
    const p = r.proc;
    if (alive(r)) p.child.kill("SIGTERM");
    if (!(await within(p.exited, timeoutMs))) {
      const out = p.output().slice(-6000);
      p.child.kill("SIGKILL");
      await p.exited;
      retire(r, "SIGTERM, then SIGKILL");
      throw new Error(`replica ${i + 1} did not exit within ${timeoutMs} ms of SIGTERM:\n${out}`);
    }
    const code = await p.exited;
    retire(r, `SIGTERM, exit ${String(code)}`);
    return code;
  };
  const metricOf = (i: number, name: string, labels?: string) => metric(replica(i).ports.admin, name, labels);
  const metricEach = (name: string, labels?: string) => Promise.all(replicas.map(async (r) => {
    if (!alive(r)) return undefined;
    try {
      return await metric(r.ports.admin, name, labels);
    } catch {
      return undefined;
    }
  }));
  const logTail = (lines = 60) => replicas.map((r) => {
    const cut = (s: string) => s.split("\n").slice(-lines).join("\n");
    const past = r.history.slice(-2).map(cut).join("\n");
    const now = r.proc ? `--- replica ${r.index + 1}, process ${r.starts} (pid ${r.proc.pid}${alive(r) ? ", running" : ""}):\n${cut(r.proc.output())}` : "";
    return [past, now].filter(Boolean).join("\n");
  }).join("\n");

  let stopped = false;
  const cluster: TestCluster = {
    server: opts.server, pg, balancer: lb, size, leaseSeconds,
    ports: (i) => replica(i).ports,
    directPort: (i) => replica(i).ports.direct,
    adminPort: (i) => replica(i).ports.admin,
    running: (i) => alive(replica(i)),
    up: () => replicas.filter(alive).map((r) => r.index),
    kill, term, spawn, ready,
    restart: async (i) => {
      spawn(i);
      await ready(i);
    },
    metric: metricOf,
    metricEach,
    metricSum: async (name, labels) => (await metricEach(name, labels)).reduce<number>((a, b) => a + (b ?? 0), 0),
    leaseHolders: async () => (await metricEach("mucmux_cluster_leases_held")).flatMap((n, i) => ((n ?? 0) > 0 ? [i] : [])),
    logTail,
    async stop() {
      if (stopped) return;
      stopped = true;
      const errors: unknown[] = [];
      await Promise.all(replicas.map(async (r) => {
        try {
          if (r.proc) await term(r.index, 20_000);
        } catch (e) {
          errors.push(e);
        }
      }));
      await lb.close();
      await pg.stop();
      if (process.env.MUCMUX_TEST_KEEP !== "1") for (const r of replicas) rmSync(path.dirname(r.configFile), { recursive: true, force: true });
      if (errors.length > 0) throw errors[0];
    },
  };
  try {
    for (let i = 0; i < size; i++) spawn(i);
    await Promise.all(replicas.map((r) => ready(r.index)));
  } catch (e) {
    await Promise.allSettled(replicas.map((r) => kill(r.index)));
    await lb.close();
    await pg.stop();
    throw e;
  }
  return cluster;
}

/**
 * Runs `body`; when it throws, the tail of every replica's log is written to stderr first (the replicas log JSON
 * lines), so that a failure shows what the replicas did.
 */
export async function withReplicaLogs<T>(cluster: () => TestCluster | undefined, body: () => Promise<T>, lines = 80): Promise<T> {
  try {
    return await body();
  } catch (e) {
    const c = cluster();
    if (c) process.stderr.write(`\n===== replica logs (last ${lines} lines of each process) =====\n${c.logTail(lines)}\n===== end of replica logs =====\n`);
    throw e;
  }
}

