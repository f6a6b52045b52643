// Scenario: fan-out cost. N sessions of one account in one room, another account (always direct) sends
// groupchat messages at a fixed open-loop rate. Per message: the time from its write until the last of the
// N copies arrived (p50/p99); CPU per delivered copy; and in mucmux mode the CPU per *extra* copy, from a
// 1-session phase and an N-session phase of the same run: (CPU/msg at N − CPU/msg at 1) / (N − 1).
import { Collector, joinRoom } from "../lib/muc.js";
import { measureRoomLoad, numberedBody } from "../lib/muc-load.js";
import { percentileSorted } from "../lib/stats.js";
import { envNumber, sleep, target } from "../lib/target.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login, mapLimit } from "../lib/xmpp.js";

export const FANOUT_ACCOUNT = "mfan";
export const FANOUT_SENDER = "mfsend";
const BODY_PAD = "y".repeat(100);

function params(env: BenchEnv) {
  const n = Math.min(50, Math.round(envNumber("MUCMUX_BENCH_FANOUT_N", 50)));
  const rate = envNumber("MUCMUX_BENCH_FANOUT_RATE", 100);
  // Investigation knobs (defaults: the scenario as reported): the sender writes `burst` messages at once (one write,
  // every burst/rate s), so the copies of several messages can share a write toward each device; `sm`: the N
  // sessions enable XEP-0198 (with resumption), so every copy is followed by mucmux's <r/> and the device's <a/>.
  const burst = Math.max(1, Math.round(envNumber("MUCMUX_BENCH_FANOUT_BURST", 1)));
  const sm = envNumber("MUCMUX_BENCH_FANOUT_SM", 0) === 1;
  const timing = env.quick ? { warmupMs: 500, measureMs: 2000 } : { warmupMs: 1000, measureMs: 6000 };
  return { n, rate, burst, sm, ...timing };
}

export const mucFanout: Scenario = {
  id: "muc-fanout",
  title: "MUC fan-out: CPU per delivered copy and time until the last copy, N sessions of one account",
  describe(env) {
    const p = params(env);
    const knobs = (p.burst > 1 ? `, ${p.burst} messages per write` : "") + (p.sm ? "; the N sessions with XEP-0198 (resume)" : "");
    return `N = ${p.n} sessions of one account in one room (direct: N occupants with one nick; mucmux: one anchor, fan-out), ` +
      `another account (always direct to Prosody) sends groupchat at ${p.rate}/s open-loop${knobs}; ${p.measureMs / 1000} s measured per ` +
      "phase. Last copy: from the sender's write to the arrival of the N-th copy (includes Prosody and the generator). " +
      "Extra copy: a 1-session phase then an N-session phase in the same run.";
  },
  figures: [
    { key: "last50", label: "time until the last copy, p50", unit: "ms", compare: "delta", digits: 2 },
    { key: "last99", label: "time until the last copy, p99", unit: "ms", compare: "delta", digits: 2 },
    { key: "first50", label: "time until the first copy, p50", unit: "ms", compare: "delta", digits: 2 },
    { key: "mucmuxUsPerMsg1", label: "mucmux CPU per room message with 1 session", unit: "µs", only: "mucmux", digits: 1 },
    { key: "mucmuxUsPerCopy", label: "mucmux CPU per delivered copy (N sessions)", unit: "µs", only: "mucmux", digits: 1 },
    { key: "mucmuxUsPerExtraCopy", label: "mucmux CPU per extra copy ((N − 1) more sessions)", unit: "µs", only: "mucmux", digits: 2, target: "≤ 3" },
    { key: "prosodyUsPerMsg", label: "Prosody CPU per room message (N sessions)", unit: "µs", compare: "ratio", digits: 1 },
    { key: "systemUsPerMsg", label: "Prosody + mucmux CPU per room message (N sessions)", unit: "µs", compare: "ratio", digits: 1 },
    { key: "lost", label: "copies not delivered", unit: "copies", compare: "none", digits: 0 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
  ],
  run: runOnce,
};

interface Phase { usMucmux: number; usProsody: number; last: Float64Array; first: Float64Array; lost: number; foreign: number }

async function runOnce(mode: Mode, env: BenchEnv, iteration: number): Promise<Sample> {
  const p = params(env);
  const t = await target(mode, env);
  const opened: BenchSession[] = [];
  try {
    const sender = await login({ port: env.prosody.directTlsPort ?? 0, user: FANOUT_SENDER, password: env.password(FANOUT_SENDER), resource: `f${mode}${iteration}`, ca: env.ca });
    opened.push(sender);
    const senderC = new Collector(sender, 1 << 16);
    const phase = async (n: number): Promise<Phase> => {
      const room = `fanout-${mode}-${iteration}-${n}-${Date.now().toString(36)}@conference.${DOMAIN}`;
      await joinRoom(senderC, room, "sender");
      const sessions = await mapLimit([...Array(n).keys()], 16, (i) =>
        login({ port: t.port, user: FANOUT_ACCOUNT, password: env.password(FANOUT_ACCOUNT), resource: `f${mode}${iteration}-${n}-${i}`, ca: env.ca }));
      opened.push(...sessions);
      if (p.sm) await Promise.all(sessions.map((s) => s.enableSm()));
      for (const s of sessions) await joinRoom(new Collector(s, 1 << 16), room, "reader");
      await sleep(300);
      let pending = "";
      // CPU window: messages after the warm-up (their copies have arrived when it closes).
      const { cpu: d, msgs, lost, last, first } = await measureRoomLoad({
        ...p, receivers: sessions, prosodyPid: t.prosodyPid, mucmuxPid: t.mucmux?.pid, settleMs: 5000,
        send: (k) => {
          const msg = `<message to='${room}' type='groupchat' id='f${k}'><body>${numberedBody(k, BODY_PAD)}</body></message>`;
          if (p.burst === 1) return void sender.write(msg);
          // The messages released together leave in one write.
          if (pending === "") queueMicrotask(() => { sender.write(pending); pending = ""; });
          pending += msg;
        },
      });
      await Promise.all(sessions.map((s) => s.close()));
      senderC.session.write(`<presence to='${room}/sender' type='unavailable'/>`);
      return {
        usMucmux: (d.mucmux * 1e6) / msgs,
        usProsody: (d.prosody * 1e6) / msgs,
        last,
        first,
        lost,
        foreign: d.foreignCores,
      };
    };
    const one = mode === "mucmux" ? await phase(1) : undefined;
    const many = await phase(p.n);
    return {
      last50: percentileSorted(many.last, 50),
      last99: percentileSorted(many.last, 99),
      first50: percentileSorted(many.first, 50),
      mucmuxUsPerMsg1: one ? one.usMucmux : Number.NaN,
      mucmuxUsPerCopy: mode === "mucmux" ? many.usMucmux / p.n : Number.NaN,
      mucmuxUsPerExtraCopy: one ? (many.usMucmux - one.usMucmux) / (p.n - 1) : Number.NaN,
      prosodyUsPerMsg: many.usProsody,
      systemUsPerMsg: many.usProsody + many.usMucmux,
      lost: many.lost,
      foreignCores: many.foreign,
    };
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
}
