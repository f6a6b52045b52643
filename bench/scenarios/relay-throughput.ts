// Scenario: 1:1 chat relay at saturation. N sender/receiver pairs; each sender keeps at most WINDOW messages
// in flight to its receiver (closed loop, so nothing piles up in socket buffers and mucmux never hits its
// maxBufferedBytes cap), writing them in batches. CPU comes from /proc for Prosody and mucmux.
import { cpuDelta, cpuSnapshot, type CpuDelta } from "../lib/procfs.js";
import { metricSum } from "../lib/mucmux-process.js";
import { envNumber, sleep, target, until } from "../lib/target.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, TagCounter, login, mapLimit } from "../lib/xmpp.js";

// Messages in flight per pair. 64 left the mucmux path latency-bound (no process busy); 256 saturates Prosody
// in both modes on the 2-core machine this was written on.
const WINDOW = Math.round(envNumber("MUCMUX_BENCH_WINDOW", 256));
const BATCH = 16; // messages per write (one TLS record of ~4.5 KB)
// ~200 bytes of body text, ASCII, nothing to escape.
const BODY = "The quick brown fox jumps over the lazy dog while mucmux relays every byte of this chat message. "
  .repeat(3).slice(0, 200);

export function relayParams(env: BenchEnv) {
  return env.quick ? { pairs: 4, warmupMs: 800, measureMs: 2000 } : { pairs: 8, warmupMs: 1500, measureMs: 8000 };
}

