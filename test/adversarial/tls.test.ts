// TLS (SPEC A1): protocol versions, AEAD-only suites, STARTTLS command injection, SNI for unknown
// domains (host-unknown), and certificate files replaced where only the poll sees it.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { Canary, startEnv, waitUntil, type Env } from "./harness.js";
import { FakeUpstream } from "../support/fake-upstream.js";
import { startMucmux } from "../support/mucmux.js";
import { TEST_TMP, testCertificate } from "../support/certs.js";
import { configSchema } from "../../src/config/schema.js";
import { generateSelfSigned } from "../../src/net/tls/index.js";
import { watchForChanges } from "../../src/net/tls/watch.js";

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

describe("SPEC A1: TLS", () => {
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

const HEADER = (to: string) => `<?xml version='1.0'?><stream:stream to='${to}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`;

/** A direct TLS client sending `servername` as SNI (none when undefined), not verifying the certificate. */
function tlsClient(port: number, servername: string | undefined): Promise<{ socket: tls.TLSSocket; text: () => string; closed: () => boolean; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...(servername ? { servername } : {}) });
    let text = "";
    let closed = false;
    socket.on("data", (d: Buffer) => { text += d.toString("utf8"); });
    socket.on("close", () => { closed = true; });
    socket.once("secureConnect", () => resolve({ socket, text: () => text, closed: () => closed, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 ?? "" }));
    socket.once("error", reject);
  });
}

/** The global pass rule for a refused stream header: error, stream close and TCP close within 1 s; nothing upstream. */
async function assertHostUnknown(env: Env, c: Awaited<ReturnType<typeof tlsClient>>, t0: number, upstreamBefore: number, reason: RegExp): Promise<void> {
  await waitUntil(c.closed, 1500, "TCP close");
  const elapsed = Date.now() - t0;
  assert.ok(elapsed <= 1000, `closed after ${elapsed} ms`);
  assert.match(c.text(), /<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/><text [^>]*>([^<]*)<\/text><\/stream:error><\/stream:stream>$/);
  assert.match(c.text(), reason);
  assert.doesNotMatch(c.text(), /<stream:features/, "nothing offered to a refused stream");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(env.upstream.connections.length, upstreamBefore, "no upstream connection for a refused stream");
  await env.canary.check();
}

describe("SNI for a domain mucmux does not serve → host-unknown", () => {
  // XEP-0368 §3: a client sets SNI to the JID's domain, i.e. the stream's 'to'. The handshake completes
  // with the one (default) certificate; the stream header then decides.
  test("direct TLS: unknown SNI with a served 'to', and with the same unknown 'to'", async () => {
    const served = new X509Certificate(readFileSync(testCertificate().certFile)).fingerprint256;
    for (const to of ["localhost", "unknown.example"]) {
      const before = env.upstream.connections.length;
      const c = await tlsClient(env.mux.directPort, "unknown.example");
      assert.equal(c.fingerprint, served, "the handshake uses the default certificate");
      const t0 = Date.now();
      c.socket.write(HEADER(to));
      await assertHostUnknown(env, c, t0, before, to === "localhost" ? /TLS server name \(SNI\)/ : /does not serve that domain/);
    }
  });

  test("STARTTLS: an unknown SNI on the upgraded stream is refused although the plaintext 'to' was served", async () => {
    const before = env.upstream.connections.length;
    const sock = net.connect(env.mux.starttlsPort, "127.0.0.1");
    let plain = "";
    sock.on("data", (d: Buffer) => { plain += d.toString("utf8"); });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.write(HEADER("localhost"));
    await waitUntil(() => plain.includes("</stream:features>"), 3000, "starttls features");
    sock.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await waitUntil(() => plain.includes("<proceed"), 3000, "proceed");
    sock.removeAllListeners("data");
    const secure = tls.connect({ socket: sock, servername: "unknown.example", rejectUnauthorized: false });
    let text = "";
    let closed = false;
    secure.on("data", (d: Buffer) => { text += d.toString("utf8"); });
    secure.on("close", () => { closed = true; });
    secure.on("error", () => {});
    await new Promise<void>((r) => secure.once("secureConnect", () => r()));
    const t0 = Date.now();
    secure.write(HEADER("localhost"));
    await assertHostUnknown(env, { socket: secure, text: () => text, closed: () => closed, fingerprint: "" }, t0, before, /TLS server name \(SNI\)/);
  });

  test("two served domains: SNI naming the other one → host-unknown; matching SNI, a trailing dot, upper case and no SNI work", async () => {
    const upstream = await FakeUpstream.start();
    const mux = await startMucmux({ upstreamPort: upstream.port, domains: ["localhost", "example.test"] });
    const canary = await Canary.start({ mux, upstream });
    const two: Env = { upstream, mux, canary, stop: async () => {} };
    try {
      const before = upstream.connections.length;
      const c = await tlsClient(mux.directPort, "localhost");
      const t0 = Date.now();
      c.socket.write(HEADER("example.test"));
      await assertHostUnknown(two, c, t0, before, /'to' is not the TLS server name/);
      for (const [sni, to] of [["example.test", "example.test"], ["EXAMPLE.test.", "example.test"], [undefined, "example.test"], [undefined, "localhost"]] as const) {
        const ok = await tlsClient(mux.directPort, sni);
        ok.socket.write(HEADER(to));
        await waitUntil(() => ok.text().includes("</stream:features>"), 3000, `features for SNI ${sni ?? "(none)"} / to ${to}`);
        assert.match(ok.text(), /<mechanism>PLAIN<\/mechanism>/);
        assert.match(ok.text(), new RegExp(`from='${to}'`));
        ok.socket.destroy();
      }
      await canary.check();
    } finally {
      canary.stop();
      await mux.stop();
      await upstream.stop();
    }
  });
});

