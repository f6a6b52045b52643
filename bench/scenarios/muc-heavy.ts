// Scenario: total system CPU (Prosody + mucmux) for a MUC-heavy load, 3 sessions per account, against Prosody
// alone doing its own TLS. A accounts × 3 sessions, every session in each of R rooms (the 3 sessions of an
// account share its nick), and the occupants themselves send groupchat at a fixed open-loop rate (message k
// from session k mod 3A to room k mod R), every session receiving every message. CPU over the same messages
// from /proc; Prosody is restarted and the mucmux side is a fresh process per run, so no state of an earlier run
// is in them.
import { addProsodyAccounts } from "../lib/accounts.js";
import { Collector, joinRoom } from "../lib/muc.js";
import { measureRoomLoad, numberedBody } from "../lib/muc-load.js";
import type { MucmuxProcess } from "../lib/mucmux-process.js";
import { cpuDelta, cpuSnapshot } from "../lib/procfs.js";
import { percentileSorted } from "../lib/stats.js";
import { envNumber, sleep, target } from "../lib/target.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login, mapLimit } from "../lib/xmpp.js";

const SESSIONS_PER_ACCOUNT = 3;
const BODY_PAD = "z".repeat(100);
const heavyUser = (i: number) => `mheavy${i}`;

function params(env: BenchEnv) {
  const accounts = Math.round(envNumber("MUCMUX_BENCH_HEAVY_ACCOUNTS", 30));
  const rooms = Math.round(envNumber("MUCMUX_BENCH_HEAVY_ROOMS", 3));
  // 15/s × 90 copies keeps Prosody alone below one core (~0.45) on the machine this was written on: an
  // open-loop rate that saturates the direct server would compare a backlogged server with an idle one.
  const rate = envNumber("MUCMUX_BENCH_HEAVY_RATE", 15);
  // The warm-up also lets the server pay for the joins (direct: ~12k presence stanzas, then Lua's GC of them).
  return { accounts, rooms, rate, warmupMs: 2500, measureMs: env.quick ? 3000 : 12_000 };
}

