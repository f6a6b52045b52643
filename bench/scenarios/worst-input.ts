// Scenario: the longest event-loop stall in mucmux from one input (SPEC E1: ≤ 10 ms), measured inside the mucmux
// process by bench/lib/loop-probe.mjs (monitorEventLoopDelay at 1 ms, plus the main thread's schedstat).
// (a) One stanza of exactly limits.maxStanzaBytes in the densest shape the limits allow (limits.maxElements
//     elements, attributes with entity references on each, the rest a body of entity references), written by
//     a client in 64-byte TLS records (one write per record, each waited for) to another account.
// (b) A burst of 1000 logins at once (1000 accounts, one session each, all connects started in one tick).
// Direct mode has no mucmux loop: it gives Prosody's CPU and the wall-clock figures for context.
import { configLeaves } from "../../src/config/index.js";
import { addProsodyAccounts } from "../lib/accounts.js";
import { Collector } from "../lib/muc.js";
import type { LoopProbeReading, MucmuxProcess } from "../lib/mucmux-process.js";
import { cpuDelta, cpuSnapshot } from "../lib/procfs.js";
import { envNumber, sleep, target } from "../lib/target.js";
import type { BenchEnv, Figure, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login, mapLimit } from "../lib/xmpp.js";

export const WORST_SENDER = "wsend";
export const WORST_RECEIVER = "wrecv";
const RECORD_BYTES = 64;
const burstUser = (i: number) => `burst${i}`;

function params(env: BenchEnv) {
  return { burst: Math.round(envNumber("MUCMUX_BENCH_BURST", 1000)), settleMs: env.quick ? 300 : 500 };
}

/** mucmux's defaults for the limits that shape the stanza (the bench runs mucmux with default limits). */
export function defaultLimits(): { maxStanzaBytes: number; maxElements: number; maxAttributes: number } {
  const leaves = configLeaves();
  const get = (p: string) => {
    const v = Number(leaves.find((l) => l.path === p)?.defaultText);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`worst-input: no numeric default for ${p}`);
    return v;
  };
  return { maxStanzaBytes: get("limits.maxStanzaBytes"), maxElements: get("limits.maxElements"), maxAttributes: get("limits.maxAttributes") };
}

/**
 * `<message to id type='chat'><body>TEXT</body><x xmlns=…>E…E</x></message>` of exactly limits.maxStanzaBytes
 * bytes with exactly limits.maxElements elements: every element but the three around them is an empty `<e/>`
 * with attributes holding entity references (as many as fit in 15/16 of the bytes, up to limits.maxAttributes),
 * the body is entity references too, padded to the byte. mucmux re-serializes all of it to the same length
 * (&lt; &amp; &gt; round-trip as written), so the upstream copy is within Prosody's equal 256 KiB limit.
 * The last element carries `z='end-ID'`, which the receiver waits for.
 */
export function worstStanza(to: string, id: string, l = defaultLimits()): { xml: Buffer; elements: number; attributes: number } {
  const head = `<message to='${to}' type='chat' id='${id}'><body>`;
  const mid = "</body><x xmlns='urn:mucmux:bench:worst'>";
  const tail = "</x></message>";
  const endMark = ` z='end-${id}'`;
  const nElems = Math.max(0, l.maxElements - 3); // message, body, x
  const fixed = head.length + mid.length + tail.length + endMark.length;
  const elemBudget = Math.floor(((l.maxStanzaBytes - fixed) * 15) / 16);
  const ATTR_VALUES = ["&lt;", "&amp;", "&gt;", "&amp;&lt;"];
  const attr = (j: number) => ` ${String.fromCharCode(97 + (j % 26))}${j >= 26 ? Math.floor(j / 26) : ""}='${ATTR_VALUES[j % ATTR_VALUES.length] ?? ""}'`;
  let perElem = "<e/>";
  let attrs = 0;
  for (let j = 0; j < l.maxAttributes - 1; j++) { // one attribute slot kept for z on the last element
    const next = `${perElem.slice(0, -2)}${attr(j)}/>`;
    if (next.length * nElems > elemBudget) break;
    perElem = next;
    attrs = j + 1;
  }
  const elems = nElems > 0 ? perElem.repeat(nElems - 1) + `${perElem.slice(0, -2)}${endMark}/>` : "";
  let textBytes = l.maxStanzaBytes - head.length - mid.length - tail.length - elems.length;
  if (textBytes < 0) throw new Error("worst-input: the limits leave no room for the stanza's frame");
  const unit = "&lt;b&gt;&amp;x"; // entity references that mucmux writes back as they are
  const text = unit.repeat(Math.floor(textBytes / unit.length));
  textBytes -= text.length;
  const xml = Buffer.from(head + text + "y".repeat(textBytes) + mid + elems + tail, "utf8");
  if (xml.length !== l.maxStanzaBytes) throw new Error(`worst-input: built ${xml.length} bytes, wanted ${l.maxStanzaBytes}`);
  return { xml, elements: nElems + 3, attributes: nElems * attrs + (nElems > 0 ? 1 : 0) };
}

