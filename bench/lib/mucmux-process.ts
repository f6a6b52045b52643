// mucmux as a child process (`node test/.tmp/bench-build-PID/dist/main.js --config FILE`, or src/main.ts via tsx),
// so its CPU time and resident memory can be read from /proc without the load generator mixed in.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { testCertificate } from "../../test/support/certs.js";
import { writeTestConfig } from "../../test/support/mucmux.js";
import { freePorts, waitForPort } from "../../test/support/ports.js";
import { pidAlive, run, track, trackDir, untrack, untrackDir, within } from "../../test/support/proc.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// One build per benchmark process (removed at exit), so that two benchmarks run at once do not rebuild each other's.
const BUILD_DIR = path.join(ROOT, "test", ".tmp", `bench-build-${process.pid}`);

/**
 * How mucmux runs. "build": the sources compiled by tsc (tsconfig.build.json) into test/.tmp/bench-build-PID/dist,
 * as `npm ci` builds dist/ for production. "tsx": src/main.ts through tsx, which wraps every function in
 * esbuild's __name() helper (keepNames); that puts each closure's properties in dictionary mode, a few hundred
 * bytes per closure, so per-session memory reads higher than in production.
 */
export type Runtime = "build" | "tsx";

let entry: string[] | undefined;

/** Prepares the runtime once per benchmark run (compiles for "build"); returns a description for the report. */
export async function prepareRuntime(runtime: Runtime): Promise<string> {
  if (runtime === "tsx") {
    entry = ["--import", "tsx", path.join(ROOT, "src", "main.ts")];
    return "src/main.ts via tsx (closures wrapped by esbuild's __name: memory reads high)";
  }
  fs.rmSync(BUILD_DIR, { recursive: true, force: true });
  trackDir(BUILD_DIR);
  const out = path.join(BUILD_DIR, "dist");
  try {
    await run(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", out],
      { cwd: ROOT, timeoutMs: 180_000 });
  } catch (e) {
    throw new Error(`cannot compile mucmux for the benchmark (run with --tsx to use the sources as they are): ${(e as Error).message}`);
  }
  // cli.ts reads ../package.json next to its dist directory ("type": "module" comes from it too);
  // packages still resolve from the checkout's node_modules, an ancestor directory.
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(BUILD_DIR, "package.json"));
  entry = [path.join(out, "main.js")];
  return "tsc build of src/ (tsconfig.build.json), as in production";
}

export interface MucmuxProcess {
  readonly pid: number;
  readonly directPort: number;
  readonly starttlsPort: number;
  readonly adminPort: number;
  /** Prometheus text from /metrics. */
  metrics(): Promise<string>;
  /** Event-loop figures since the previous call (spawned with { loopProbe: true }; otherwise rejects). */
  loopProbe(): Promise<LoopProbeReading>;
  /** SIGTERM (drain), SIGKILL after the drain deadline; removes its config directory. Idempotent. */
  stop(): Promise<void>;
}

/** What bench/lib/loop-probe.mjs reports for one window (nanoseconds). */
export interface LoopProbeReading {
  resolutionNs: number;
  windowNs: number;
  /** perf_hooks.monitorEventLoopDelay at 1 ms resolution; null when it took no sample. */
  eld: { count: number; max: number; mean: number; p50: number; p99: number; p999: number } | null;
  /** 1 ms JS interval: ticks, the longest gap between two ticks and the main thread's run-queue wait in it. */
  ticks: number;
  maxGap: number;
  gapWait: number;
  /** CPU time of the whole process (all threads, getrusage) during that gap. */
  gapCpu: number;
  /** The largest (gap − run-queue wait in it) over all gaps: a stall without the time spent waiting for a CPU. */
  maxBusy: number;
  /** CPU time of the whole process during that gap. */
  busyCpu: number;
}

export interface SpawnOptions {
  logLevel?: string;
  /** Preload bench/lib/loop-probe.mjs (1 ms event-loop delay monitor with an HTTP read-out); bench only. */
  loopProbe?: boolean;
  /** Config sections merged over the generated ones (e.g. `store.url` and `cluster` for a replica of a cluster). */
  extra?: Record<string, Record<string, unknown>>;
}

const LOOP_PROBE = path.join(ROOT, "bench", "lib", "loop-probe.mjs");

export async function spawnMucmux(upstreamPort: number, opts: SpawnOptions = {}): Promise<MucmuxProcess> {
  const [starttls = 0, direct = 0, admin = 0, probePort = 0] = await freePorts(opts.loopProbe ? 4 : 3);
  const configFile = writeTestConfig({
    upstreamPort,
    logLevel: opts.logLevel ?? "warn",
    ports: { starttls, direct, admin },
    ...(opts.extra ? { extra: opts.extra } : {}),
  });
  const dir = path.dirname(configFile);
  trackDir(dir); // removed on exit or ^C even if stop() never runs
  const logFile = path.join(dir, "mucmux.log");
  const fd = fs.openSync(logFile, "a");
  // MUCMUX_BENCH_NODE_ARGS: extra node flags for the mucmux process, e.g. "--cpu-prof --cpu-prof-dir=test/.tmp/prof".
  const nodeArgs = (process.env.MUCMUX_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
  if (!entry) throw new Error("spawnMucmux: prepareRuntime() first");
  const probeArgs = opts.loopProbe ? ["--import", LOOP_PROBE] : [];
  const child = spawn(process.execPath, [...nodeArgs, ...probeArgs, ...entry, "--config", configFile], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: testCertificate().certFile,
      ...(opts.loopProbe ? { MUCMUX_BENCH_PROBE_PORT: String(probePort) } : {}),
    },
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  const pid = child.pid ?? 0;
  let exited: string | undefined;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.once("exit", (code, sig) => {
    exited = `mucmux exited (${code ?? sig})`;
    untrack(pid);
  });
  child.once("error", (e) => void (exited = `mucmux failed to spawn: ${e.message}`));
  if (pid) track(pid, "mucmux (bench)");
  const log = () => {
    try {
      return fs.readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
    } catch {
      return "(no log)";
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (pid && pidAlive(pid)) {
      child.kill("SIGTERM");
      if (!(await within(gone, 12_000))) {
        child.kill("SIGKILL");
        await within(gone, 5000);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
  };
  try {
    const failed = () => exited;
    // tsx compiles the sources at start; a loaded machine may need a while.
    await waitForPort(direct, { timeoutMs: 60_000, failed });
    await waitForPort(admin, { timeoutMs: 10_000, failed });
    if (opts.loopProbe) await waitForPort(probePort, { timeoutMs: 10_000, failed });
  } catch (e) {
    const tail = log(); // before stop(), which removes the directory with the log
    await stop();
    throw new Error(`${(e as Error).message}\n--- mucmux log:\n${tail}`);
  }
  return {
    pid,
    directPort: direct,
    starttlsPort: starttls,
    adminPort: admin,
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5000) });
      return res.text();
    },
    async loopProbe() {
      if (!opts.loopProbe) throw new Error("mucmux was spawned without { loopProbe: true }");
      const res = await fetch(`http://127.0.0.1:${probePort}/read`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`loop probe: HTTP ${res.status}`);
      return (await res.json()) as LoopProbeReading;
    },
    stop,
  };
}

/** Sum of the samples of a Prometheus metric whose labels contain every `key="value"` in `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    if (!want.every((w) => rest.includes(w))) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