export const mucHeavy: Scenario = {
  id: "muc-heavy",
  title: "MUC-heavy load, 3 sessions per account: total CPU of Prosody + mucmux vs Prosody alone",
  describe(env) {
    const p = params(env);
    const sessions = p.accounts * SESSIONS_PER_ACCOUNT;
    return `${p.accounts} accounts × ${SESSIONS_PER_ACCOUNT} sessions (direct TLS, PLAIN), every session in each of ${p.rooms} ` +
      `fresh rooms (one nick per account, no history); the sessions send groupchat (${BODY_PAD.length + 6}-byte body) at ` +
      `${p.rate}/s in all, open-loop, message k from session k mod ${sessions} to room k mod ${p.rooms}, so every message ` +
      `reaches ${sessions} sessions. CPU (/proc, utime + stime) of Prosody and mucmux from the first measured message until ` +
      `the last copy of the last one has arrived (+200 ms): ${p.warmupMs / 1000} s warm-up, then ${(p.rate * p.measureMs) / 1000} ` +
      "messages measured. Direct: Prosody with its own TLS; mucmux: a fresh mucmux in front of it (one anchor per account " +
      "and room upstream). Prosody restarted before each run.";
  },
  notes: [
    "The ratio row is the headline figure: Prosody + mucmux per room message through mucmux, over Prosody alone per " +
      "room message when the same clients connect to it directly (same message count; median of the per-pair ratios).",
    "Setup (logins and joins) is reported separately: through mucmux the 2nd and 3rd join of an account are answered " +
      "from mucmux's room state, so Prosody sees one occupant per account instead of three.",
    "Prosody is restarted before every run (same accounts): its CPU per message grew with the work of earlier " +
      "scenarios in the same process. The long-lived mucmux of the other scenarios reconnects its kept rooms after the " +
      "restart, seconds before the measured messages.",
  ],
  pairs: (quick) => (quick ? 1 : 5), // ~25 s per pair (90 logins and 270 joins each run)
  figures: [
    { key: "systemUsPerMsg", label: "Prosody + mucmux CPU per room message", unit: "µs", compare: "ratio", digits: 0, target: "below the server alone (× < 1)" },
    { key: "prosodyUsPerMsg", label: "Prosody CPU per room message", unit: "µs", compare: "ratio", digits: 0 },
    { key: "mucmuxUsPerMsg", label: "mucmux CPU per room message", unit: "µs", only: "mucmux", digits: 0 },
    { key: "systemUsPerCopy", label: "Prosody + mucmux CPU per delivered copy", unit: "µs", compare: "ratio", digits: 1 },
    { key: "systemCores", label: "Prosody + mucmux CPU use", unit: "cores", compare: "ratio", digits: 2 },
    { key: "last50", label: "time until the last copy, p50", unit: "ms", compare: "delta", digits: 2 },
    { key: "last99", label: "time until the last copy, p99", unit: "ms", compare: "delta", digits: 2 },
    { key: "setupMs", label: "Prosody + mucmux CPU for the logins and joins", unit: "ms", compare: "ratio", digits: 0 },
    { key: "lost", label: "copies not delivered", unit: "copies", compare: "none", digits: 0 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
  ],
  run: runOnce,
};

let accountsReady: Promise<void> | undefined;

async function runOnce(mode: Mode, env: BenchEnv, iteration: number): Promise<Sample> {
  const p = params(env);
  accountsReady ??= addProsodyAccounts(env.prosody, Array.from({ length: p.accounts }, (_, i) => heavyUser(i)), (u) => env.password(u));
  await accountsReady;
  let fresh: MucmuxProcess | undefined;
  const opened: BenchSession[] = [];
  try {
    // A restarted Prosody for every run: after the earlier scenarios (1000-login bursts, big stanzas) Prosody's
    // CPU per message read up to ~2× higher than on a fresh one, in both modes.
    await env.restartProsody();
    if (mode === "mucmux") fresh = await env.freshMucmux();
    const t = await target(mode, env, fresh);
    const tag = `${mode}-${iteration}-${Date.now().toString(36)}`;
    const rooms = Array.from({ length: p.rooms }, (_, r) => `heavy-${tag}-${r}@conference.${DOMAIN}`);
    const s0 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    // Session i belongs to account i mod A: the 3 sessions of an account log in and join far apart in time.
    const n = p.accounts * SESSIONS_PER_ACCOUNT;
    const sessions = await mapLimit([...Array(n).keys()], 16, async (i) => {
      const user = heavyUser(i % p.accounts);
      const s = await login({ port: t.port, user, password: env.password(user), resource: `h${tag}-${i}`, ca: env.ca, timeoutMs: 60_000 });
      opened.push(s);
      const c = new Collector(s, 1 << 16);
      for (const room of rooms) await joinRoom(c, room, user, 30_000);
      return s;
    });
    await sleep(1000); // the last presence broadcasts
    const s1 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    const setup = cpuDelta(s0, s1);

    const { cpu: d, msgs, lost, last } = await measureRoomLoad({
      ...p, receivers: sessions, prosodyPid: t.prosodyPid, mucmuxPid: t.mucmux?.pid, settleMs: 10_000,
      send: (k) => sessions[k % n]?.write(`<message to='${rooms[k % p.rooms] ?? ""}' type='groupchat' id='h${k}'><body>${numberedBody(k, BODY_PAD)}</body></message>`),
    });
    const broken = sessions.find((s) => s.isClosed);
    if (broken) throw new Error(`${broken.jid}: stream closed during the run${broken.error ? ` (${broken.error.message})` : ""}`);
    const system = d.prosody + d.mucmux;
    return {
      systemUsPerMsg: (system * 1e6) / msgs,
      prosodyUsPerMsg: (d.prosody * 1e6) / msgs,
      mucmuxUsPerMsg: fresh ? (d.mucmux * 1e6) / msgs : Number.NaN,
      systemUsPerCopy: (system * 1e6) / (msgs * n),
      systemCores: system / d.seconds,
      last50: percentileSorted(last, 50),
      last99: percentileSorted(last, 99),
      setupMs: (setup.prosody + setup.mucmux) * 1000,
      lost,
      foreignCores: d.foreignCores,
    };
  } finally {
    await mapLimit(opened, 100, (s) => s.close(1000));
    await fresh?.stop();
  }
}
