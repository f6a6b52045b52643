// Adversarial test harness (SPEC E, bad input): mucmux in-process in front of the recording fake upstream, a
// canary session that keeps exchanging pings during every test, and offenders whose punishment is
// checked against the global pass rule:
//   mucmux stays up, the canary sees no disconnect, the upstream receives nothing derived from the
//   offending input (asserted on the raw bytes the fake upstream recorded), and the offender gets a
//   stream error, the stream close and TCP close within 1 s.
import assert from "node:assert/strict";
import net from "node:net";
import type { Element } from "@xmpp/xml";
import { FakeUpstream, type UpstreamConnection } from "../support/fake-upstream.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import { RawClient } from "../support/raw-client.js";
import { StreamParser } from "../../src/xml/parser.js";
import { readFileSync } from "node:fs";
import { until } from "../support/wait.js";

export const NS_PING = "urn:xmpp:ping";

/** Resolves once `cond` holds (checked every 5 ms); rejects with `timed out waiting for <what>`. */
export function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return until(what, cond, timeoutMs, 5);
}

/**
 * A logged-in session pinging the server every `intervalMs` through mucmux; the fake upstream
 * answers. check() fails if the session was disconnected or a ping went unanswered for > 2 s.
 */
export class Canary {
  sent = 0;
  answered = 0;
  private paused = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastAnswer = Date.now();
  private conn: UpstreamConnection | undefined;
  private seen = 0;

  private constructor(readonly client: RawClient, private readonly upstream: FakeUpstream) {}

  static async start(env: { mux: Pick<TestMucmux, "directPort">; upstream: FakeUpstream }, intervalMs = 50): Promise<Canary> {
    const client = await RawClient.connect(env.mux.directPort);
    await client.login("canary", "canarypw", "canary");
    const c = new Canary(client, env.upstream);
    c.conn = env.upstream.find("canary", "canary");
    assert.ok(c.conn, "canary upstream leg");
    c.timer = setInterval(() => c.tick(), intervalMs);
    return c;
  }

  private tick(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    // The fake upstream answers the pings it received so far.
    for (; this.seen < conn.received.length; this.seen++) {
      const el = conn.received[this.seen] as Element;
      if (el.name === "iq" && el.getChild("ping", NS_PING)) conn.send(`<iq type='result' id='${el.attrs.id ?? ""}' to='${conn.jid ?? ""}'/>`);
    }
    const answers = this.client.text.match(/<iq [^>]*id='cp\d+'/g)?.length ?? 0;
    if (answers > this.answered) {
      this.answered = answers;
      this.lastAnswer = Date.now();
    }
    if (!this.paused && this.sent - this.answered < 20) {
      this.client.send(`<iq type='get' id='cp${this.sent++}' to='localhost'><ping xmlns='${NS_PING}'/></iq>`);
    }
    if (this.client.text.length > 1 << 20) this.client.text = this.client.text.slice(-4096);
  }

  /**
   * Stops sending pings until resume() and resolves once every ping sent is answered: from then on the
   * canary writes nothing to mucmux (for a test that counts the client bytes mucmux reads).
   */
  async pause(): Promise<void> {
    this.paused = true;
    await waitUntil(() => this.answered === this.sent, 3000, "the canary's pings in flight to be answered");
  }

  resume(): void {
    this.paused = false;
    this.lastAnswer = Date.now();
  }

  /** The canary is connected, saw no stream error, and pings keep being answered. */
  async check(): Promise<void> {
    const before = this.answered;
    await waitUntil(() => this.answered > before + 1, 3000, "canary pings to be answered");
    assert.equal(this.client.closed, false, "canary disconnected");
    assert.doesNotMatch(this.client.text, /<stream:error/, "canary got a stream error");
    assert.ok(Date.now() - this.lastAnswer < 2000, "canary ping stalled");
  }

  stop(): void {
    clearInterval(this.timer);
    this.client.close();
  }
}

export interface Env {
  upstream: FakeUpstream;
  mux: TestMucmux;
  canary: Canary;
  stop(): Promise<void>;
}

export async function startEnv(extra?: Record<string, Record<string, unknown>>, logLevel?: string): Promise<Env> {
  const upstream = await FakeUpstream.start();
  const mux = await startMucmux({ upstreamPort: upstream.port, ...(extra ? { extra } : {}), ...(logLevel ? { logLevel } : {}) });
  const canary = await Canary.start({ mux, upstream });
  return {
    upstream,
    mux,
    canary,
    stop: async () => {
      canary.stop();
      await mux.stop();
      await upstream.stop();
    },
  };
}

