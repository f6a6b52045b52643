// Scenario: mucmux at saturation of its own core. With Prosody behind it (relay-throughput) mucmux is never the
// bottleneck: Prosody costs ~3× mucmux's CPU per stanza and saturates first, so mucmux reads few stanzas per
// wake-up and its per-stanza figure carries the machine's per-wake-up cost. Here the server is
// bench/lib/reflector.mjs (a byte-level stand-in that routes messages at a small fraction of mucmux's cost), so
// mucmux becomes the busiest process. The comparison column ("direct" in the tables) is not a direct connection
// but the floor a relay cannot beat: bench/lib/tls-pipe.mjs, a TLS-terminating byte pipe with no XML, in front
// of the same reflector, with the same clients and load.
import { spawn } from "node:child_process";
import * as path from "node:path";

import { testCertificate } from "../../test/support/certs.js";
import { track, untrack } from "../../test/support/proc.js";
import { ROOT, spawnMucmux } from "../lib/mucmux-process.js";
import type { BenchEnv, Mode, Sample, Scenario } from "../lib/types.js";
import { relayLoad, relayParams } from "./relay-throughput.js";

export interface Helper { pid: number; port: number; stop(): Promise<void> }

/** Starts `node bench/lib/<script> ...args`, which prints `port=N` once it listens. */
export function spawnHelper(script: string, args: string[]): Promise<Helper> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench", "lib", script), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    const pid = child.pid ?? 0;
    if (pid) track(pid, script);
    const gone = new Promise<void>((r) => child.once("exit", () => { untrack(pid); r(); }));
    const stop = async () => {
      child.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => { void stop(); reject(new Error(`${script}: no port within 10 s`)); }, 10_000);
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ pid, port: Number(m[1]), stop }); }
    });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${script} exited (${code}) before listening`)); });
  });
}

export const relaySaturation: Scenario = {
  id: "relay-saturation",
  title: "1:1 chat relay with mucmux as the bottleneck: CPU per stanza at one busy core, vs a TLS byte pipe",
  describe(env) {
    const p = relayParams(env);
    return `The relay-throughput load (${p.pairs} pairs, 256 in flight per pair, 16 messages per write) against a byte-level ` +
      "reflector instead of Prosody, so that the relay is the busiest process. Column \"direct\" = a TLS-terminating byte " +
      "pipe (no XML) in front of the same reflector: the floor; column \"mucmux\" = mucmux in front of it.";
  },
  notes: [
    "The reflector (bench/lib/reflector.mjs) accepts any PLAIN login, binds, and copies each `<message/>` to the session its `to` names without parsing XML; it is a load generator, not a server.",
    "relay CPU per stanza·direction is the figure of the target \"CPU per stanza at saturation of one core\"; relay CPU use shows how close the relay came to one core (the 2-core machine also runs the clients and the reflector).",
  ],
  figures: [
    { key: "msgPerSec", label: "messages delivered", unit: "msg/s", compare: "ratio", digits: 0 },
    { key: "relayUsPerStanza", label: "relay CPU per relayed stanza·direction (pipe | mucmux)", unit: "µs", compare: "ratio", digits: 2, target: "≤ 5 (acceptable ≤ 12)" },
    { key: "relayCores", label: "relay CPU use (pipe | mucmux)", unit: "cores", compare: "none", digits: 2 },
    { key: "reflectorUsPerStanza", label: "reflector CPU per stanza·direction", unit: "µs", compare: "none", digits: 2 },
    { key: "benchCores", label: "load generator CPU use", unit: "cores", compare: "none", digits: 2 },
    { key: "foreignCores", label: "other work on the machine", unit: "cores", compare: "none", digits: 2 },
    { key: "relayedCheck", label: "mucmux stanza counter / client count", unit: "×", only: "mucmux", digits: 3 },
    { key: "lost", label: "messages not delivered", unit: "msg", compare: "none", digits: 0 },
  ],
  run: runOnce,
};

async function runOnce(mode: Mode, env: BenchEnv): Promise<Sample> {
  const p = relayParams(env);
  const reflector = await spawnHelper("reflector.mjs", []);
  let relay: { pid: number; port: number; metrics?: () => Promise<string>; stop(): Promise<void> } | undefined;
  try {
    if (mode === "mucmux") {
      const m = await spawnMucmux(reflector.port);
      relay = { pid: m.pid, port: m.directPort, metrics: () => m.metrics(), stop: () => m.stop() };
    } else {
      const cert = testCertificate();
      relay = await spawnHelper("tls-pipe.mjs", [cert.certFile, cert.keyFile, String(reflector.port)]);
    }
    const r = await relayLoad({ ...p, env, port: relay.port, serverPid: reflector.pid, relay, users: { send: "ssend", recv: "srecv" } });
    return {
      msgPerSec: r.delivered / r.cpu.seconds,
      relayUsPerStanza: (r.cpu.mucmux * 1e6) / r.relayed,
      relayCores: r.cpu.mucmux / r.cpu.seconds,
      reflectorUsPerStanza: (r.cpu.prosody * 1e6) / r.relayed,
      benchCores: r.cpu.bench / r.cpu.seconds,
      foreignCores: r.cpu.foreignCores,
      relayedCheck: r.relayedCheck,
      lost: r.lost,
    };
  } finally {
    await relay?.stop();
    await reflector.stop();
  }
}
