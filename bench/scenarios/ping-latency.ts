// Scenario: iq ping round trip to the server at a fixed open-loop rate. Request j is due at t0 + j/rate
// whatever happened to earlier ones; its latency is counted from that due time (no coordinated omission),
// and, separately, from the moment it was actually written (the generator's own timer lateness removed).
import { metricSum } from "../lib/mucmux-process.js";
import { cpuDelta, cpuSnapshot } from "../lib/procfs.js";
import { percentileSorted } from "../lib/stats.js";
import { envNumber, sleep, target, until } from "../lib/target.js";
import { PingRun } from "../lib/open-loop.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login, mapLimit } from "../lib/xmpp.js";

const CONNECTIONS = 4;

function params(env: BenchEnv) {
  const rate = envNumber("MUCMUX_BENCH_PING_RATE", 500);
  return env.quick ? { rate, warmupMs: 500, measureMs: 3000 } : { rate, warmupMs: 1000, measureMs: 10_000 };
}

export const pingLatency: Scenario = {
  id: "ping-latency",
  title: "Added latency: iq ping round trip at a fixed open-loop rate",
  describe(env) {
    const p = params(env);
    return `<iq type='get' to='${DOMAIN}'><ping/></iq> at ${p.rate}/s spread over ${CONNECTIONS} connections (one write per request), ` +
      `${p.measureMs / 1000} s measured after ${p.warmupMs / 1000} s; latency from the scheduled send time ` +
      "(includes the generator's timer lateness, up to ~1 ms) and from the actual write; lost = no answer within 5 s.";
  },
  figures: [
    { key: "p50", label: "p50 (from schedule)", unit: "ms", compare: "delta", digits: 3, target: "added ≤ 0.1 at half load" },
    { key: "p99", label: "p99 (from schedule)", unit: "ms", compare: "delta", digits: 3, target: "added ≤ 1 at half load" },
    { key: "p999", label: "p99.9 (from schedule)", unit: "ms", compare: "delta", digits: 3 },
    { key: "max", label: "max (from schedule)", unit: "ms", compare: "delta", digits: 2 },
    { key: "w50", label: "p50 (from write)", unit: "ms", compare: "delta", digits: 3 },
    { key: "w99", label: "p99 (from write)", unit: "ms", compare: "delta", digits: 3 },
    { key: "rate", label: "answers per second", unit: "/s", compare: "none", digits: 0 },
    { key: "lost", label: "lost requests", unit: "req", compare: "none", digits: 0 },
    { key: "mucmuxUsPerStanza", label: "mucmux CPU per stanza·direction (unbatched)", unit: "µs", only: "mucmux", digits: 1 },
    { key: "prosodyUsPerStanza", label: "Prosody CPU per stanza·direction", unit: "µs", compare: "ratio", digits: 1 },
    { key: "mucmuxGcMs", label: "mucmux GC pause total during the run", unit: "ms", only: "mucmux", digits: 1 },
    { key: "mucmuxLoopMaxMs", label: "mucmux longest event-loop delay", unit: "ms", only: "mucmux", digits: 1 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
  ],
  run: runOnce,
};

async function runOnce(mode: Mode, env: BenchEnv): Promise<Sample> {
  const p = params(env);
  const t = await target(mode, env);
  const sessions: BenchSession[] = [];
  try {
    await mapLimit([...Array(CONNECTIONS).keys()], CONNECTIONS, async (i) => {
      sessions[i] = await login({ port: t.port, user: "bping", password: env.password("bping"), resource: `p${i}`, ca: env.ca });
    });
    const total = Math.ceil((p.rate * (p.warmupMs + p.measureMs)) / 1000);
    const warm = Math.ceil((p.rate * p.warmupMs) / 1000);
    const pings = new PingRun(sessions, "p", total);
    // A scrape resets prom-client's event-loop delay histogram, so the next one reports this run's maximum.
    const before = t.mucmux ? await t.mucmux.metrics() : "";
    const sending = pings.start(p.rate);
    await until(() => pings.sent >= warm, p.warmupMs + 5000);
    const c0 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    const a0 = pings.answered;
    await sending;
    await until(() => pings.answered >= total, 5000);
    const c1 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    const d = cpuDelta(c0, c1);
    const a1 = pings.answered;
    const after = t.mucmux ? await t.mucmux.metrics() : "";
    const gcSeconds = (txt: string) => metricSum(txt, "nodejs_gc_duration_seconds_sum");
    const broken = sessions.find((s) => s.isClosed);
    if (broken) throw new Error(`${broken.jid}: stream closed during the run${broken.error ? ` (${broken.error.message})` : ""}`);
    // Measured requests: those due after the warm-up; a lost one counts as +Infinity in the percentiles.
    const measured = total - warm;
    const { byDue, byWrite } = pings.sorted(warm);
    const relayed = 2 * (a1 - a0);
    return {
      p50: percentileSorted(byDue, 50),
      p99: percentileSorted(byDue, 99),
      p999: percentileSorted(byDue, 99.9),
      max: byDue[measured - 1] ?? Number.NaN,
      w50: percentileSorted(byWrite, 50),
      w99: percentileSorted(byWrite, 99),
      rate: (a1 - a0) / d.seconds,
      lost: total - pings.answered,
      mucmuxUsPerStanza: t.mucmux ? (d.mucmux * 1e6) / relayed : Number.NaN,
      prosodyUsPerStanza: (d.prosody * 1e6) / relayed,
      mucmuxGcMs: t.mucmux ? (gcSeconds(after) - gcSeconds(before)) * 1000 : Number.NaN,
      mucmuxLoopMaxMs: t.mucmux ? metricSum(after, "nodejs_eventloop_lag_max_seconds") * 1000 : Number.NaN,
      foreignCores: d.foreignCores,
    };
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await sleep(50);
  }
}