const STALL_KEYS = ["StallMs", "P99Ms", "GapWaitMs", "BusyMs", "BusyCpuMs"] as const;

const stallFigures = (p: "stanza" | "burst", what: string, cpuNote: string): Figure[] => [
  { key: `${p}StallMs`, label: `${what}: longest event-loop stall (monitorEventLoopDelay max − 1 ms)`, unit: "ms", only: "mucmux", digits: 1, target: "≤ 10" },
  { key: `${p}P99Ms`, label: `${what}: event-loop delay p99 (− 1 ms)`, unit: "ms", only: "mucmux", digits: 2 },
  { key: `${p}GapWaitMs`, label: `${what}: run-queue wait of mucmux's main thread in the longest gap between 1-ms ticks`, unit: "ms", only: "mucmux", digits: 1 },
  { key: `${p}BusyMs`, label: `${what}: longest stall less run-queue wait (mucmux's own work)`, unit: "ms", only: "mucmux", digits: 1, target: "≤ 10" },
  { key: `${p}BusyCpuMs`, label: `${what}: mucmux CPU in that gap, all threads${cpuNote}`, unit: "ms", only: "mucmux", digits: 1 },
];

const figures: Figure[] = [
  { key: "coldStallMs", label: "first max-size stanza after start: longest event-loop stall (− 1 ms)", unit: "ms", only: "mucmux", digits: 1 },
  { key: "coldBusyMs", label: "first max-size stanza after start: longest stall less run-queue wait", unit: "ms", only: "mucmux", digits: 1 },
  ...stallFigures("stanza", "max-size stanza", ""),
  { key: "stanzaMucmuxMs", label: "max-size stanza: mucmux CPU (in and out, both sessions)", unit: "ms", only: "mucmux", digits: 1 },
  { key: "stanzaProsodyMs", label: "max-size stanza: Prosody CPU", unit: "ms", compare: "ratio", digits: 1 },
  { key: "trickleMs", label: "max-size stanza: time to write its 64-byte records", unit: "ms", compare: "ratio", digits: 0 },
  { key: "deliveryMs", label: "max-size stanza: last record written → received in full", unit: "ms", compare: "delta", digits: 1 },
  ...stallFigures("burst", "1k-login burst", " (incl. PBKDF2 on the libuv pool)"),
  { key: "burstMucmuxMsPerLogin", label: "1k-login burst: mucmux CPU per login attempt", unit: "ms", only: "mucmux", digits: 2 },
  { key: "burstProsodyMsPerLogin", label: "1k-login burst: Prosody CPU per login attempt", unit: "ms", compare: "ratio", digits: 2 },
  { key: "burstSeconds", label: "1k-login burst: time until every login has ended (bound or refused)", unit: "s", compare: "ratio", digits: 2 },
  { key: "burstRefused", label: "1k-login burst: logins refused with temporary-auth-failure", unit: "logins", compare: "none", digits: 0 },
  { key: "burstFailed", label: "1k-login burst: logins whose connection was reset, closed or timed out", unit: "logins", compare: "none", digits: 0 },
  { key: "foreignCores", label: "other work on the machine (max-size stanza and burst)", unit: "cores", compare: "none", digits: 2 },
];

