// `npm run bench [-- --quick] [-- --only=ID,ID] [-- --pairs=N]`: mucmux side by side with a direct connection
// (the performance targets: docs/benchmarks.md). Starts its own Prosody on loopback, runs every scenario direct and through mucmux in alternation
// (A B A B …), prints medians and per-pair comparisons, and writes the raw results to test/.tmp/bench-latest.json.
// Never part of `npm test`.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { testCertificate, TEST_TMP } from "../test/support/certs.js";
import { startProsody, type ProsodyServer } from "../test/support/prosody.js";
import { loadAverage } from "./lib/procfs.js";
import { prepareRuntime, ROOT, spawnMucmux, type MucmuxProcess, type Runtime } from "./lib/mucmux-process.js";
import { median, minMax } from "./lib/stats.js";
import { MODES, type BenchEnv, type Columns, type Figure, type Mode, type Sample, type Scenario, type SummaryEntry } from "./lib/types.js";
import { relayThroughput } from "./scenarios/relay-throughput.js";
import { relaySaturation } from "./scenarios/relay-saturation.js";
import { relaySm } from "./scenarios/relay-sm.js";
import { pingLatency } from "./scenarios/ping-latency.js";
import { idleMemory, IDLE_ACCOUNTS } from "./scenarios/idle-memory.js";
import { mucCopies, COPY_ACCOUNTS, COPY_SENDER } from "./scenarios/muc-copies.js";
import { mucFanout, FANOUT_ACCOUNT, FANOUT_SENDER } from "./scenarios/muc-fanout.js";
import { worstInput } from "./scenarios/worst-input.js";
import { mucHeavy } from "./scenarios/muc-heavy.js";
import { clusterHop, HOP_ACCOUNT } from "./scenarios/cluster-hop.js";
import { mergeReport, writeReport, REPORT_FILE } from "./lib/report.js";

const SCENARIOS: readonly Scenario[] = [relayThroughput, relaySaturation, relaySm, pingLatency, idleMemory, mucCopies, mucFanout, worstInput, mucHeavy, clusterHop];
const RESULT_FILE = path.join(TEST_TMP, "bench-latest.json");

