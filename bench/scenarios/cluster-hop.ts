// Scenario: what the handoff hop between two replicas costs (SPEC H2). PostgreSQL and two mucmux child processes in
// cluster mode (loopback, each with its own certificate of the test cluster CA) in front of the bench's Prosody. A
// holder session logged in at replica 0 first makes it the owner of the bench account for the whole scenario; then
// the ping-latency load runs on sessions logged in at replica 0 directly (column "at owner") or at replica 1, which
// hands each login over to replica 0 and from then on only pipes bytes (column "handed over"). CPU is read from /proc
// for both replicas and Prosody.
import { clusterCertificates } from "../../test/support/cluster-certs.js";
import { startPostgres, type PgServer } from "../../test/support/postgres.js";
import { metricSum, spawnMucmux, type MucmuxProcess } from "../lib/mucmux-process.js";
import { cpuSeconds, machineBusySeconds } from "../lib/procfs.js";
import { median, percentileSorted } from "../lib/stats.js";
import { envNumber, sleep, until } from "../lib/target.js";
import { PingRun } from "../lib/open-loop.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login } from "../lib/xmpp.js";

export const HOP_ACCOUNT = "bhop";
const CONNECTIONS = 4;

function params(env: BenchEnv) {
  const rate = envNumber("MUCMUX_BENCH_HOP_RATE", 500);
  return env.quick ? { rate, warmupMs: 500, measureMs: 3000 } : { rate, warmupMs: 1000, measureMs: 10_000 };
}

interface ClusterRig {
  pg: PgServer;
  replicas: MucmuxProcess[];
  /** The session at replica 0 that keeps it the owner of the bench account. */
  holder: BenchSession;
}

let rig: Promise<ClusterRig> | undefined;

async function startRig(env: BenchEnv): Promise<ClusterRig> {
  const pg = await startPostgres({ name: "bench-hop" });
  const replicas: MucmuxProcess[] = [];
  try {
    const certs = clusterCertificates(2);
    for (let i = 0; i < 2; i++) {
      const c = certs.replicas[i];
      if (!c) throw new Error("clusterCertificates: missing replica certificate");
      replicas.push(await spawnMucmux(env.prosody.port, {
        extra: {
          store: { url: pg.url },
          cluster: { replicaId: `bench-r${i}`, host: "127.0.0.1", port: 0, cert: c.certFile, key: c.keyFile, ca: certs.caFile },
        },
      }));
    }
    const r0 = replicas[0] as MucmuxProcess;
    const holder = await login({ port: r0.directPort, user: HOP_ACCOUNT, password: env.password(HOP_ACCOUNT), resource: "holder", ca: env.ca });
    if (metricSum(await r0.metrics(), "mucmux_cluster_leases_held") < 1) throw new Error("replica 0 does not hold the bench account's lease");
    // Warm both paths up (JIT, TLS session caches) before the first measured run: 1000 pings at each replica.
    for (const [i, r] of replicas.entries()) await warmUp(env, r, `warm${i}`);
    return { pg, replicas, holder };
  } catch (e) {
    for (const r of replicas) await r.stop().catch(() => {});
    await pg.stop().catch(() => {});
    throw e;
  }
}