export const relayThroughput: Scenario = {
  id: "relay-throughput",
  title: "1:1 chat relay at saturation: throughput and CPU per stanza",
  describe(env) {
    const p = relayParams(env);
    return `${p.pairs} sender→receiver pairs (direct TLS, PLAIN), chat messages with a ${BODY.length}-byte body, ` +
      `${WINDOW} in flight per pair, written ${BATCH} per write; ${p.warmupMs / 1000} s warm-up, ${p.measureMs / 1000} s measured. ` +
      "A relayed stanza is one message in one direction (client→server or server→client): CPU-µs per stanza = CPU time / (sent + delivered).";
  },
  figures: [
    { key: "msgPerSec", label: "messages delivered", unit: "msg/s", compare: "ratio", digits: 0 },
    { key: "mucmuxUsPerStanza", label: "mucmux CPU per relayed stanza·direction", unit: "µs", only: "mucmux", digits: 1, target: "≤ 5 (acceptable ≤ 12)" },
    { key: "prosodyUsPerStanza", label: "Prosody CPU per stanza·direction", unit: "µs", compare: "ratio", digits: 1 },
    { key: "systemUsPerMsg", label: "Prosody + mucmux CPU per delivered message", unit: "µs", compare: "ratio", digits: 1 },
    { key: "benchUsPerMsg", label: "load generator CPU per message", unit: "µs", compare: "ratio", digits: 1 },
    { key: "mucmuxCores", label: "mucmux CPU use", unit: "cores", only: "mucmux", digits: 2 },
    { key: "prosodyCores", label: "Prosody CPU use", unit: "cores", compare: "none", digits: 2 },
    { key: "benchCores", label: "load generator CPU use", unit: "cores", compare: "none", digits: 2 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
    { key: "relayedCheck", label: "mucmux stanza counter / client count", unit: "×", only: "mucmux", digits: 3 },
    { key: "lost", label: "messages not delivered", unit: "msg", compare: "none", digits: 0 },
  ],
  run: runOnce,
};

async function runOnce(mode: Mode, env: BenchEnv): Promise<Sample> {
  const p = relayParams(env);
  const t = await target(mode, env);
  const r = await relayLoad({ ...p, port: t.port, serverPid: t.prosodyPid, relay: t.mucmux, env });
  return {
    msgPerSec: r.delivered / r.cpu.seconds,
    mucmuxUsPerStanza: t.mucmux ? (r.cpu.mucmux * 1e6) / r.relayed : Number.NaN,
    prosodyUsPerStanza: (r.cpu.prosody * 1e6) / r.relayed,
    systemUsPerMsg: ((r.cpu.prosody + r.cpu.mucmux) * 1e6) / r.delivered,
    benchUsPerMsg: (r.cpu.bench * 1e6) / r.delivered,
    mucmuxCores: t.mucmux ? r.cpu.mucmux / r.cpu.seconds : Number.NaN,
    prosodyCores: r.cpu.prosody / r.cpu.seconds,
    benchCores: r.cpu.bench / r.cpu.seconds,
    foreignCores: r.cpu.foreignCores,
    relayedCheck: r.relayedCheck,
    lost: r.lost,
  };
}

export interface RelayLoadOptions {
  env: BenchEnv;
  port: number;
  pairs: number;
  warmupMs: number;
  measureMs: number;
  /** The server behind the relay (its CPU is reported as `prosody`). */
  serverPid: number;
  /** The relay in front of it: mucmux (CPU as `mucmux`, stanza counter checked), a bare pid, or none (direct). */
  relay?: { pid: number; metrics?: () => Promise<string> } | undefined;
  /** Accounts (default the Prosody bench accounts bsend/brecv). */
  users?: { send: string; recv: string };
  /** Every client enables XEP-0198 with resumption after bind and answers each <r/> at once (BenchSession.enableSm). */
  sm?: boolean;
}

export interface RelayLoadResult {
  cpu: CpuDelta;
  /** Stanzas relayed in the window, both directions (sent + delivered). */
  relayed: number;
  delivered: number;
  /** mucmux's own chat message counter over the client-side count (1 when mucmux saw each stanza once). */
  relayedCheck: number;
  lost: number;
  /** With `sm`, over the whole run (warm-up included): the <r/> the clients answered, the acks mucmux counted
   * (mucmux_sm_acks_total from client / from upstream), and the stanzas they cover (to clients, toward the server). */
  sm?: { requests: number; clientAcks: number; upstreamAcks: number; toClients: number; upstream: number };
}

/** N sender→receiver pairs, each keeping WINDOW messages in flight, for warm-up + measurement; CPU from /proc. */
export async function relayLoad(o: RelayLoadOptions): Promise<RelayLoadResult> {
  const senders: BenchSession[] = [];
  const receivers: BenchSession[] = [];
  const users = o.users ?? { send: "bsend", recv: "brecv" };
  try {
    await mapLimit([...Array(o.pairs).keys()], 8, async (i) => {
      receivers[i] = await login({ port: o.port, user: users.recv, password: o.env.password(users.recv), resource: `r${i}`, ca: o.env.ca });
      senders[i] = await login({ port: o.port, user: users.send, password: o.env.password(users.send), resource: `s${i}`, ca: o.env.ca });
    });
    if (o.sm) {
      await mapLimit([...senders, ...receivers], 8, async (s) => {
        const enabled = await s.enableSm();
        if (!/resume=['"](true|1)['"]/.test(enabled)) throw new Error(`${s.jid}: stream management without resumption: ${enabled}`);
      });
    }
    const sent = new Array<number>(o.pairs).fill(0);
    const recv = new Array<number>(o.pairs).fill(0);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    let running = true;
    const heads = receivers.map((r) => `<message type='chat' to='${users.recv}@${DOMAIN}/${r.jid.split("/")[1] ?? ""}' id='m`);
    const tail = `'><body>${BODY}</body></message>`;
    const pump = (i: number) => {
      const s = senders[i];
      if (!running || !s || s.isClosed) return;
      const free = WINDOW - ((sent[i] ?? 0) - (recv[i] ?? 0));
      for (let room = free; room > 0;) {
        const k = Math.min(BATCH, room);
        let out = "";
        for (let j = 0; j < k; j++) out += heads[i] + String((sent[i] ?? 0) + j) + tail;
        s.write(out);
        sent[i] = (sent[i] ?? 0) + k;
        room -= k;
      }
    };
    receivers.forEach((r, i) => {
      const counter = new TagCounter("</message>");
      r.onData = (chunk) => {
        recv[i] = (recv[i] ?? 0) + counter.count(chunk);
        pump(i);
      };
    });
    const before = o.relay?.metrics ? await o.relay.metrics() : "";
    const sent0 = sum(sent);
    const recv0 = sum(recv);
    for (let i = 0; i < o.pairs; i++) pump(i);
    await sleep(o.warmupMs);
    const c0 = cpuSnapshot(o.serverPid, o.relay?.pid);
    const s0 = sum(sent), r0 = sum(recv);
    await sleep(o.measureMs);
    const c1 = cpuSnapshot(o.serverPid, o.relay?.pid);
    const s1 = sum(sent), r1 = sum(recv);
    running = false;
    await until(() => sum(recv) >= sum(sent), 10_000);
    const broken = [...senders, ...receivers].find((s) => s.isClosed);
    if (broken) throw new Error(`${broken.jid}: stream closed during the run${broken.error ? ` (${broken.error.message})` : ""}`);
    const delivered = r1 - r0;
    if (delivered === 0) throw new Error("no message was delivered in the measurement window");
    let relayedCheck = Number.NaN;
    let sm: RelayLoadResult["sm"];
    if (o.relay?.metrics) {
      const after = await o.relay.metrics();
      const delta = (name: string, labels: Record<string, string>) => metricSum(after, name, labels) - metricSum(before, name, labels);
      relayedCheck = delta("mucmux_stanzas_total", { kind: "message", type: "chat" }) / (sum(sent) - sent0 + (sum(recv) - recv0));
      if (o.sm) {
        sm = {
          requests: receivers.reduce((n, r) => n + (r.sm?.requests ?? 0), 0),
          clientAcks: delta("mucmux_sm_acks_total", { from: "client" }),
          upstreamAcks: delta("mucmux_sm_acks_total", { from: "upstream" }),
          toClients: sum(recv) - recv0,
          upstream: sum(sent) - sent0,
        };
        // With resumption granted to the client, mucmux enables SM on the leg too; acks from the server prove it.
        if (sm.upstreamAcks === 0) throw new Error("stream management is not active on the upstream legs: no <a/> from the server");
      }
    }
    return { cpu: cpuDelta(c0, c1), relayed: s1 - s0 + (r1 - r0), delivered, relayedCheck, lost: sum(sent) - sum(recv), ...(sm ? { sm } : {}) };
  } finally {
    await Promise.all([...senders, ...receivers].map((s) => s.close()));
  }
}
