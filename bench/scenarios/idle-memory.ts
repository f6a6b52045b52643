// Scenario: resident memory per idle authenticated TLS session. Each run starts from fresh processes
// (Prosody restarted; in mucmux mode a new mucmux), opens the sessions in STEPS equal steps and fits
// RSS over the session count (least squares over STEPS + 1 points). Sessions send no presence.
import { cpuSeconds, rssKiB } from "../lib/procfs.js";
import { metricSum, type MucmuxProcess } from "../lib/mucmux-process.js";
import { slope } from "../lib/stats.js";
import { envNumber, sleep, target } from "../lib/target.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, login, mapLimit } from "../lib/xmpp.js";

const STEPS = 4;
const CONCURRENCY = 32; // logins in flight
export const IDLE_ACCOUNTS = 10; // sessions are spread over idle0..idle9 (several resources each)

function params(env: BenchEnv) {
  const sessions = Math.round(envNumber("MUCMUX_BENCH_IDLE_SESSIONS", env.quick ? 500 : 1000));
  return { sessions, settleMs: env.quick ? 700 : 1500 };
}

export const idleMemory: Scenario = {
  id: "idle-memory",
  title: "Memory per idle authenticated TLS session",
  describe(env) {
    const p = params(env);
    return `${p.sessions} idle sessions (direct TLS, PLAIN, bound, no presence) over ${IDLE_ACCOUNTS} accounts, opened in ${STEPS} steps ` +
      `(${CONCURRENCY} logins in flight), ${p.settleMs} ms settle before each RSS reading; KiB/session = least-squares slope ` +
      "of VmRSS over the session count. Fresh processes for every run (Prosody restarted, new mucmux).";
  },
  figures: [
    { key: "mucmuxKiB", label: "mucmux RSS per session", unit: "KiB", only: "mucmux", digits: 1, target: "≤ 40 (stretch 24)" },
    { key: "mucmuxKiBAfterFirst", label: "mucmux RSS per session, fitted from the first step on (after V8's young generation has grown to its working size)", unit: "KiB", only: "mucmux", digits: 1 },
    { key: "mucmuxHeapKiB", label: "mucmux JS heap used per session", unit: "KiB", only: "mucmux", digits: 1 },
    { key: "prosodyKiB", label: "Prosody RSS per session", unit: "KiB", compare: "ratio", digits: 1 },
    { key: "systemKiB", label: "Prosody + mucmux RSS per session", unit: "KiB", compare: "ratio", digits: 1 },
    { key: "mucmuxBaseMiB", label: "mucmux RSS with no session", unit: "MiB", only: "mucmux", digits: 1 },
    { key: "mucmuxLoginMs", label: "mucmux CPU per login", unit: "ms", only: "mucmux", digits: 2 },
    { key: "prosodyLoginMs", label: "Prosody CPU per login", unit: "ms", compare: "ratio", digits: 2 },
    { key: "loginsPerSec", label: "logins per second", unit: "/s", compare: "ratio", digits: 0 },
  ],
  run: runOnce,
};

async function runOnce(mode: Mode, env: BenchEnv): Promise<Sample> {
  const p = params(env);
  await env.restartProsody();
  let fresh: MucmuxProcess | undefined;
  const sessions: BenchSession[] = [];
  try {
    if (mode === "mucmux") fresh = await env.freshMucmux();
    const t = await target(mode, env, fresh);
    const heapKiB = async () => (t.mucmux ? metricSum(await t.mucmux.metrics(), "nodejs_heap_size_used_bytes") / 1024 : Number.NaN);
    await sleep(p.settleMs);
    const rss: [number, number, number, number][] = []; // sessions, mucmux KiB, Prosody KiB, mucmux heap KiB
    const read = async (n: number) => {
      const heap = await heapKiB();
      rss.push([n, t.mucmux ? rssKiB(t.mucmux.pid) : Number.NaN, rssKiB(t.prosodyPid), heap]);
    };
    await read(0);
    let loginCpuMucmux = 0, loginCpuProsody = 0, loginSeconds = 0;
    const perStep = Math.ceil(p.sessions / STEPS);
    for (let step = 0; step < STEPS; step++) {
      const from = step * perStep;
      const to = Math.min(p.sessions, from + perStep);
      const cm = t.mucmux ? cpuSeconds(t.mucmux.pid) : 0;
      const cp = cpuSeconds(t.prosodyPid);
      const started = performance.now();
      await mapLimit([...Array(to - from).keys()].map((k) => from + k), CONCURRENCY, async (i) => {
        const user = `idle${i % IDLE_ACCOUNTS}`;
        sessions.push(await login({ port: t.port, user, password: env.password(user), resource: `i${i}`, ca: env.ca, timeoutMs: 60_000 }));
      });
      loginSeconds += (performance.now() - started) / 1000;
      loginCpuMucmux += t.mucmux ? cpuSeconds(t.mucmux.pid) - cm : 0;
      loginCpuProsody += cpuSeconds(t.prosodyPid) - cp;
      await sleep(p.settleMs);
      await read(to);
    }
    const closed = sessions.filter((s) => s.isClosed);
    if (closed.length) throw new Error(`${closed.length} idle sessions were closed during the run (first: ${closed[0]?.jid})`);
    const mucmuxKiB = slope(rss.map(([n, m]) => [n, m] as const));
    const prosodyKiB = slope(rss.map(([n, , q]) => [n, q] as const));
    return {
      mucmuxKiB: t.mucmux ? mucmuxKiB : Number.NaN,
      // V8 grows its young generation once (16 to 32 MiB) during the first logins: a fixed cost that the fit over
      // all points spreads over the sessions; from the first step on it is already paid.
      mucmuxKiBAfterFirst: t.mucmux ? slope(rss.slice(1).map(([n, m]) => [n, m] as const)) : Number.NaN,
      mucmuxHeapKiB: t.mucmux ? slope(rss.map(([n, , , h]) => [n, h] as const)) : Number.NaN,
      prosodyKiB,
      systemKiB: (t.mucmux ? mucmuxKiB : 0) + prosodyKiB,
      mucmuxBaseMiB: t.mucmux ? (rss[0]?.[1] ?? Number.NaN) / 1024 : Number.NaN,
      mucmuxLoginMs: t.mucmux ? (loginCpuMucmux * 1000) / p.sessions : Number.NaN,
      prosodyLoginMs: (loginCpuProsody * 1000) / p.sessions,
      loginsPerSec: p.sessions / loginSeconds,
    };
  } finally {
    await mapLimit(sessions, 200, (s) => s.close(1000));
    await fresh?.stop();
  }
}
