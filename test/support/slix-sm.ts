// A real XEP-0198 client for tests: test/clients/slix_sm.py (Debian python3-slixmpp 1.8 and its xep_0198 plugin)
// as a child process, driven by JSON-line commands on its stdin; its JSON-line events are collected here in order.
// The script documents the protocol; the types below mirror it.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";

import { track, untrack, within } from "./proc.js";

export const SLIX_SM = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "clients", "slix_sm.py");
/** Debian's slixmpp is importable only by the system interpreter (the default `python3` may be a pyenv). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** The plugin's counters, carried by `status`, `acked`, `sent`, `cut`, `resumed`, `sm_failed`, `disconnected`. */
export interface SmCounters {
  /** Inbound stanzas counted since <enabled/> (what the client acks, and sends as h in <resume/>). */
  handled: number;
  /** Outbound stanzas counted since <enable/>. */
  seq: number;
  /** The server's last h. */
  last_ack: number;
  /** Outbound stanzas the server has not acked yet (the plugin's queue). */
  unacked: number;
  sm_id: string | null;
  enabled_in: boolean;
  enabled_out: boolean;
  connected: boolean;
}

export interface SlixEvent {
  event: string;
  [field: string]: unknown;
}

export type CountedEvent = SlixEvent & SmCounters;

export interface SlixMessage extends SlixEvent {
  event: "message";
  from: string;
  to: string;
  type: string;
  id: string | null;
  body: string;
  /** XEP-0203 stamp, or null. */
  delay: string | null;
}

/** The answer to an `iq` command. */
export interface SlixIq extends SlixEvent {
  event: "iq";
  id: string;
  type: "result" | "error";
  /** The error condition (type error), else null. */
  condition: string | null;
  xml: string;
}

export type SlixCommand =
  | { cmd: "send"; to: string; body: string; type?: "chat" | "groupchat" | "normal"; count?: number; id?: string }
  | { cmd: "request_ack" }
  | { cmd: "join"; room: string; nick: string; history?: number }
  /** An IQ carrying `payload` (raw XML of one element); answered by an `iq` event (see SlixIq). */
  | { cmd: "iq"; type?: "get" | "set"; to?: string; id?: string; payload: string }
  | { cmd: "cut"; mode?: "abort" | "rst" | "silent" }
  | { cmd: "release" }
  | { cmd: "reconnect" }
  | { cmd: "status" }
  | { cmd: "quit" };

export interface SlixSmOptions {
  /** Full or bare JID (slixmpp asks the server for a resource when bare). */
  jid: string;
  password: string;
  port: number;
  host?: string;
  /** Trust this CA file and require STARTTLS (or direct TLS with directTls); without it the stream is plaintext. */
  ca?: string;
  directTls?: boolean;
  /** The only SASL mechanism (default PLAIN; "any": slixmpp picks). */
  mech?: string;
  /** The plugin's ack window (an <r/> every N stanzas sent; default 5; 0: only on request_ack). */
  window?: number;
  /** Ask for resumption in <enable/> (default true). */
  resume?: boolean;
  /** Send initial presence on session start (default true). */
  initialPresence?: boolean;
  /** An event for every presence received (default false). */
  presences?: boolean;
  /** slixmpp's debug log (every stanza) into `stderr`. */
  debug?: boolean;
  /** What start waits for: "sm_enabled" (default), "session_start", or nothing. */
  ready?: "sm_enabled" | "session_start" | "none";
  /** Bound for the ready wait (default 15 s). */
  timeoutMs?: number;
}

const tail = (s: string, n: number) => s.split("\n").slice(-n).join("\n");

export class SlixSm {
  /** Every event the script printed, in order. */
  readonly events: SlixEvent[] = [];
  private err = "";
  private code: number | null | undefined;
  private iqs = 0;
  private readonly waiters = new Set<() => void>();
  private readonly gone: Promise<void>;

