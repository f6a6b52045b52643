// Child-process helpers for the test servers: bounded command runs, PID liveness, and a last-resort
// cleanup that SIGKILLs every server PID still registered when the test process exits or is signalled.
import { execFile } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { poll } from "./wait.js";

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command with a timeout; rejects with its output when it fails. */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, killSignal: "SIGKILL", cwd: opts.cwd, env: opts.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const how = err.killed ? `killed after ${timeout} ms` : `exit ${String(err.code ?? err.signal)}`;
      reject(new Error(`${cmd} ${args.join(" ")}: ${how}\n${stdout}${stderr}`.trimEnd()));
    });
  });
}

export async function commandExists(cmd: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${cmd}`], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** True while `pid` exists and is not a zombie (orphans are reaped by PID 1, not always promptly). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

/**
 * Waits until `pid` is gone; returns false on timeout. Works for non-children, whose exit this process
 * gets no event for: it checks kill(pid, 0) every 50 ms.
 */
export function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  return poll(() => !pidAlive(pid), timeoutMs, 50);
}

/** Resolves true when `p` settles within ms, else false (no timer left behind). */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

const live = new Map<number, string>();
const dirs = new Map<string, string | undefined>(); // dir -> pid file of a server that daemonizes itself
let hooked = false;
const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Synchronous last resort (exit/signal): SIGKILL tracked servers, wait up to 2 s for them, remove their dirs. */
function killAll(): void {
  const pids = new Set(live.keys());
  for (const pidFile of dirs.values()) {
    const n = pidFile && existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim() || 0) : 0;
    if (n > 0) pids.add(n);
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; i < 40 && [...pids].some(pidAlive); i++) sleepSync(50);
  live.clear();
  if (process.env.MUCMUX_TEST_KEEP !== "1") {
    for (const d of dirs.keys()) {
      try {
        rmSync(d, { recursive: true, force: true, maxRetries: 3 });
      } catch (e) {
        process.stderr.write(`test cleanup: cannot remove ${d}: ${String(e)}\n`);
      }
    }
  }
  dirs.clear();
}

/** Registers a server PID for SIGKILL if this process exits (or gets SIGINT/SIGTERM/SIGHUP) without stopping it. */
export function track(pid: number, what: string): void {
  live.set(pid, what);
  hook();
}

export function untrack(pid: number): void {
  live.delete(pid);
}

/** Registers a server directory for removal on exit; `pidFile` names a PID to SIGKILL first (daemonizing servers). */
export function trackDir(dir: string, pidFile?: string): void {
  dirs.set(dir, pidFile);
  hook();
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once("exit", killAll);
  // Not `once`: once the last listener is gone a second SIGTERM (the test runner forwards one) would kill
  // this process in the middle of the cleanup. Listeners are removed only afterwards, then the signal re-raised.
  const onSignal = (sig: NodeJS.Signals) => {
    killAll();
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    process.kill(process.pid, sig);
  };
  for (const sig of SIGNALS) process.on(sig, onSignal);
}
