// Per-IP admission: concurrent-connection and accept-rate caps, refused at accept; another
// address is unaffected; failed SASL attempts throttled per IP (XEP-0205).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { IpGate } from "../../src/net/ip-gate.js";
import { startEnv } from "./harness.js";

/** Connects (direct TLS) from `localAddress`; resolves true when the handshake completes. */
function tryConnect(port: number, localAddress: string, keep: tls.TLSSocket[]): Promise<boolean> {
  return new Promise((resolve) => {
    const raw = net.connect({ host: "127.0.0.1", port, localAddress });
    raw.on("error", () => resolve(false));
    const s = tls.connect({ socket: raw, servername: "localhost" });
    s.once("secureConnect", () => { keep.push(s); resolve(true); });
    s.once("error", () => resolve(false));
    s.once("close", () => resolve(false));
  });
}

describe("connection caps per IP", () => {
  test("IpGate: concurrent cap, token bucket, release", () => {
    let now = 0;
    const g = new IpGate(2, 3, () => now);
    assert.equal(g.admit("a"), "ok");
    assert.equal(g.admit("a"), "ok");
    assert.equal(g.admit("a"), "too-many");
    assert.equal(g.admit("b"), "ok");
    g.release("a");
    assert.equal(g.admit("a"), "ok"); // 3rd token of a
    g.release("a");
    assert.equal(g.admit("a"), "too-fast");
    now += 1000;
    assert.equal(g.admit("a"), "ok");
    assert.equal(new IpGate(0, 0).enabled, false);
  });

  test("beyond limits.maxConnectionsPerIp connections are refused at accept; another IP is unaffected", async () => {
    const env = await startEnv({ limits: { maxConnectionsPerIp: 4 } }); // the canary holds one from 127.0.0.1
    const keep: tls.TLSSocket[] = [];
    try {
      const results: boolean[] = [];
      for (let i = 0; i < 5; i++) results.push(await tryConnect(env.mux.directPort, "127.0.0.1", keep));
      assert.deepEqual(results, [true, true, true, false, false]);
      assert.equal(await tryConnect(env.mux.directPort, "127.0.0.2", keep), true);
      keep[0]?.destroy();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await tryConnect(env.mux.directPort, "127.0.0.1", keep), true, "a slot is free again after a close");
      await env.canary.check();
    } finally {
      for (const s of keep) s.destroy();
      await env.stop();
    }
  });

  test("beyond limits.connectsPerIpPerSecond connections are refused at accept; another IP is unaffected", async () => {
    const env = await startEnv({ limits: { connectsPerIpPerSecond: 5 } });
    const keep: tls.TLSSocket[] = [];
    try {
      await new Promise((r) => setTimeout(r, 1100)); // the canary's login used a token
      const results = await Promise.all(Array.from({ length: 12 }, () => tryConnect(env.mux.directPort, "127.0.0.1", keep)));
      const ok = results.filter(Boolean).length;
      assert.ok(ok >= 5 && ok <= 6, `${ok} of 12 admitted`);
      assert.equal(await tryConnect(env.mux.directPort, "127.0.0.3", keep), true);
      await env.canary.check();
    } finally {
      for (const s of keep) s.destroy();
      await env.stop();
    }
  });
});

describe("failed SASL attempts are throttled per IP, not per account", () => {
  test("after limits.authFailuresPerIp failures an address gets temporary-auth-failure without the server being asked; another address logs in to the same account", async () => {
    const env = await startEnv({ limits: { authFailuresPerIp: 3, authFailureWindowSeconds: 60 } });
    try {
      const attempt = async (password: string, localAddress: string): Promise<string> => {
        const raw = net.connect({ host: "127.0.0.1", port: env.mux.directPort, localAddress });
        const s = tls.connect({ socket: raw, servername: "localhost" });
        await new Promise<void>((r, j) => { s.once("secureConnect", () => r()); s.once("error", j); });
        let text = "";
        s.on("data", (d: Buffer) => { text += d.toString("utf8"); });
        s.write("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
        const until = async (re: RegExp) => { const end = Date.now() + 3000; while (!re.test(text)) { if (Date.now() > end) throw new Error(text); await new Promise((r) => setTimeout(r, 5)); } };
        await until(/<mechanism>PLAIN/);
        s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0victim\0${password}`).toString("base64")}</auth>`);
        await until(/<success|<failure/);
        s.destroy();
        return /<success/.test(text) ? "success" : (/<failure[^>]*><([a-z-]+)/.exec(text)?.[1] ?? "?");
      };
      for (let i = 0; i < 3; i++) assert.equal(await attempt("wrong", "127.0.0.1"), "not-authorized");
      const n = env.upstream.connections.length;
      assert.equal(await attempt("wrong", "127.0.0.1"), "temporary-auth-failure");
      assert.equal(await attempt("right", "127.0.0.1"), "temporary-auth-failure");
      assert.equal(env.upstream.connections.length, n, "the server was not asked");
      assert.equal(await attempt("right", "127.0.0.4"), "success", "another address is unaffected");
      await env.canary.check();
    } finally {
      await env.stop();
    }
  });
});
