// SPEC E8: a burst of TLS handshakes through real listeners (mucmux in this process, loopback, real TLS) starts
// at most limits.tlsHandshakesPerTurn per turn of the event loop, and every connection still completes: direct TLS,
// STARTTLS, and direct TLS behind a PROXY header. Turns are counted by a setImmediate ticker in the same loop, and
// handshakes by the app's pacer (each one counted where its TLS socket is made), not by timing. Then a burst of
// whole logins, with a login budget small enough that reads must wait: every session is bound.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { startEnv, waitUntil, type Env } from "./harness.js";
import { metric } from "../support/mucmux.js";
import { RawClient } from "../support/raw-client.js";
import type { HandshakePacer } from "../../src/net/handshake-pacer.js";

const PER_TURN = 4;
const LB = "127.0.0.2"; // a trusted load balancer; the canary connects from 127.0.0.1
const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/** Handshakes started between two consecutive turns (the ticker runs first in its check phase, every turn). */
function watchTurns(pacer: HandshakePacer): () => { max: number; turns: number; total: number } {
  const first = pacer.started;
  let last = first, max = 0, turns = 0, running = true;
  const tick = () => {
    const n = pacer.started - last;
    last = pacer.started;
    max = Math.max(max, n);
    if (n > 0) turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return () => { running = false; return { max, turns, total: last - first }; };
}

/** Reads a socket's text until `re` matches; rejects on close or after 20 s. */
function expect(s: net.Socket, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => done(new Error(`no ${re} in time; got ${text.slice(-200)}`)), 20_000);
    const onData = (d: Buffer) => { text += d.toString("utf8"); if (re.test(text)) done(); };
    const onClose = () => done(new Error(`closed before ${re}; got ${text.slice(-200)}`));
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("close", onClose);
      if (err) reject(err); else resolve();
    };
    s.on("data", onData);
    s.once("close", onClose);
  });
}

/** TLS over a connected socket, then a stream: resolves once the post-TLS features arrive. */
async function tlsStream(raw: net.Socket): Promise<tls.TLSSocket> {
  const s = tls.connect({ socket: raw, servername: "localhost" });
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => { s.once("secureConnect", resolve); s.once("close", () => reject(new Error("closed during TLS"))); });
  const features = expect(s, /<mechanisms /);
  s.write(HEADER);
  await features;
  return s;
}

