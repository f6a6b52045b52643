// CPU time and resident memory read from /proc, for processes the benchmark does not run in-process
// (Prosody, a spawned mucmux) and for itself, so that every figure comes from the same source.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let ticks: number | undefined;

/** USER_HZ (sysconf CLK_TCK), the unit of utime/stime in /proc/PID/stat; 100 on every Linux we run on. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 5000 }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds (user + system, all threads, excluding waited-for children) of `pid` so far. */
export function cpuSeconds(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return (utime + stime) / clockTicks();
}

/** Resident set size of `pid` in KiB (VmRSS from /proc/PID/status). */
export function rssKiB(pid: number | "self"): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Busy CPU seconds of the whole machine (all cores) so far, from the aggregate line of /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is included in user)
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number) => v[i] ?? 0;
  return (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / clockTicks();
}

export function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  return [a, b, c];
}

/** A CPU snapshot of the processes under test, the benchmark itself and the machine. */
export interface CpuSnapshot {
  at: number;
  prosody: number;
  mucmux: number;
  bench: number;
  machine: number;
}

export function cpuSnapshot(prosodyPid: number, mucmuxPid: number | undefined): CpuSnapshot {
  return {
    at: performance.now(),
    prosody: cpuSeconds(prosodyPid),
    mucmux: mucmuxPid ? cpuSeconds(mucmuxPid) : 0,
    bench: cpuSeconds("self"),
    machine: machineBusySeconds(),
  };
}

export interface CpuDelta {
  seconds: number;
  prosody: number;
  mucmux: number;
  bench: number;
  /** Cores used by everything else on the machine during the window (other work sharing it: noise). */
  foreignCores: number;
}

export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): CpuDelta {
  const seconds = (b.at - a.at) / 1000;
  const prosody = b.prosody - a.prosody;
  const mucmux = b.mucmux - a.mucmux;
  const bench = b.bench - a.bench;
  const foreign = b.machine - a.machine - prosody - mucmux - bench;
  return { seconds, prosody, mucmux, bench, foreignCores: Math.max(0, foreign) / seconds };
}
