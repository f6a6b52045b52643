// Where a scenario's clients connect in each mode, and which processes' CPU counts.
import type { MucmuxProcess } from "./mucmux-process.js";
import type { BenchEnv, Mode } from "./types.js";

export interface Target {
  mode: Mode;
  port: number;
  prosodyPid: number;
  mucmux: MucmuxProcess | undefined;
}

export async function target(mode: Mode, env: BenchEnv, mucmux?: MucmuxProcess): Promise<Target> {
  const prosodyPid = env.prosody.pid;
  if (mode === "direct") {
    const port = env.prosody.directTlsPort;
    if (!port) throw new Error("Prosody has no direct TLS port (started with tls: false?)");
    return { mode, port, prosodyPid, mucmux: undefined };
  }
  const m = mucmux ?? (await env.sharedMucmux());
  return { mode, port: m.directPort, prosodyPid, mucmux: m };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `done` every 10 ms until it holds; false after timeoutMs. */
export async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

/** A positive number from the environment (a tuning knob), or the default; a bad value is refused. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`${name}=${raw}: expected a positive number`);
  return v;
}
