// Scenario: what XEP-0198 stream management costs mucmux on the 1:1 relay path. The relay-throughput load through
// mucmux, with the clients plain (column "without SM") or having enabled SM with resumption after bind (column
// "with SM"), in alternation. With SM on, mucmux keeps every stanza it writes to a client until the client's <a h/>
// and sends one <r/> per burst, counts the client's stanzas, and, since the client asked for
// resumption and the server offers SM, enables SM on the upstream leg too: every stanza sent upstream is
// kept until the server acknowledges it, the server's <r/> is answered, acks are requested upstream.
// Each run measures twice: against the reflector (mucmux at one busy core, the CPU-per-stanza figure of
// relay-saturation) and behind the bench Prosody (real mod_smacks on the leg; Prosody saturates first).
import { spawnMucmux } from "../lib/mucmux-process.js";
import type { BenchEnv, Figure, Mode, Sample, Scenario } from "../lib/types.js";
import { spawnHelper } from "./relay-saturation.js";
import { relayLoad, relayParams, type RelayLoadResult } from "./relay-throughput.js";

type Params = ReturnType<typeof relayParams>;

/** The figures of one measurement, keyed by `prefix` (sat: reflector upstream, pro: Prosody upstream). */
function sample(prefix: "sat" | "pro", r: RelayLoadResult): Sample {
  const per1000 = (n: number | undefined, of: number | undefined) => (n === undefined || !of ? Number.NaN : (n * 1000) / of);
  return {
    [`${prefix}Us`]: (r.cpu.mucmux * 1e6) / r.relayed,
    [`${prefix}MsgPerSec`]: r.delivered / r.cpu.seconds,
    [`${prefix}Cores`]: r.cpu.mucmux / r.cpu.seconds,
    [`${prefix}ServerUs`]: (r.cpu.prosody * 1e6) / r.relayed,
    [`${prefix}R`]: per1000(r.sm?.requests, r.sm?.toClients),
    [`${prefix}LegAcks`]: per1000(r.sm?.upstreamAcks, r.sm?.upstream),
    [`${prefix}BenchCores`]: r.cpu.bench / r.cpu.seconds,
    [`${prefix}Foreign`]: r.cpu.foreignCores,
    [`${prefix}Check`]: r.relayedCheck,
    [`${prefix}Lost`]: r.lost,
  };
}

/** mucmux in front of the reflector (both fresh for the run): mucmux is the busiest process. */
async function saturated(sm: boolean, env: BenchEnv, p: Params): Promise<Sample> {
  const reflector = await spawnHelper("reflector.mjs", []);
  try {
    const m = await spawnMucmux(reflector.port);
    try {
      const relay = { pid: m.pid, metrics: () => m.metrics() };
      return sample("sat", await relayLoad({ ...p, env, port: m.directPort, serverPid: reflector.pid, relay, users: { send: "ssend", recv: "srecv" }, sm }));
    } finally {
      await m.stop();
    }
  } finally {
    await reflector.stop();
  }
}

/** A fresh mucmux in front of the bench Prosody (mod_smacks on the leg). */
async function behindProsody(sm: boolean, env: BenchEnv, p: Params): Promise<Sample> {
  const m = await env.freshMucmux();
  try {
    return sample("pro", await relayLoad({ ...p, env, port: m.directPort, serverPid: env.prosody.pid, relay: m, sm }));
  } finally {
    await m.stop();
  }
}