export const worstInput: Scenario = {
  id: "worst-input",
  title: "Worst input: longest event-loop stall from a max-size stanza and from a burst of logins",
  describe(env) {
    const p = params(env);
    const l = defaultLimits();
    const s = worstStanza(`${WORST_RECEIVER}@${DOMAIN}`, "w");
    return `(a) one chat message of exactly ${l.maxStanzaBytes} bytes (limits.maxStanzaBytes) with ${s.elements} elements ` +
      `(limits.maxElements), ${s.attributes} attributes holding entity references and a body of entity references, written ` +
      `in ${RECORD_BYTES}-byte TLS records (${Math.ceil(l.maxStanzaBytes / RECORD_BYTES)} writes, each waited for) to another ` +
      "account's session, until it has arrived in full: once right after mucmux started (cold), then once more (measured in " +
      `full); (b) ${p.burst} logins (${p.burst} accounts, direct TLS, PLAIN, bind) all started in one tick, until every session ` +
      "is bound. Sender, receiver and burst use the mode's port. Stalls: measured inside a fresh mucmux with a preloaded probe " +
      "(bench/lib/loop-probe.mjs: perf_hooks.monitorEventLoopDelay at 1 ms resolution, and at every tick of a 1 ms interval " +
      "the main thread's run-queue wait from /proc/self/task/PID/schedstat and the process CPU), read before and after each part.";
  },
  notes: [
    "Direct mode has no mucmux event loop: its rows give Prosody's CPU and the wall-clock times only. Prosody's own " +
      "loop is not probed (no cheap way in from outside). In quick mode the direct runs skip the burst (10–20 s each, " +
      "Prosody hashing every PLAIN password itself): its direct column is empty then.",
    "A stall sample is the time between two runs of a 1 ms timer, so a stall of S ms reads between S and S + 1 ms; " +
      "1 ms is subtracted (error ≤ 1 ms, the libuv timer's millisecond rounding included). On a shared machine a gap " +
      "also holds time the main thread waited for a CPU while other processes ran: the probe reads the thread's " +
      "run-queue wait (exact, from schedstat) at every tick, and \"stall less run-queue wait\" is the longest stall " +
      "caused by mucmux's own work (time the hypervisor took the virtual CPU away still counts as work). The " +
      "target rows compare that figure; the wall-clock maximum is what a session saw on this shared machine.",
    "The probe's 1 ms timers cost mucmux a little CPU of their own (≈ 2 wake-ups per ms): the CPU rows of this " +
      "scenario read slightly high; use the other scenarios for CPU per stanza and per login.",
    "The 1000 accounts are written into Prosody's storage by bench/lib/accounts.ts (SCRAM-SHA-1, own salt each, " +
      "10000 iterations, as `prosodyctl register` does); the burst opens all connections in one tick, so the kernel's " +
      "listen backlogs (mucmux: Node's 511, Prosody: 128) and, through mucmux, its upstream connect cap " +
      "(upstream.connectsPerSecond after upstream.connectBurst, default config) also shape it. A login the cap " +
      "refuses (temporary-auth-failure after upstream.connectWaitSeconds) is counted, not retried; so is a connection " +
      "reset or closed before bind (seen in direct mode: Prosody's backlog of 128 overflows while it hashes passwords).",
  ],
  figures,
  run: runOnce,
};

let accountsReady: Promise<void> | undefined;

function ms(ns: number): number {
  return ns / 1e6;
}

function stall(prefix: string, r: LoopProbeReading | undefined): Sample {
  if (!r?.eld) return Object.fromEntries(STALL_KEYS.map((k) => [prefix + k, Number.NaN]));
  return {
    [`${prefix}StallMs`]: Math.max(0, ms(r.eld.max - r.resolutionNs)),
    [`${prefix}P99Ms`]: Math.max(0, ms(r.eld.p99 - r.resolutionNs)),
    [`${prefix}GapWaitMs`]: ms(r.gapWait),
    [`${prefix}BusyMs`]: Math.max(0, ms(r.maxBusy - r.resolutionNs)),
    [`${prefix}BusyCpuMs`]: ms(r.busyCpu),
  };
}

/** Writes `data` in records of `size` bytes: one TLS write each, the next only when the previous one is done. */
async function trickle(s: BenchSession, data: Buffer, size: number): Promise<void> {
  for (let off = 0; off < data.length; off += size) {
    await new Promise<void>((resolve, reject) => {
      s.socket.write(data.subarray(off, off + size), (e) => (e ? reject(e) : resolve()));
    });
  }
}

