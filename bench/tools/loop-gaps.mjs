// Event-loop gaps of a mucmux child, for cpuprofile-gaps.ts: preloaded next to the bench's loop probe, it records
// every gap longer than 3 ms between two runs of a 1 ms timer (wall, main-thread on-CPU and run-queue wait from
// /proc/self/task/PID/schedstat; on-CPU is only brought up to date at scheduler ticks) and every GC pause, in one
// window of the loop probe's read-outs (MUCMUX_GAPS_WINDOW, default 5: worst-input's login burst, between its 4th
// and 5th probe read), and writes them at exit to $MUCMUX_GAPS_FILE.PID.json (hrtime µs, the clock of --cpu-prof).
// MUCMUX_GAPS_FILE=test/.tmp/gaps MUCMUX_BENCH_NODE_ARGS="--import ./bench/tools/loop-gaps.mjs --cpu-prof
//   --cpu-prof-interval=250 --cpu-prof-dir=test/.tmp/prof" npm run bench -- --quick --only=worst-input --pairs=1
import fs from "node:fs";
import http from "node:http";
import { PerformanceObserver, constants } from "node:perf_hooks";
import process from "node:process";
import { setInterval } from "node:timers";

const out = `${process.env.MUCMUX_GAPS_FILE ?? "test/.tmp/gaps"}.${process.pid}.json`;
const window = Number(process.env.MUCMUX_GAPS_WINDOW ?? 5);
const stat = `/proc/self/task/${process.pid}/schedstat`;
const read = () => {
  const [cpu = 0, wait = 0] = fs.readFileSync(stat, "utf8").split(" ").map(Number);
  return { cpu, wait };
};

let reads = 0; // the loop probe's read-outs so far (GET /read)
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, ...rest) {
  if (event === "request" && req?.url === "/read") reads++;
  return emit.call(this, event, req, ...rest);
};

const KIND = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};
const gcs = [];
new PerformanceObserver((list) => {
  if (reads !== window) return;
  for (const e of list.getEntries()) gcs.push({ kind: KIND[e.detail?.kind] ?? String(e.detail?.kind), ms: e.duration });
}).observe({ entryTypes: ["gc"] });

const gaps = [];
let prev = process.hrtime.bigint();
let prevStat = read();
const tick = setInterval(() => {
  const now = process.hrtime.bigint();
  const s = read();
  const wallMs = Number(now - prev) / 1e6;
  if (reads === window && wallMs > 3) {
    gaps.push({ start: Number(prev / 1000n), end: Number(now / 1000n), wallMs, cpuMs: (s.cpu - prevStat.cpu) / 1e6, waitMs: (s.wait - prevStat.wait) / 1e6 });
  }
  prev = now;
  prevStat = s;
}, 1);
tick.unref();

process.on("exit", () => fs.writeFileSync(out, JSON.stringify({ window, gaps, gcs })));
