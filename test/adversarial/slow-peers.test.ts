// Slow peers (SPEC E4). A stanza-completion deadline (limits.stanzaSeconds) closes drippers of a
// never-finished stanza; a write-stall timeout (limits.writeStallSeconds) closes a client that never reads.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import type net from "node:net";
import path from "node:path";
import { RawClient } from "../support/raw-client.js";
import { FakeUpstream } from "../support/fake-upstream.js";
import { spawnMucmuxProcess, writeTestConfig } from "../support/mucmux.js";
import { freePorts } from "../support/ports.js";
import { Canary, legSocket, offender, rssOf, startEnv, upstreamSince, waitUntil, type Env } from "./harness.js";

/** Resolves on the socket's drain or close, or after `ms` (the loop re-checks), leaving no listener behind. */
function drainOrClose(socket: net.Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    socket.once("drain", done);
    socket.once("close", done);
  });
}

let env: Env;
before(async () => { env = await startEnv({ limits: { stanzaSeconds: 1, writeStallSeconds: 1 } }); });
after(async () => { await env?.stop(); });

describe("SPEC E4: slow peers", () => {
  test("50 connections dripping a never-finished stanza are closed by the stanza deadline; CPU stays low", async () => {
    const drippers = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(env.mux.directPort)));
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    const header = Buffer.from("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    let i = 0; // the header never completes within the test: 20 ms × its length > 2 s
    const timer = setInterval(() => {
      const b = header.subarray(i, i + 1);
      i++;
      for (const d of drippers) if (!d.closed) d.send(b);
    }, 20);
    try {
      await waitUntil(() => drippers.every((d) => d.closed), 4000, "all drippers closed");
    } finally {
      clearInterval(timer);
    }
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the 1 s deadline: ${drippers[0]?.text}`);
    for (const d of drippers) assert.match(d.text, /<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    const cpu = process.cpuUsage(cpu0);
    const share = (cpu.user + cpu.system) / 1000 / elapsed;
    assert.ok(share < 0.5, `CPU share ${share.toFixed(2)} while 50 peers drip`);
    await env.canary.check();
  });

  test("an authenticated session dripping one stanza forever is closed; nothing of it reaches upstream", async () => {
    const o = await offender(env);
    const stanza = Buffer.from("<message to='bob@localhost'><body>never ends");
    let i = 0;
    const timer = setInterval(() => { if (i < stanza.length) o.client.send(stanza.subarray(i, ++i)); }, 30);
    try {
      await o.client.waitClosed(3000);
    } finally {
      clearInterval(timer);
    }
    assert.match(o.client.text, /<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/><text[^>]*>stanza not completed in time/);
    assert.equal(upstreamSince(o).replace(/<\/stream:stream>\s*$/, ""), "");
    await env.canary.check();
  });

  test("steady traffic of complete stanzas is not affected by the stanza deadline", async () => {
    const o = await offender(env);
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 1600) {
      o.client.send(`<message to='bob@localhost' id='ok${n++}'><body>`);
      await new Promise((r) => setTimeout(r, 20));
      o.client.send("x</body></message>");
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitUntil(() => o.leg.received.length - o.markStanzas >= n, 2000, "all stanzas upstream");
    assert.equal(o.client.closed, false);
    o.client.close();
  });

  test("a client that never reads while upstream offers 500 MiB: mucmux RSS grows < 64 MiB; closed after the write-stall timeout", async (t) => {
    // mucmux as a real process, so that /proc shows its memory alone (not the test's or the fake upstream's).
    const STALL_S = 2;
    const OFFER = 500 * 2 ** 20;
    const upstream = await FakeUpstream.start();
    const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
    const configFile = writeTestConfig({ upstreamPort: upstream.port, ports: { starttls, direct, admin }, extra: { limits: { writeStallSeconds: STALL_S } } });
    const proc = await spawnMucmuxProcess(configFile, direct);
    const canary = await Canary.start({ mux: { directPort: direct }, upstream });
    const client = await RawClient.connect(direct);
    let sampler: NodeJS.Timeout | undefined;
    try {
      const jid = await client.login("hoarder", "hoarderpw", "evil");
      const leg = upstream.find("hoarder", "evil");
      assert.ok(leg);
      await new Promise((r) => setTimeout(r, 300));
      const rss0 = rssOf(proc.pid);
      let peak = rss0;
      sampler = setInterval(() => { peak = Math.max(peak, rssOf(proc.pid)); }, 20);
      client.socket.pause(); // never read again
      const socket = legSocket(leg);
      const stanza = `<message from='bob@localhost/x' to='${jid}' type='chat'><body>${"y".repeat(16_000)}</body></message>`;
      const chunk = Buffer.from(stanza.repeat(16));
      let offered = 0;
      const t0 = Date.now();
      // The fake upstream offers 500 MiB as fast as mucmux takes it, respecting its own socket's
      // backpressure (else it would buffer the 500 MiB in this process): mucmux stops reading the leg.
      while (offered < OFFER && !leg.closed && Date.now() - t0 < 20_000) {
        offered += chunk.length;
        if (!socket.write(chunk)) await drainOrClose(socket, 200);
      }
      await waitUntil(() => leg.closed, 10_000, "the session to be closed (upstream leg closed)");
      const closedAfter = Date.now() - t0;
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(proc.pid));
      const growth = (peak - rss0) / 2 ** 20;
      t.diagnostic(`mucmux RSS ${(rss0 / 2 ** 20).toFixed(0)} MiB, grew ${growth.toFixed(1)} MiB; upstream offered ${(offered / 2 ** 20).toFixed(1)} MiB; closed after ${closedAfter} ms`);
      assert.ok(growth < 64, `mucmux RSS grew ${growth.toFixed(1)} MiB while upstream offered ${(offered / 2 ** 20).toFixed(0)} MiB`);
      // Closed by the write-stall timeout: not before it, and not much after.
      assert.ok(closedAfter >= STALL_S * 1000 - 100 && closedAfter <= STALL_S * 1000 + 2500, `closed after ${closedAfter} ms (writeStallSeconds ${STALL_S})`);
      assert.ok(offered < OFFER, "backpressure: the 500 MiB were not all taken");
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      assert.match(metrics, /mucmux_stream_errors_total\{condition="policy-violation",origin="mucmux"\} 1\b/);
      await canary.check();
    } finally {
      clearInterval(sampler);
      canary.stop();
      client.close();
      assert.equal(await proc.stop(), 0, proc.output());
      await upstream.stop();
      rmSync(path.dirname(configFile), { recursive: true, force: true });
    }
  });
});

describe("SPEC E4: an upstream that stops reading", () => {
  test("the client is paused (bounded buffering); after the upstream resumes everything arrives in order", async () => {
    const o = await offender(env);
    o.leg.pauseReading();
    const body = "z".repeat(4000);
    const N = 4000; // ~16 MB: far beyond socket buffers and the high-water mark
    let sent = 0;
    const writer = (async () => {
      while (sent < N && !o.client.closed) {
        // Respect the client socket's own backpressure, as a real client would.
        if (!o.client.socket.write(`<message to='bob@localhost' id='m${sent}'><body>${body}</body></message>`)) {
          await new Promise((r) => o.client.socket.once("drain", r));
        }
        sent++;
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(sent < N, "mucmux kept reading the client although the upstream did not read");
    await env.canary.check();
    o.leg.resumeReading();
    await writer;
    await waitUntil(() => o.leg.received.length - o.markStanzas >= N, 20_000, "all stanzas upstream");
    const ids = o.leg.received.slice(o.markStanzas).map((e) => e.attrs.id);
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => `m${i}`));
    assert.equal(o.client.closed, false);
    o.client.close();
  });
});