describe("replaced certificate files take effect for new handshakes within 60 s; open sessions continue", () => {
  test("the default poll interval (tls.reloadSeconds) is at most 60 s", () => {
    const reload = configSchema.parse({ domains: ["example.test"] }).tls.reloadSeconds;
    assert.ok(reload > 0 && reload <= 60, `tls.reloadSeconds defaults to ${reload}`);
  });

  test("files replaced behind a symlink, which the directory watch cannot see, are served within the poll interval", async () => {
    // certbot-style layout: the configured paths are symlinks in live/ to files in archive/. mucmux
    // watches live/ (the configured files' directory); rewriting archive/ changes no entry of live/,
    // so only the poll (tls.reloadSeconds) can notice.
    const dir = mkdtempSync(path.join(TEST_TMP, "tls-poll-"));
    const live = path.join(dir, "live");
    const archive = path.join(dir, "archive");
    mkdirSync(live);
    mkdirSync(archive);
    const base = testCertificate();
    copyFileSync(base.certFile, path.join(archive, "cert.pem"));
    copyFileSync(base.keyFile, path.join(archive, "key.pem"));
    symlinkSync(path.join(archive, "cert.pem"), path.join(live, "cert.pem"));
    symlinkSync(path.join(archive, "key.pem"), path.join(live, "key.pem"));
    const RELOAD_SECONDS = 2;
    const upstream = await FakeUpstream.start();
    const mux = await startMucmux({
      upstreamPort: upstream.port,
      extra: { tls: { cert: path.join(live, "cert.pem"), key: path.join(live, "key.pem"), reloadSeconds: RELOAD_SECONDS } },
    });
    const canary = await Canary.start({ mux, upstream });
    // The premise: a watch like mucmux's on live/ (polling off) sees nothing of the replacement.
    let watchEvents = 0;
    const watcher = watchForChanges({
      files: [path.join(live, "cert.pem"), path.join(live, "key.pem")], pollMs: 3_600_000, debounceMs: 50, useFsWatch: true,
      onChange: () => void watchEvents++, onWatchError: () => {},
    });
    try {
      const fingerprint = async () => {
        const c = await tlsClient(mux.directPort, "localhost");
        c.socket.destroy();
        return c.fingerprint;
      };
      assert.equal(await fingerprint(), new X509Certificate(readFileSync(base.certFile)).fingerprint256);
      const next = generateSelfSigned({ names: ["localhost"] });
      const want = new X509Certificate(next.cert).fingerprint256;
      writeFileSync(path.join(archive, "key.pem.new"), next.key);
      writeFileSync(path.join(archive, "cert.pem.new"), next.cert);
      const t0 = Date.now();
      renameSync(path.join(archive, "key.pem.new"), path.join(archive, "key.pem"));
      renameSync(path.join(archive, "cert.pem.new"), path.join(archive, "cert.pem"));
      let got = "";
      while (got !== want && Date.now() - t0 < RELOAD_SECONDS * 1000 + 3000) {
        await new Promise((r) => setTimeout(r, 100));
        got = await fingerprint();
      }
      const took = Date.now() - t0;
      assert.equal(got, want, `new handshakes still get the old certificate after ${took} ms (poll every ${RELOAD_SECONDS} s)`);
      assert.equal(watchEvents, 0, "premise: the directory watch saw the replacement, so this did not test the poll");
      // The session opened with the old certificate continues; a new one logs in with the new certificate.
      await canary.check();
      const fresh = await tlsClient(mux.directPort, "localhost");
      fresh.socket.write(HEADER("localhost"));
      await waitUntil(() => fresh.text().includes("</stream:features>"), 3000, "features after the reload");
      fresh.socket.destroy();
      assert.match(await (await fetch(`http://127.0.0.1:${mux.adminPort}/metrics`)).text(), /mucmux_tls_certificate_reloads_total\{result="success"\} 1\b/);
    } finally {
      watcher.close();
      canary.stop();
      await mux.stop();
      await upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
