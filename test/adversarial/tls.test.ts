// Issue 6 item 14 (part): protocol versions, AEAD-only suites, and STARTTLS command injection.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { startEnv, waitUntil, type Env } from "./harness.js";

let env: Env;
before(async () => { env = await startEnv(); });
after(async () => { await env?.stop(); });

function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ ok: true; protocol: string; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ...opts });
    s.once("secureConnect", () => {
      resolve({ ok: true, protocol: s.getProtocol() ?? "", cipher: s.getCipher().name });
      s.destroy();
    });
    s.once("error", (e) => resolve({ ok: false, error: e.message }));
  });
}

describe("item 14: TLS", () => {
  test("TLS 1.0 and 1.1 are refused; 1.2 and 1.3 are accepted", async () => {
    for (const v of ["TLSv1", "TLSv1.1"] as const) {
      const r = await handshake(env.mux.directPort, { minVersion: v, maxVersion: v, ciphers: "DEFAULT@SECLEVEL=0" });
      assert.equal(r.ok, false, `${v} accepted`);
    }
    for (const v of ["TLSv1.2", "TLSv1.3"] as const) {
      const r = await handshake(env.mux.directPort, { minVersion: v, maxVersion: v });
      assert.ok(r.ok, `${v} refused: ${r.ok ? "" : r.error}`);
      assert.equal(r.protocol, v);
    }
    await env.canary.check();
  });

  test("TLS 1.2: CBC and non-forward-secret suites are refused; the suites offered are AEAD", async () => {
    for (const cipher of ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256", "AES128-GCM-SHA256", "AES256-SHA"]) {
      const r = await handshake(env.mux.directPort, { maxVersion: "TLSv1.2", ciphers: cipher });
      assert.equal(r.ok, false, `${cipher} accepted`);
    }
    for (const cipher of ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]) {
      const r = await handshake(env.mux.directPort, { maxVersion: "TLSv1.2", ciphers: cipher });
      assert.ok(r.ok, `${cipher} refused`);
      assert.equal(r.cipher, cipher);
    }
    const dflt = await handshake(env.mux.directPort, { maxVersion: "TLSv1.2" });
    assert.ok(dflt.ok && /GCM|CHACHA20/.test(dflt.cipher));
  });

  test("a command pipelined after <starttls/> in the same segment never reaches upstream", async () => {
    const before = env.upstream.connections.length;
    const sock = net.connect(env.mux.starttlsPort, "127.0.0.1");
    let text = "";
    sock.on("data", (d: Buffer) => { text += d.toString("utf8"); });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.write("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await waitUntil(() => text.includes("</stream:features>"), 3000, "starttls features");
    const b64 = Buffer.from("\0injected\0injectedpw").toString("base64");
    sock.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64}</auth>` +
      "<message to='bob@localhost'><body>injected</body></message>");
    await waitUntil(() => text.includes("<proceed"), 3000, "proceed");
    sock.removeAllListeners("data");
    const secure = tls.connect({ socket: sock, servername: "localhost", rejectUnauthorized: false });
    let inner = "";
    secure.on("data", (d: Buffer) => { inner += d.toString("utf8"); });
    secure.on("error", () => {});
    await new Promise<void>((r) => secure.once("secureConnect", () => r()));
    secure.write("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await waitUntil(() => inner.includes("</stream:features>"), 3000, "post-TLS features");
    // Still unauthenticated: SASL is offered again, and mucmux never logged in upstream for it.
    assert.match(inner, /<mechanism>PLAIN<\/mechanism>/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(env.upstream.connections.length, before);
    assert.equal(env.upstream.find("injected", "anchor"), undefined);
    for (const c of env.upstream.connections) assert.doesNotMatch(c.rawText, /injected/);
    secure.destroy();
    await env.canary.check();
  });
});