  constructor(private readonly child: ChildProcessByStdio<Writable, Readable, Readable>, readonly label: string) {
    const pid = child.pid ?? 0;
    if (pid) track(pid, `slix_sm ${label}`);
    this.gone = new Promise((resolve) => child.once("close", () => resolve()));
    child.once("exit", (code, sig) => {
      if (pid) untrack(pid); // never SIGKILL a recycled PID at exit
      this.code = code;
      if (sig) this.err += `\n(killed by ${sig})`;
      this.wake();
    });
    child.once("error", (e) => {
      this.err += `\nspawn error: ${e.message}`;
      this.code ??= null;
      this.wake();
    });
    child.stdin.on("error", () => undefined); // EPIPE after the script exited: the waiters report the exit
    let buf = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        try {
          this.events.push(JSON.parse(line) as SlixEvent);
        } catch {
          this.events.push({ event: "unparsed", line });
        }
      }
      this.wake();
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      this.err = (this.err + chunk).slice(-64_000);
    });
  }

  /** The script's stderr (last 64 kB): errors, and with `debug` every stanza. */
  get stderr(): string {
    return this.err;
  }

  /** True once the script has exited. */
  get exited(): boolean {
    return this.code !== undefined;
  }

  /** The index the next event will get: pass it as `since` to look only at what comes after now. */
  mark(): number {
    return this.events.length;
  }

  /** Writes one command line. */
  send(cmd: SlixCommand): void {
    if (this.exited) throw new Error(`slix_sm ${this.label}: ${cmd.cmd} after exit (${String(this.code)})\n${this.describe()}`);
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  /**
   * The first event from index `since` on (past or future) that matches; rejects after timeoutMs or when the
   * script exits first, with the last events and stderr lines.
   */
  waitFor<E extends SlixEvent = SlixEvent>(pred: (e: SlixEvent) => boolean, timeoutMs = 10_000, since = 0): Promise<E> {
    const find = () => {
      for (let i = since; i < this.events.length; i++) {
        const e = this.events[i] as SlixEvent;
        try {
          if (pred(e)) return e as E;
        } catch {
          /* a predicate that throws does not match */
        }
      }
      return undefined;
    };
    const now = find();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = find();
        if (e) return done(() => resolve(e));
        if (this.exited) done(() => reject(this.failure(`exited (${String(this.code)}) first`, pred)));
      };
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      const timer = setTimeout(() => done(() => reject(this.failure(`nothing matched within ${timeoutMs} ms`, pred))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `status` and resolves with the answer. */
  async status(timeoutMs = 5000): Promise<CountedEvent> {
    const from = this.mark();
    this.send({ cmd: "status" });
    return this.waitFor<CountedEvent>((e) => e.event === "status", timeoutMs, from);
  }

  /**
   * Sends an `iq` command and resolves with its answer (a result or an error: check `type`); rejects when the
   * script reports no answer or exits.
   */
  async iq(o: { type?: "get" | "set"; to?: string; id?: string; payload: string }, timeoutMs = 12_000): Promise<SlixIq> {
    const id = o.id ?? `slix-iq-${(++this.iqs).toString(36)}-${Date.now().toString(36)}`;
    const from = this.mark();
    this.send({ cmd: "iq", ...o, id });
    const e = await this.waitFor((x) => (x.event === "iq" && x.id === id) || (x.event === "error" && String(x.message).includes(id)), timeoutMs, from);
    if (e.event !== "iq") throw new Error(`slix_sm ${this.label}: iq ${id}: ${JSON.stringify(e)}\n${this.describe()}`);
    return e as SlixIq;
  }

  /** Message events (from index `since` on). */
  messages(since = 0): SlixMessage[] {
    return this.events.slice(since).filter((e): e is SlixMessage => e.event === "message");
  }

  /**
   * Ends the script, bounded: `quit` (a clean stream close), then SIGTERM after timeoutMs, then SIGKILL; resolves
   * with the exit code (null when killed by a signal). Idempotent.
   */
  async close(timeoutMs = 5000): Promise<number | null> {
    if (!this.exited) {
      try {
        this.child.stdin.end(`${JSON.stringify({ cmd: "quit" })}\n`);
      } catch {
        /* stdin already closed */
      }
      if (!(await within(this.gone, timeoutMs))) {
        this.child.kill("SIGTERM");
        if (!(await within(this.gone, 2000))) {
          this.child.kill("SIGKILL");
          await within(this.gone, 2000);
        }
      }
    }
    return this.code ?? null;
  }

  /** The last events and stderr lines, for assertion messages. */
  describe(events = 20): string {
    const last = this.events.slice(-events).map((e) => `  ${JSON.stringify(e).slice(0, 300)}`).join("\n");
    return `slix_sm ${this.label}: ${this.events.length} event(s)${this.events.length > events ? `, last ${events}` : ""}:\n` +
      `${last || "  (none)"}\nstderr:\n${tail(this.err.trimEnd(), 15) || "  (empty)"}`;
  }

  private failure(why: string, pred: (e: SlixEvent) => boolean): Error {
    return new Error(`slix_sm waitFor: ${why}; predicate ${pred.toString().slice(0, 200)}\n${this.describe()}`);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Spawns slix_sm.py and waits until it is ready (by default: stream management enabled). */
export async function startSlixSm(o: SlixSmOptions): Promise<SlixSm> {
  const args = [SLIX_SM, "--jid", o.jid, "--password", o.password, "--host", o.host ?? "127.0.0.1", "--port", String(o.port),
    "--mech", o.mech ?? "PLAIN"];
  if (o.ca) args.push("--ca", o.ca);
  if (o.directTls) args.push("--direct-tls");
  if (o.window !== undefined) args.push("--window", String(o.window));
  if (o.resume === false) args.push("--no-resume");
  if (o.initialPresence === false) args.push("--no-presence");
  if (o.presences) args.push("--presences");
  if (o.debug) args.push("--debug");
  const child = spawn(SYSTEM_PYTHON, args, { stdio: ["pipe", "pipe", "pipe"] });
  const c = new SlixSm(child, o.jid);
  const ready = o.ready ?? "sm_enabled";
  if (ready === "none") return c;
  try {
    const e = await c.waitFor((e) => e.event === ready || e.event === "error" || e.event === "sm_failed", o.timeoutMs ?? 15_000);
    if (e.event !== ready) throw new Error(`slix_sm ${o.jid}: ${e.event} before ${ready}: ${JSON.stringify(e)}\n${c.describe()}`);
    return c;
  } catch (e) {
    await c.close(1000);
    throw e;
  }
}
