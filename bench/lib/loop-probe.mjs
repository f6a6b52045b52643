// Event-loop stall probe, preloaded into a mucmux child by the benchmark only (`node --import THIS main.js`,
// bench/lib/mucmux-process.ts with { loopProbe: true }); mucmux's own code is unchanged. Plain JavaScript
// because the production build runs without tsx.
//
// Two views of the same loop, both inside the mucmux process:
// - perf_hooks.monitorEventLoopDelay at 1 ms resolution (mucmux's /metrics histogram samples at 10 ms and
//   keeps one maximum per second, too coarse for a 10 ms target): max, percentiles, sample count. A sample
//   is the time between two runs of a 1 ms libuv timer, so the stall is the sample minus 1 ms.
// - a 1 ms JavaScript interval that reads the main thread's run-queue wait from /proc/self/task/PID/schedstat
//   (one pread of ~1 µs) at every tick. The wait is exact (the kernel adds each wait when the thread gets a
//   CPU); the on-CPU column of that file is not used: for a running thread it is only brought up to date at
//   scheduler ticks (4 ms here). For the longest gap between two ticks it gives the time the thread waited
//   for a CPU (other work on a shared machine), and over all gaps the most "gap − wait": the stall without
//   preemption, i.e. mucmux's own work (hypervisor steal time cannot be told apart and counts as work).
//
// GET http://127.0.0.1:$MUCMUX_BENCH_PROBE_PORT/read returns the figures since the previous read as JSON
// (nanoseconds) and starts a new window. The server and timers are unref'd: they never keep mucmux alive.
import { Buffer } from "node:buffer";
import { openSync, readSync } from "node:fs";
import { createServer } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setInterval } from "node:timers";

const port = Number(process.env.MUCMUX_BENCH_PROBE_PORT);
if (!(Number.isInteger(port) && port > 0)) throw new Error("loop-probe: MUCMUX_BENCH_PROBE_PORT is not set");

const RESOLUTION_MS = 1;
const eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
eld.enable();

// Main thread: its TID is the PID.
const fd = openSync(`/proc/self/task/${process.pid}/schedstat`, "r");
const buf = Buffer.alloc(128);
/** Run-queue wait (ns) of the main thread so far (second field of schedstat). */
function waited() {
  const n = readSync(fd, buf, 0, buf.length, 0);
  return Number(buf.toString("latin1", 0, n).split(" ")[1] ?? 0);
}

let window = newWindow();
function newWindow() {
  return { since: process.hrtime.bigint(), ticks: 0, maxGap: 0, gapWait: 0, gapCpu: 0, maxBusy: 0, busyCpu: 0 };
}
/** CPU time (ns) of the whole process so far, all threads (getrusage: exact). */
function cpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}
let lastWait = waited();
let lastCpu = cpu();
let lastAt = process.hrtime.bigint();
const tick = setInterval(() => {
  const at = process.hrtime.bigint();
  const wait = waited();
  const used = cpu();
  const gap = Number(at - lastAt);
  const w = wait - lastWait;
  const c = used - lastCpu;
  window.ticks++;
  if (gap > window.maxGap) {
    window.maxGap = gap;
    window.gapWait = w;
    window.gapCpu = c;
  }
  if (gap - w > window.maxBusy) {
    window.maxBusy = gap - w;
    window.busyCpu = c;
  }
  lastAt = at;
  lastWait = wait;
  lastCpu = used;
}, RESOLUTION_MS);
tick.unref();

const server = createServer((req, res) => {
  if (req.url !== "/read") {
    res.writeHead(404).end();
    return;
  }
  const body = {
    resolutionNs: RESOLUTION_MS * 1e6,
    windowNs: Number(process.hrtime.bigint() - window.since),
    eld: eld.count > 0
      ? { count: eld.count, max: eld.max, mean: eld.mean, p50: eld.percentile(50), p99: eld.percentile(99), p999: eld.percentile(99.9) }
      : null,
    ticks: window.ticks,
    maxGap: window.maxGap,
    gapWait: window.gapWait,
    gapCpu: window.gapCpu,
    maxBusy: window.maxBusy,
    busyCpu: window.busyCpu,
  };
  eld.reset();
  window = newWindow();
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
});
server.listen(port, "127.0.0.1");
server.unref();