async function tcp(port: number, localAddress?: string): Promise<net.Socket> {
  const raw = net.connect({ host: "127.0.0.1", port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
  raw.on("error", () => {});
  await new Promise<void>((resolve, reject) => { raw.once("connect", resolve); raw.once("error", reject); });
  return raw;
}

/** A plaintext stream up to <proceed/>: the next bytes are the client's ClientHello. */
async function upToProceed(port: number): Promise<net.Socket> {
  const raw = await tcp(port);
  const offered = expect(raw, /<starttls /);
  raw.write(HEADER);
  await offered;
  const proceed = expect(raw, /<proceed /);
  raw.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await proceed;
  return raw;
}

async function viaBalancer(port: number, i: number): Promise<net.Socket> {
  const raw = await tcp(port, LB);
  raw.write(`PROXY TCP4 198.51.100.${1 + (i % 200)} 192.0.2.10 ${40000 + i} 5223\r\n`);
  return raw;
}

describe("SPEC E8: a burst of TLS handshakes starts at most limits.tlsHandshakesPerTurn per event-loop turn", () => {
  let env: Env;
  const open: net.Socket[] = [];
  before(async () => {
    env = await startEnv({ limits: { tlsHandshakesPerTurn: PER_TURN, loginMsPerTurn: 1 }, proxyProtocol: { trusted: [LB] } }, "info");
  });
  after(async () => {
    for (const s of open) s.destroy();
    await env.stop();
  });

  /**
   * `n` connections made ready for TLS by `prepare` (and accepted by mucmux), then all their ClientHellos written
   * in one turn: mucmux reads them in its next turn, as it would a burst from the network.
   */
  const burst = async (what: "direct" | "starttls", n: number, prepare: (i: number) => Promise<net.Socket>) => {
    const app = env.mux.app;
    const pacedBefore = await metric(env.mux.adminPort, "mucmux_tls_handshakes_paced_total", `mode="${what}",outcome="started"`);
    const linksBefore = app.links.size;
    const raws = await Promise.all(Array.from({ length: n }, (_, i) => prepare(i)));
    open.push(...raws);
    await waitUntil(() => app.links.size >= linksBefore + n, 5000, "mucmux to accept every connection");
    const stop = watchTurns(app.handshakes);
    const sockets = await Promise.all(raws.map((raw) => tlsStream(raw)));
    open.push(...sockets);
    const seen = stop();
    assert.equal(sockets.length, n, "every connection completed TLS and got its stream features");
    assert.ok(seen.total >= n, `${seen.total} handshakes started for ${n} connections`);
    assert.ok(seen.max <= PER_TURN, `${seen.max} handshakes started in one turn (limit ${PER_TURN})`);
    assert.ok(seen.turns >= Math.ceil(n / PER_TURN), `spread over ${seen.turns} turns`);
    const paced = await metric(env.mux.adminPort, "mucmux_tls_handshakes_paced_total", `mode="${what}",outcome="started"`);
    assert.ok(paced - pacedBefore >= n - 2 * PER_TURN, `${paced - pacedBefore} of ${n} handshakes waited for a later turn (mucmux_tls_handshakes_paced_total)`);
    assert.equal(app.handshakes.queued, 0);
  };

  test("200 direct TLS connections at once", async () => {
    await burst("direct", 200, () => tcp(env.mux.directPort));
    await env.canary.check();
  });

  test("100 STARTTLS upgrades at once", async () => {
    await burst("starttls", 100, () => upToProceed(env.mux.starttlsPort));
    await env.canary.check();
  });

  test("100 direct TLS connections behind a PROXY header at once", async () => {
    await burst("direct", 100, (i) => viaBalancer(env.mux.directPort, i));
    await env.canary.check();
  });

  test("connections that go away while they wait leave the queue without a handshake; the others complete", async () => {
    const app = env.mux.app;
    const pacer = app.handshakes;
    const closedBefore = await metric(env.mux.adminPort, "mucmux_tls_handshakes_paced_total", 'mode="direct",outcome="closed"');
    const startedBefore = pacer.started;
    const linksBefore = app.links.size;
    const raws = await Promise.all(Array.from({ length: 60 }, () => tcp(env.mux.directPort)));
    open.push(...raws);
    await waitUntil(() => app.links.size >= linksBefore + 60, 5000, "mucmux to accept every connection");
    const sockets = raws.map((raw) => {
      const s = tls.connect({ socket: raw, servername: "localhost" });
      s.on("error", () => {});
      return s;
    });
    const [stay, leave] = [sockets.slice(0, 40), sockets.slice(40)];
    // As soon as mucmux has queued the burst (its next turn), the last 20 clients hang up.
    const deadline = Date.now() + 5000;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pacer.queued >= 40) resolve();
        else if (Date.now() > deadline) reject(new Error(`the burst was never queued (${pacer.queued} waiting)`));
        else setImmediate(check);
      };
      setImmediate(check);
    });
    for (const s of leave) s.destroy();
    const done = await Promise.allSettled(stay.map((s) => new Promise<void>((resolve, reject) => {
      s.once("secureConnect", resolve);
      s.once("close", () => reject(new Error("closed")));
    })));
    open.push(...sockets);
    assert.deepEqual(done.filter((r) => r.status === "rejected"), [], "the clients that stayed completed TLS");
    await waitUntil(() => pacer.queued === 0, 5000, "an empty queue");
    const closed = await metric(env.mux.adminPort, "mucmux_tls_handshakes_paced_total", 'mode="direct",outcome="closed"');
    assert.ok(closed - closedBefore >= 10, `${closed - closedBefore} of the 20 left the queue without a handshake`);
    assert.ok(pacer.started - startedBefore <= 50, `${pacer.started - startedBefore} handshakes started for 40 clients that stayed`);
    await env.canary.check();
  });

  test("100 whole logins at once (TLS, PLAIN, bind): every session is bound, some of their reads waited for a later turn", async () => {
    const heldBefore = await metric(env.mux.adminPort, "mucmux_login_reads_held_total");
    const clients = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const c = await RawClient.connect(env.mux.directPort);
      open.push(c.socket);
      return { c, jid: await c.login(`burst${i}`, `pw${i}`, `r${i}`) };
    }));
    assert.deepEqual(clients.map(({ jid }) => jid), clients.map((_, i) => `burst${i}@localhost/r${i}`));
    const held = await metric(env.mux.adminPort, "mucmux_login_reads_held_total");
    assert.ok(held > heldBefore, "login reads waited (mucmux_login_reads_held_total)");
    await env.canary.check();
  });
});