const figures: Figure[] = [
  { key: "satUs", label: "mucmux CPU per relayed stanza·direction, mucmux at one busy core (reflector upstream)", unit: "µs", compare: "delta-percent", digits: 2 },
  { key: "proUs", label: "mucmux CPU per relayed stanza·direction behind Prosody", unit: "µs", compare: "delta-percent", digits: 2 },
  { key: "satMsgPerSec", label: "messages delivered (reflector)", unit: "msg/s", compare: "ratio", digits: 0 },
  { key: "proMsgPerSec", label: "messages delivered (Prosody)", unit: "msg/s", compare: "ratio", digits: 0 },
  { key: "satCores", label: "mucmux CPU use (reflector)", unit: "cores", compare: "none", digits: 2 },
  { key: "proCores", label: "mucmux CPU use (Prosody)", unit: "cores", compare: "none", digits: 2 },
  { key: "proServerUs", label: "Prosody CPU per stanza·direction (its mod_smacks on mucmux's legs)", unit: "µs", compare: "delta-percent", digits: 1 },
  { key: "satServerUs", label: "reflector CPU per stanza·direction", unit: "µs", compare: "none", digits: 2 },
  { key: "satR", label: "`<r/>` from mucmux to the clients (reflector)", unit: "per 1000 delivered", only: "mucmux", digits: 1 },
  { key: "proR", label: "`<r/>` from mucmux to the clients (Prosody)", unit: "per 1000 delivered", only: "mucmux", digits: 1 },
  { key: "satLegAcks", label: "`<a/>` from the server on mucmux's legs (reflector)", unit: "per 1000 sent upstream", only: "mucmux", digits: 1 },
  { key: "proLegAcks", label: "`<a/>` from the server on mucmux's legs (Prosody)", unit: "per 1000 sent upstream", only: "mucmux", digits: 1 },
  { key: "satBenchCores", label: "load generator CPU use (reflector)", unit: "cores", compare: "none", digits: 2 },
  { key: "satForeign", label: "other work on the machine (reflector)", unit: "cores", compare: "none", digits: 2 },
  { key: "proForeign", label: "other work on the machine (Prosody)", unit: "cores", compare: "none", digits: 2 },
  { key: "satCheck", label: "mucmux stanza counter / client count (reflector)", unit: "×", compare: "none", digits: 3 },
  { key: "proCheck", label: "mucmux stanza counter / client count (Prosody)", unit: "×", compare: "none", digits: 3 },
  { key: "satLost", label: "messages not delivered (reflector)", unit: "msg", compare: "none", digits: 0 },
  { key: "proLost", label: "messages not delivered (Prosody)", unit: "msg", compare: "none", digits: 0 },
];

export const relaySm: Scenario = {
  id: "relay-sm",
  title: "Cost of stream management (XEP-0198) on the 1:1 relay path: mucmux CPU per stanza with and without SM",
  columns: { direct: "without SM", mucmux: "with SM", compare: "with SM vs without" },
  describe(env) {
    const p = relayParams(env);
    return `The relay-throughput load through mucmux (${p.pairs} pairs, 256 in flight per pair, 16 messages per write; ` +
      `${p.warmupMs / 1000} s warm-up, ${p.measureMs / 1000} s measured), with the clients plain (column "without SM") or having ` +
      "enabled XEP-0198 with resume='true' after bind (column \"with SM\"), alternating without/with. Each run measures " +
      "twice, each time with a fresh mucmux: in front of bench/lib/reflector.mjs (mucmux at one busy core, as in " +
      "relay-saturation; the reflector speaks a minimal server-side XEP-0198) and in front of the bench Prosody (mod_smacks). " +
      "CPU-µs per stanza·direction = mucmux CPU time / (sent + delivered).";
  },
  notes: [
    "With SM, mucmux keeps each stanza it writes to a client (its serialized text) until the client's `<a h/>` and sends one `<r/>` per burst, in the same write as the burst (at the end of the turn that wrote it); it counts the client's stanzas; and since the client asked for resumption and the server offers SM, it enables SM on each upstream leg, keeping each stanza sent upstream until the server's `<a h/>`, answering the server's `<r/>` and requesting acks upstream. The \"`<a/>` from the server\" rows (non-zero in every run with SM, checked) show that the legs ran with SM.",
    "The clients (bench/lib/xmpp.ts `enableSm`, `SmCounter`) count the top-level stanzas they receive with a tag scanner and answer every `<r/>` at once with the correct `h`, as a real client does; they send no `<r/>` of their own and keep nothing to resend. The reflector answers `<enable/>` with a resumable `<enabled/>`, counts what it reads for its `<a h/>` and keeps one `<r/>` outstanding toward a session that it sends stanzas to; its CPU is the reflector row, not mucmux's.",
    "The difference column is the median over pairs of (with SM − without SM) in µs and in % of without SM, with the range over pairs. Behind Prosody, mucmux is at a fraction of a core and reads few stanzas per wake-up (see relay-throughput), so that figure carries more per-wake-up cost and noise than the reflector one.",
  ],
  figures,
  async run(mode: Mode, env: BenchEnv): Promise<Sample> {
    const sm = mode === "mucmux";
    const p = relayParams(env);
    return { ...(await saturated(sm, env, p)), ...(await behindProsody(sm, env, p)) };
  },
};