let offenders = 0;

/** A logged-in raw session whose upstream leg is known. */
export interface Offender {
  client: RawClient;
  leg: UpstreamConnection;
  jid: string;
  /** Bytes the upstream leg had received when the offence started. */
  mark: number;
  /** Stanzas the upstream leg had received when the offence started. */
  markStanzas: number;
}

export async function offender(env: Env, user = `mallory${++offenders}`): Promise<Offender> {
  const client = await RawClient.connect(env.mux.directPort);
  const jid = await client.login(user, `${user}pw`, "evil");
  const leg = env.upstream.find(user, "evil");
  assert.ok(leg, "offender upstream leg");
  // The session's own start-up traffic (what mucmux asks the server at a login, e.g. MUC service discovery)
  // settles first: mucmux writes it on the leg when the session binds, so it is ahead of this ping there.
  const settle = `settle-${offenders}`;
  client.send(`<iq type='get' id='${settle}' to='localhost'><ping xmlns='${NS_PING}'/></iq>`);
  await waitUntil(() => leg.received.some((el) => el.attrs.id === settle), 2000, "the offender's ping on its leg");
  client.text = "";
  return { client, leg, jid, mark: Buffer.concat(leg.bytes).length, markStanzas: leg.received.length };
}

/** Raw bytes the offender's upstream leg received since the mark. */
export function upstreamSince(o: Offender): string {
  return Buffer.concat(o.leg.bytes).subarray(o.mark).toString("utf8");
}

/**
 * Asserts the global pass rule for a rejected input: stream error `condition` (and `app` condition),
 * stream close and TCP close within 1 s, nothing after the mark reached upstream except the stream
 * close, and the canary is healthy.
 */
export async function assertPunished(env: Env, o: Offender, condition: string | RegExp, opts: { app?: string; t0?: number } = {}): Promise<void> {
  const t0 = opts.t0 ?? Date.now();
  await o.client.waitClosed(1500);
  const elapsed = Date.now() - t0;
  const cond = typeof condition === "string" ? condition : `(?:${condition.source})`;
  assert.match(o.client.text, new RegExp(`<stream:error><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`), `expected ${String(condition)}; got ${o.client.text.slice(-500)}`);
  if (opts.app) assert.match(o.client.text, new RegExp(`<${opts.app} xmlns='urn:xmpp:errors'/>`));
  assert.match(o.client.text, /<\/stream:stream>$/, "stream close after the error");
  assert.ok(elapsed <= 1000, `closed after ${elapsed} ms`);
  await waitUntil(() => o.leg.closed, 2000, "upstream leg to close");
  const up = upstreamSince(o).replace(/<\/stream:stream>\s*$/, "");
  assert.equal(up, "", `upstream received bytes derived from the offending input: ${up.slice(0, 300)}`);
  assert.equal(o.leg.received.length, o.markStanzas);
  await env.canary.check();
}

/** Splits `buf` into parts at the given offsets. */
export function cut(buf: Buffer, offsets: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const o of [...offsets, buf.length]) {
    out.push(buf.subarray(prev, o));
    prev = o;
  }
  return out.filter((b) => b.length > 0);
}

/** Sends each part as its own TLS record, letting the event loop turn in between. */
export async function sendParts(client: RawClient, parts: Buffer[], gapMs = 0): Promise<void> {
  for (const p of parts) {
    client.send(p);
    await new Promise((r) => (gapMs > 0 ? setTimeout(r, gapMs) : setImmediate(r)));
  }
}

/** Top-level elements of a stream text received by a client (which starts with a stream header). */
export function topLevel(streamText: string): { elements: Element[]; error: string | null } {
  const elements: Element[] = [];
  let error: string | null = null;
  const p = new StreamParser(
    { onStreamOpen: () => {}, onElement: (el) => void elements.push(el), onStreamClose: () => {}, onError: (e) => void (error = e.condition) },
    { maxStanzaBytes: 1 << 22, maxDepth: 64, maxAttributes: 100, maxChildren: 20_000 },
  );
  p.write(Buffer.from(streamText));
  return { elements, error };
}

/**
 * The socket of a fake upstream connection, for writing with backpressure (UpstreamConnection.send
 * ignores it, which would buffer an unbounded amount in the test process).
 */
export function legSocket(leg: UpstreamConnection): net.Socket {
  const socket = (leg as unknown as { socket: unknown }).socket;
  assert.ok(socket instanceof net.Socket, "UpstreamConnection keeps its socket in `socket`");
  return socket;
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}