interface Args { quick: boolean; only: string[] | undefined; pairs: number | undefined; runtime: Runtime; report: boolean; reportMerge: boolean; reportOnly: boolean; note: string }

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: undefined, pairs: undefined, runtime: "build", report: false, reportMerge: false, reportOnly: false, note: "" };
  for (const a of argv) {
    if (a === "--quick") args.quick = true;
    else if (a === "--tsx") args.runtime = "tsx";
    else if (a === "--report") args.report = true;
    else if (a === "--report-only") args.reportOnly = true;
    else if (a === "--report-merge") args.reportMerge = true;
    else if (a.startsWith("--note=")) args.note = a.slice(7);
    else if (a.startsWith("--only=")) args.only = a.slice(7).split(",").filter(Boolean);
    else if (a.startsWith("--pairs=")) args.pairs = Number(a.slice(8));
    else if (a === "--help" || a === "-h") {
      console.log("usage: npm run bench -- [--quick] [--only=" + SCENARIOS.map((s) => s.id).join(",") + "] [--pairs=N] [--tsx] [--report | --report-merge]\n" +
        "  --report: also regenerate docs/benchmarks.md from this run\n" +
        "  --report-merge: replace (or add) only this run's scenario sections in docs/benchmarks.md, each stamped with this\n" +
        "    run's date, commit and machine; the rest of the file (header, targets table, other sections) stays as it is\n" +
        "  --report-only: regenerate docs/benchmarks.md from the last raw results (after editing bench/lib/report.ts); runs nothing;\n" +
        "    with --report-merge, merge only their sections\n" +
        "  --note=TEXT: a sentence about this run for the report (e.g. what else ran on the machine)\n" +
        "  --tsx: run mucmux from src/ through tsx instead of a tsc build (faster start; memory reads high)\n" +
        "env: MUCMUX_BENCH_PING_RATE (default 500/s), MUCMUX_BENCH_IDLE_SESSIONS (default 1000, quick 500),\n" +
        "     MUCMUX_BENCH_WINDOW (messages in flight per pair, default 256),\n" +
        "     MUCMUX_BENCH_BURST (worst-input logins at once, default 1000),\n" +
        "     MUCMUX_BENCH_HEAVY_ACCOUNTS / _ROOMS / _RATE (muc-heavy: default 30 accounts × 3 sessions, 3 rooms, 15 msg/s),\n" +
        "     MUCMUX_BENCH_HOP_RATE (cluster-hop: iq pings per second, default 500),\n" +
        "     MUCMUX_BENCH_FANOUT_N / _RATE (muc-fanout: default 50 sessions, 100 msg/s), _BURST (messages per write, default 1),\n" +
        "     _SM=1 (the N sessions enable XEP-0198),\n" +
        "     MUCMUX_BENCH_NODE_ARGS (extra node flags for mucmux, e.g. \"--cpu-prof --cpu-prof-dir=test/.tmp/prof\")\n" +
        `results: ${path.relative(process.cwd(), RESULT_FILE)}`);
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${a} (try --help)`);
      process.exit(2);
    }
  }
  if (args.report && args.reportMerge) {
    console.error("bench: --report (the whole file) and --report-merge (this run's sections) exclude each other");
    process.exit(2);
  }
  if (args.pairs !== undefined && !(Number.isInteger(args.pairs) && args.pairs >= 1)) {
    console.error("bench: --pairs must be a positive integer");
    process.exit(2);
  }
  const unknown = args.only?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
  if (unknown.length) {
    console.error(`bench: unknown scenario ${unknown.join(", ")}; known: ${SCENARIOS.map((s) => s.id).join(", ")}`);
    process.exit(2);
  }
  return args;
}

export interface ScenarioResult {
  id: string;
  title: string;
  method: string;
  notes: readonly string[];
  pairs: number;
  columns?: Columns;
  figures: readonly Figure[];
  runs: { pair: number; mode: Mode; seconds: number; sample: Sample }[];
  summary: Record<string, SummaryEntry>;
  error?: string;
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

function fmt(v: number | undefined, digits = 1): string {
  if (v === undefined || Number.isNaN(v)) return "—";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  return v.toFixed(digits);
}

function summarize(r: ScenarioResult, pairs: number): void {
  for (const f of r.figures) {
    const of = (mode: Mode) => r.runs.filter((x) => x.mode === mode).map((x) => x.sample[f.key] ?? Number.NaN);
    const entry: SummaryEntry = { direct: median(of("direct")), mucmux: median(of("mucmux")) };
    const compare = f.compare ?? "none";
    if (!f.only && compare !== "none") {
      const perPair: number[] = [];
      const percents: number[] = [];
      for (let i = 0; i < pairs; i++) {
        const d = r.runs.find((x) => x.pair === i && x.mode === "direct")?.sample[f.key];
        const m = r.runs.find((x) => x.pair === i && x.mode === "mucmux")?.sample[f.key];
        if (d === undefined || m === undefined) continue;
        perPair.push(compare === "ratio" ? m / d : m - d);
        percents.push(((m - d) / d) * 100);
      }
      entry.compare = compare;
      entry.value = median(perPair);
      entry.range = minMax(perPair);
      if (compare === "delta-percent") {
        entry.percent = median(percents);
        entry.percentRange = minMax(percents);
      }
    }
    r.summary[f.key] = entry;
  }
}

function printTable(r: ScenarioResult): void {
  const c = r.columns ?? { direct: "direct", mucmux: "mucmux", compare: "mucmux vs direct" };
  const rows: string[][] = [["figure", "unit", c.direct, c.mucmux, `${c.compare} (median of pairs) [min..max]`, "target"]];
  for (const f of r.figures) {
    const s = r.summary[f.key];
    if (!s) continue;
    const digits = f.digits ?? 1;
    let cmp = "";
    if (s.compare && s.value !== undefined) {
      const [lo, hi] = s.range ?? [Number.NaN, Number.NaN];
      cmp = s.compare === "ratio"
        ? `×${fmt(s.value, 2)}  [${fmt(lo, 2)}..${fmt(hi, 2)}]`
        : `${s.value >= 0 ? "+" : ""}${fmt(s.value, digits)} ${f.unit}  [${fmt(lo, digits)}..${fmt(hi, digits)}]`;
      if (s.compare === "delta-percent" && s.percent !== undefined) {
        const [plo, phi] = s.percentRange ?? [Number.NaN, Number.NaN];
        cmp += `, ${s.percent >= 0 ? "+" : ""}${fmt(s.percent, 1)} %  [${fmt(plo, 1)}..${fmt(phi, 1)}]`;
      }
    }
    rows.push([f.label, f.unit, f.only === "mucmux" ? "—" : fmt(s.direct, digits), f.only === "direct" ? "—" : fmt(s.mucmux, digits), cmp, f.target ?? ""]);
  }
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? "").length))) ?? [];
  for (const [i, row] of rows.entries()) {
    console.log("  " + row.map((cell, c) => (c >= 2 && c <= 3 ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join("  ").trimEnd());
    if (i === 0) console.log("  " + widths.map((w) => "-".repeat(w)).join("  "));
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.reportOnly) {
    // Numbers that JSON cannot hold were written as null (NaN) or "Infinity"/"-Infinity": read them back.
    const raw = JSON.parse(fs.readFileSync(RESULT_FILE, "utf8"), (_k, v: unknown) =>
      v === null ? Number.NaN : v === "Infinity" ? Number.POSITIVE_INFINITY : v === "-Infinity" ? Number.NEGATIVE_INFINITY : v) as Parameters<typeof writeReport>[0];
    if (args.reportMerge) mergeReport(raw, SCENARIOS.map((sc) => sc.id));
    else writeReport(raw);
    console.log(`report: ${path.relative(process.cwd(), REPORT_FILE)}${args.reportMerge ? ` (${raw.scenarios.map((s) => s.id).join(", ")} merged)` : ""} ` +
      `from ${path.relative(process.cwd(), RESULT_FILE)}`);
    return 0;
  }
  const started = Date.now();
  const deadlineMs = (args.quick ? 6 : 45) * 60_000;
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${deadlineMs / 60_000} min; giving up (servers are killed on exit)`);
    process.exit(1);
  }, deadlineMs);
  watchdog.unref();
  const defaultPairs = args.quick ? 2 : 5; // quick: 2 pairs keep the whole run near 4 minutes
  const pairsOf = (sc: Scenario) => args.pairs ?? sc.pairs?.(args.quick) ?? defaultPairs;
  const scenarios = SCENARIOS.filter((s) => !args.only || args.only.includes(s.id));

  const cert = testCertificate();
  process.env.NODE_EXTRA_CA_CERTS = cert.certFile;
  const users: Record<string, string> = {};
  for (const u of ["bsend", "brecv", "bping", HOP_ACCOUNT, ...COPY_ACCOUNTS, COPY_SENDER, FANOUT_ACCOUNT, FANOUT_SENDER, ...Array.from({ length: IDLE_ACCOUNTS }, (_, i) => `idle${i}`)]) users[u] = `${u}-bench-pw`;

  const load0 = loadAverage();
  const meta = {
    date: new Date().toISOString(),
    quick: args.quick,
    pairs: args.pairs ?? defaultPairs,
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    commit: git(["rev-parse", "--short", "HEAD"]),
    dirtyTree: git(["status", "--porcelain", "--untracked-files=no"]) !== "",
    loadAvgStart: load0,
    loadAvgEnd: [0, 0, 0] as [number, number, number],
    seconds: 0,
    prosody: prosodyVersion(),
    mucmuxRuntime: args.runtime as string,
    note: args.note,
  };
  console.log(`mucmux bench (${args.quick ? "quick" : "full"}): ${meta.pairs} pairs per scenario unless a scenario sets fewer, ` +
    "modes alternate direct/mucmux (A B A B …)");
  console.log(`machine: ${meta.cpus} × ${meta.cpuModel}, ${meta.memTotalMiB} MiB, Node ${meta.node}, load average ${load0.join(" ")}` +
    ` — shared machine: wall-clock figures are noisy, CPU figures come from /proc per process`);
  console.log(`commit ${meta.commit}${meta.dirtyTree ? " (working tree has uncommitted changes)" : ""}; ${meta.prosody}`);

  let prosody: ProsodyServer | undefined;
  let shared: MucmuxProcess | undefined;
  let mucServer: Promise<{ prosody: ProsodyServer; mucmux: MucmuxProcess }> | undefined;
  const results: ScenarioResult[] = [];
  let failed = false;
  try {
    // Compile mucmux while Prosody starts; `prosody` is set as soon as it runs, so `finally` stops it either way.
    const starting = startProsody({ users, muc: true });
    starting.then((p) => void (prosody = p), () => {});
    const runtime = await prepareRuntime(args.runtime).catch(async (e: unknown) => {
      await starting.catch(() => {});
      throw e;
    });
    const server = await starting;
    meta.mucmuxRuntime = runtime;
    console.log(`mucmux runs as: ${runtime}\n`);
    const env: BenchEnv = {
      quick: args.quick,
      prosody: server,
      ca: cert.cert,
      password: (u) => users[u] ?? `${u}-bench-pw`,
      async sharedMucmux() {
        shared ??= await spawnMucmux(server.port);
        return shared;
      },
      freshMucmux: (opts) => spawnMucmux(server.port, opts),
      restartProsody: () => server.restart(),
      mucServer() {
        mucServer ??= startProsody({ users, muc: true, debugLog: true }).then(async (prosody) => {
          try {
            return { prosody, mucmux: await spawnMucmux(prosody.port) };
          } catch (e) {
            await prosody.stop();
            throw e;
          }
        });
        return mucServer;
      },
      log: (line) => console.log(line),
    };
    for (const sc of scenarios) {
      const pairs = pairsOf(sc);
      const r: ScenarioResult = { id: sc.id, title: sc.title, method: sc.describe(env), notes: sc.notes ?? [], pairs, figures: sc.figures, runs: [], summary: {} };
      if (sc.columns) r.columns = sc.columns;
      results.push(r);
      console.log(`== ${sc.title} [${sc.id}]\n   ${r.method}`);
      try {
        for (let pair = 0; pair < pairs; pair++) {
          for (const mode of MODES) {
            const t0 = performance.now();
            const sample = await sc.run(mode, env, pair);
            const seconds = (performance.now() - t0) / 1000;
            r.runs.push({ pair, mode, seconds, sample });
            const shown = sc.figures.filter((f) => !f.only || f.only === mode).slice(0, 4)
              .map((f) => `${f.key}=${fmt(sample[f.key], f.digits ?? 1)}`).join(" ");
            const label = sc.columns?.[mode] ?? mode;
            console.log(`   pair ${pair + 1}/${pairs} ${label.padEnd(6)} ${shown}  (${seconds.toFixed(1)} s)`);
          }
        }
      } catch (e) {
        failed = true;
        r.error = e instanceof Error ? (e.stack ?? e.message) : String(e);
        console.error(`   FAILED: ${r.error}`);
      }
      summarize(r, pairs);
      printTable(r);
      console.log("");
    }
  } catch (e) {
    failed = true;
    console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    for (const sc of scenarios) await sc.stop?.().catch((e: unknown) => console.error(`bench: stopping ${sc.id}: ${String(e)}`));
    await shared?.stop().catch((e: unknown) => console.error(`bench: stopping mucmux: ${String(e)}`));
    const muc = await mucServer?.catch(() => undefined);
    await muc?.mucmux.stop().catch((e: unknown) => console.error(`bench: stopping mucmux: ${String(e)}`));
    await muc?.prosody.stop().catch((e: unknown) => console.error(`bench: stopping Prosody: ${String(e)}`));
    await prosody?.stop().catch((e: unknown) => console.error(`bench: stopping Prosody: ${String(e)}`));
  }
  meta.loadAvgEnd = loadAverage();
  meta.seconds = Math.round((Date.now() - started) / 100) / 10;
  fs.mkdirSync(path.dirname(RESULT_FILE), { recursive: true });
  fs.writeFileSync(RESULT_FILE, JSON.stringify({ meta, scenarios: results }, (_k, v: unknown) =>
    typeof v === "number" && !Number.isFinite(v) ? (Number.isNaN(v) ? null : String(v)) : v, 2) + "\n");
  if (args.report) {
    writeReport({ meta, scenarios: results });
    console.log(`report: ${path.relative(process.cwd(), REPORT_FILE)}`);
  } else if (args.reportMerge) {
    mergeReport({ meta, scenarios: results }, SCENARIOS.map((sc) => sc.id));
    console.log(`report: ${results.map((r) => r.id).join(", ")} replaced in ${path.relative(process.cwd(), REPORT_FILE)}`);
  }
  console.log(`done in ${meta.seconds} s; load average now ${meta.loadAvgEnd.join(" ")}; raw results: ${path.relative(process.cwd(), RESULT_FILE)}`);
  return failed ? 1 : 0;
}

function prosodyVersion(): string {
  try {
    const out = execFileSync("dpkg-query", ["-W", "-f=${Version}", "prosody"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] });
    return `Prosody ${out.trim()}`;
  } catch {
    return "Prosody (version unknown)";
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