async function warmUp(env: BenchEnv, r: MucmuxProcess, resource: string): Promise<void> {
  const s = await login({ port: r.directPort, user: HOP_ACCOUNT, password: env.password(HOP_ACCOUNT), resource, ca: env.ca });
  try {
    let seen = 0;
    s.onData = (chunk) => { seen += chunk.toString("latin1").split("<iq ").length - 1; };
    for (let round = 0; round < 20; round++) {
      const want = seen + 50;
      for (let j = 0; j < 50; j++) s.write(`<iq type='get' to='${DOMAIN}' id='w${round}-${j}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      if (!(await until(() => seen >= want, 5000))) throw new Error(`warm-up at ${resource}: pings unanswered`);
    }
  } finally {
    await s.close();
  }
}

export const clusterHop: Scenario = {
  id: "cluster-hop",
  title: "Two replicas: the handoff hop (iq ping at a fixed open-loop rate, at the owner vs handed over)",
  columns: { direct: "at owner", mucmux: "handed over", compare: "handed over vs at owner" },
  describe(env) {
    const p = params(env);
    return `PostgreSQL + 2 mucmux replicas (cluster mode, loopback mTLS link) in front of Prosody; replica 0 owns the account. ` +
      `${CONNECTIONS} sessions log in one after the other at replica 0 ("at owner") or at replica 1 ("handed over": SASL handed ` +
      `to replica 0, then piped), then <iq type='get' to='${DOMAIN}'><ping/></iq> at ${p.rate}/s over them, ` +
      `${p.measureMs / 1000} s measured after ${p.warmupMs / 1000} s; latency as in ping-latency.`;
  },
  notes: [
    "CPU per stanza·direction = CPU seconds (from /proc) over 2 × answered pings (the request in, the answer out). \"both replicas\" sums the two mucmux processes (in the \"at owner\" column replica 1 only idles: heartbeats and lease polling); \"entry replica\" is replica 1 alone, in the \"handed over\" column the cost of the pipe (TLS from the client, mTLS to the owner, no XML).",
    "Login time: from TCP connect to the bind result (direct TLS, PLAIN, bind), median of the scenario's sessions, logged in one after the other while the account is online at replica 0 (holder session); at replica 1 it includes the lease lookup, the mTLS connection to replica 0 and the handoff.",
    "The replicas' leases are PostgreSQL rows (fsync on, same machine); the account's lease is renewed every few seconds during the runs.",
  ],
  figures: [
    { key: "p50", label: "p50 (from schedule)", unit: "ms", compare: "delta", digits: 3 },
    { key: "p99", label: "p99 (from schedule)", unit: "ms", compare: "delta", digits: 3 },
    { key: "w50", label: "p50 (from write)", unit: "ms", compare: "delta", digits: 3 },
    { key: "w99", label: "p99 (from write)", unit: "ms", compare: "delta", digits: 3 },
    { key: "bothUsPerStanza", label: "both replicas' CPU per stanza·direction", unit: "µs", compare: "delta-percent", digits: 1 },
    { key: "entryUsPerStanza", label: "entry replica (replica 1) CPU per stanza·direction", unit: "µs", compare: "delta", digits: 1 },
    { key: "ownerUsPerStanza", label: "owner (replica 0) CPU per stanza·direction", unit: "µs", compare: "delta", digits: 1 },
    { key: "prosodyUsPerStanza", label: "Prosody CPU per stanza·direction", unit: "µs", compare: "ratio", digits: 1 },
    { key: "loginMs", label: "login time to an online session (median)", unit: "ms", compare: "delta", digits: 1 },
    { key: "rate", label: "answers per second", unit: "/s", compare: "none", digits: 0 },
    { key: "lost", label: "lost requests", unit: "req", compare: "none", digits: 0 },
    { key: "pipes", label: "pipes open at replica 1 during the run", unit: "", compare: "none", digits: 0 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
  ],
  run: runOnce,
  async stop() {
    const r = await rig?.catch(() => undefined);
    rig = undefined;
    if (!r) return;
    await r.holder.close().catch(() => {});
    for (const m of r.replicas) await m.stop().catch(() => {});
    await r.pg.stop();
  },
};

async function runOnce(mode: Mode, env: BenchEnv): Promise<Sample> {
  const p = params(env);
  rig ??= startRig(env);
  const { replicas, holder } = await rig;
  if (holder.isClosed) throw new Error("the holder session at replica 0 closed: replica 0 may no longer own the account");
  const [r0, r1] = replicas as [MucmuxProcess, MucmuxProcess];
  const entry = mode === "direct" ? r0 : r1;
  const prosodyPid = env.prosody.pid;
  const sessions: BenchSession[] = [];
  const loginMs: number[] = [];
  try {
    for (let i = 0; i < CONNECTIONS; i++) {
      const t0 = performance.now();
      sessions.push(await login({ port: entry.directPort, user: HOP_ACCOUNT, password: env.password(HOP_ACCOUNT), resource: `h${i}`, ca: env.ca }));
      loginMs.push(performance.now() - t0);
    }
    const pipes = metricSum(await r1.metrics(), "mucmux_cluster_pipes_open");
    if (mode === "mucmux" && pipes < CONNECTIONS) throw new Error(`replica 1 has ${pipes} pipes open, expected ${CONNECTIONS}: the logins were not handed over`);
    const total = Math.ceil((p.rate * (p.warmupMs + p.measureMs)) / 1000);
    const warm = Math.ceil((p.rate * p.warmupMs) / 1000);
    const pings = new PingRun(sessions, "h", total);
    const sending = pings.start(p.rate);
    const snap = () => ({ at: performance.now(), r0: cpuSeconds(r0.pid), r1: cpuSeconds(r1.pid), prosody: cpuSeconds(prosodyPid), bench: cpuSeconds("self"), machine: machineBusySeconds() });
    await until(() => pings.sent >= warm, p.warmupMs + 5000);
    const c0 = snap();
    const a0 = pings.answered;
    await sending;
    await until(() => pings.answered >= total, 5000);
    const c1 = snap();
    const a1 = pings.answered;
    const broken = sessions.find((s) => s.isClosed);
    if (broken) throw new Error(`${broken.jid}: stream closed during the run${broken.error ? ` (${broken.error.message})` : ""}`);
    const seconds = (c1.at - c0.at) / 1000;
    const d = { r0: c1.r0 - c0.r0, r1: c1.r1 - c0.r1, prosody: c1.prosody - c0.prosody, bench: c1.bench - c0.bench };
    const foreign = c1.machine - c0.machine - d.r0 - d.r1 - d.prosody - d.bench;
    const { byDue, byWrite } = pings.sorted(warm);
    const relayed = 2 * (a1 - a0);
    return {
      p50: percentileSorted(byDue, 50),
      p99: percentileSorted(byDue, 99),
      w50: percentileSorted(byWrite, 50),
      w99: percentileSorted(byWrite, 99),
      bothUsPerStanza: ((d.r0 + d.r1) * 1e6) / relayed,
      entryUsPerStanza: (d.r1 * 1e6) / relayed,
      ownerUsPerStanza: (d.r0 * 1e6) / relayed,
      prosodyUsPerStanza: (d.prosody * 1e6) / relayed,
      loginMs: median(loginMs),
      rate: (a1 - a0) / seconds,
      lost: total - pings.answered,
      pipes,
      foreignCores: Math.max(0, foreign) / seconds,
    };
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await sleep(50);
  }
}