async function runOnce(mode: Mode, env: BenchEnv, iteration: number): Promise<Sample> {
  const p = params(env);
  accountsReady ??= addProsodyAccounts(env.prosody, [WORST_SENDER, WORST_RECEIVER, ...Array.from({ length: p.burst }, (_, i) => burstUser(i))],
    (u) => env.password(u));
  await accountsReady;
  let fresh: MucmuxProcess | undefined;
  const opened: BenchSession[] = [];
  try {
    if (mode === "mucmux") fresh = await env.freshMucmux({ loopProbe: true });
    const t = await target(mode, env, fresh);
    const probe = async () => (fresh ? fresh.loopProbe() : undefined);

    // (a) the max-size stanza, trickled: once on the fresh process (cold code paths), then once measured in full
    const receiver = await login({ port: t.port, user: WORST_RECEIVER, password: env.password(WORST_RECEIVER), resource: `r${iteration}`, ca: env.ca });
    opened.push(receiver);
    const sender = await login({ port: t.port, user: WORST_SENDER, password: env.password(WORST_SENDER), resource: `s${iteration}`, ca: env.ca });
    opened.push(sender);
    const collector = new Collector(receiver, 4096);
    const stanza = async (n: number) => {
      const id = `worst-${mode}-${iteration}-${n}`;
      const { xml } = worstStanza(receiver.jid, id);
      const got = collector.waitFor(`end-${id}'`, 60_000);
      await sleep(p.settleMs);
      await probe(); // starts a new window
      const c0 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
      const w0 = performance.now();
      await trickle(sender, xml, RECORD_BYTES);
      const w1 = performance.now();
      await got;
      const w2 = performance.now();
      await sleep(50); // the last writes' CPU
      const c1 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
      const reading = await probe();
      for (const s of opened) if (s.isClosed) throw new Error(`${s.jid}: stream closed during the max-size stanza${s.error ? ` (${s.error.message})` : ""}`);
      return { reading, cpu: cpuDelta(c0, c1), trickleMs: w1 - w0, deliveryMs: w2 - w1 };
    };
    const cold = stall("cold", (await stanza(0)).reading);
    const warm = await stanza(1);
    await Promise.all(opened.splice(0).map((s) => s.close()));
    const stanzaSample: Sample = {
      coldStallMs: cold.coldStallMs ?? Number.NaN,
      coldBusyMs: cold.coldBusyMs ?? Number.NaN,
      ...stall("stanza", warm.reading),
      stanzaMucmuxMs: fresh ? warm.cpu.mucmux * 1000 : Number.NaN,
      stanzaProsodyMs: warm.cpu.prosody * 1000,
      trickleMs: warm.trickleMs,
      deliveryMs: warm.deliveryMs,
      foreignCores: warm.cpu.foreignCores,
    };

    // (b) the login burst. Direct mode has no mucmux loop to probe; in quick mode it skips the burst (10–20 s:
    // Prosody hashes every PLAIN password itself, one login at a time) and gives the max-size stanza figures only.
    if (mode === "direct" && env.quick) {
      return { ...stanzaSample, ...stall("burst", undefined), burstMucmuxMsPerLogin: Number.NaN, burstProsodyMsPerLogin: Number.NaN, burstSeconds: Number.NaN, burstRefused: Number.NaN, burstFailed: Number.NaN };
    }
    await sleep(p.settleMs);
    await probe();
    const b0 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    const started = performance.now();
    // A login mucmux refuses for want of an upstream connection slot (upstream.connectsPerSecond) is counted,
    // not fatal: a real client retries later. So is a connection the server side reset or closed (a full listen
    // backlog: Prosody's is 128). Any other failure (e.g. a wrong password) ends the run.
    let refused = 0;
    let failed = 0;
    let firstFailure = "";
    const sessions: BenchSession[] = [];
    await mapLimit([...Array(p.burst).keys()], p.burst, async (i) => {
      try {
        const s = await login({ port: t.port, user: burstUser(i), password: env.password(burstUser(i)), resource: `b${iteration}`, ca: env.ca, timeoutMs: 90_000 });
        opened.push(s);
        sessions.push(s);
      } catch (e) {
        const why = (e as Error).message;
        if (/temporary-auth-failure/.test(why)) refused++;
        else if (/ECONNRESET|EPIPE|connection closed|no result after/.test(why)) {
          failed++;
          firstFailure ||= why;
        } else throw e;
      }
    });
    if (failed) env.log(`   ${failed} of ${p.burst} burst logins failed (${mode}); first: ${firstFailure.slice(0, 200)}`);
    const burstSeconds = (performance.now() - started) / 1000;
    const b1 = cpuSnapshot(t.prosodyPid, t.mucmux?.pid);
    const burstProbe = await probe();
    const db = cpuDelta(b0, b1);
    const closed = sessions.filter((s) => s.isClosed);
    if (closed.length) throw new Error(`${closed.length} burst sessions closed during the run (first: ${closed[0]?.jid})`);

    return {
      ...stanzaSample,
      ...stall("burst", burstProbe),
      burstMucmuxMsPerLogin: fresh ? (db.mucmux * 1000) / p.burst : Number.NaN,
      burstProsodyMsPerLogin: (db.prosody * 1000) / p.burst,
      burstSeconds,
      burstRefused: refused,
      burstFailed: failed,
      foreignCores: (warm.cpu.foreignCores * warm.cpu.seconds + db.foreignCores * db.seconds) / (warm.cpu.seconds + db.seconds),
    };
  } finally {
    await mapLimit(opened, 200, (s) => s.close(1000));
    await fresh?.stop();
  }
}
