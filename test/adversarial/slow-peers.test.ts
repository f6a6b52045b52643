// Issue 6 item 9: slow peers. A stanza-completion deadline (limits.stanzaSeconds) closes drippers of a
// never-finished stanza; a write-stall timeout (limits.writeStallSeconds) closes a client that never reads.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { RawClient } from "../support/raw-client.js";
import { offender, startEnv, upstreamSince, waitUntil, type Env } from "./harness.js";

let env: Env;
before(async () => { env = await startEnv({ limits: { stanzaSeconds: 1, writeStallSeconds: 1 } }); });
after(async () => { await env?.stop(); });

describe("item 9: slow peers", () => {
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

  test("a client that never reads while upstream streams at it is closed after the write-stall timeout", async () => {
    const o = await offender(env);
    o.client.socket.pause(); // never read again
    const rss0 = process.memoryUsage().rss;
    const chunk = `<message from='bob@localhost/x' to='${o.jid}' type='chat'><body>${"y".repeat(16_000)}</body></message>`;
    let sent = 0;
    const t0 = Date.now();
    // Stream at it as fast as the leg accepts (the fake upstream writes; mucmux pauses reading the leg).
    while (!o.leg.closed && Date.now() - t0 < 8000 && sent < 64 << 20) {
      o.leg.send(chunk.repeat(8));
      sent += chunk.length * 8;
      await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => o.leg.closed, 8000, "the session to be closed (upstream leg closed)");
    const growth = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(growth < 64 + sent / 2 ** 20, `RSS growth ${growth.toFixed(0)} MiB`); // loose: the fake upstream's own buffers are in this process
    await env.canary.check();
  });
});

describe("item 9: an upstream that stops reading", () => {
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
