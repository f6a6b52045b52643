// Failures (SPEC E4–E6) and the real process: upstream unreachable, leg dropped, handshake timeout,
// certificate reload without dropping sessions, SIGTERM drain, CLI errors; plus slixmpp through mucmux.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { xml } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { spawnMucmuxProcess, startMucmux, writeTestConfig } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { freePort, freePorts } from "../support/ports.js";
import { run } from "../support/proc.js";
import { TEST_TMP, testCertificate } from "../support/certs.js";
import { generateSelfSigned } from "../../src/net/tls/index.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SLIX = path.join(ROOT, "test", "clients", "slix_chat.py");
let prosody: ProsodyServer;

before(async () => { prosody = await startProsody({ muc: true }); });
after(async () => { await prosody?.stop(); });

const svc = (port: number) => `xmpps://127.0.0.1:${port}`;
const login = (port: number, user: string, resource: string) =>
  connectClient({ service: svc(port), domain: "localhost", username: user, password: `${user}pw`, resource });
const streamErrorOf = (c: TestClient) => c.errors.map((e) => (e as Error & { condition?: string }).condition ?? e.message);

test("SPEC E5: upstream unreachable → remote-connection-failed for a new client; /readyz says not ready", async () => {
  const mux = await startMucmux({ upstreamPort: await freePort() });
  try {
    const raw = await RawClient.connect(mux.directPort);
    raw.open();
    await raw.waitFor(/<mechanism>PLAIN/);
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0alicepw").toString("base64")}</auth>`);
    await raw.waitClosed(10_000);
    assert.match(raw.text, /<stream:error><remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    const ready = await fetch(`http://127.0.0.1:${mux.adminPort}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /upstream unreachable/);
  } finally {
    await mux.stop();
  }
});

test("SPEC E5: the upstream leg dropping closes the client stream with <reset/>", async () => {
  const own = await startProsody({ muc: false });
  const mux = await startMucmux({ upstreamPort: own.port });
  try {
    const raw = await RawClient.connect(mux.directPort);
    await raw.login("alice", "alicepw", "dropme");
    raw.text = "";
    await own.kill();
    await raw.waitClosed(10_000);
    assert.match(raw.text, /<stream:error><reset xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  } finally {
    await mux.stop();
    await own.stop();
  }
});

test("SPEC E4: a connection that does not authenticate within handshakeSeconds is closed", async () => {
  const mux = await startMucmux({ upstreamPort: prosody.port, extra: { limits: { handshakeSeconds: 1 } } });
  try {
    const raw = await RawClient.connect(mux.directPort);
    raw.open();
    await raw.waitClosed(5000);
    assert.match(raw.text, /<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  } finally {
    await mux.stop();
  }
});

function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? "");
      s.destroy();
    });
    s.once("error", reject);
  });
}

test("certificate files replaced in place (Kubernetes secret swap) are served to new connections; sessions stay up", async () => {
  const dir = mkdtempSync(path.join(TEST_TMP, "certswap-"));
  const base = testCertificate();
  copyFileSync(base.certFile, path.join(dir, "tls.crt"));
  copyFileSync(base.keyFile, path.join(dir, "tls.key"));
  const mux = await startMucmux({
    upstreamPort: prosody.port,
    extra: { tls: { cert: path.join(dir, "tls.crt"), key: path.join(dir, "tls.key"), reloadSeconds: 1 } },
  });
  const alice = await login(mux.directPort, "alice", "reload-a");
  const bob = await login(mux.directPort, "bob", "reload-b");
  try {
    const before = await peerFingerprint(mux.directPort);
    assert.equal(before, new X509Certificate(readFileSync(base.certFile)).fingerprint256);
    const next = generateSelfSigned({ names: ["localhost"] });
    writeFileSync(path.join(dir, "new.key"), next.key);
    writeFileSync(path.join(dir, "new.crt"), next.cert);
    renameSync(path.join(dir, "new.key"), path.join(dir, "tls.key"));
    renameSync(path.join(dir, "new.crt"), path.join(dir, "tls.crt"));
    const want = new X509Certificate(next.cert).fingerprint256;
    let got = before;
    for (let i = 0; i < 100 && got !== want; i++) {
      await new Promise((r) => setTimeout(r, 100));
      got = await peerFingerprint(mux.directPort);
    }
    assert.equal(got, want, "new connections get the new certificate");
    await alice.send(xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, "after reload")));
    await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "after reload");
    const metrics = await (await fetch(`http://127.0.0.1:${mux.adminPort}/metrics`)).text();
    assert.match(metrics, /mucmux_tls_certificate_reloads_total\{result="success"\} [1-9]/);
  } finally {
    await alice.stop();
    await bob.stop();
    await mux.stop();
  }
});

test("SPEC E6: SIGTERM closes clients with system-shutdown and the process exits 0 within 10 s", async () => {
  const [starttls, direct, admin] = await freePorts(3);
  const configFile = writeTestConfig({ upstreamPort: prosody.port, ports: { starttls: starttls!, direct: direct!, admin: admin! } });
  // A real process whose every log line is audited for secrets (test/support/log-audit.ts) when it stops.
  const mux = await spawnMucmuxProcess(configFile, direct!);
  try {
    const alice = await login(direct!, "alice", "sigterm");
    const sent = Date.now();
    const code = await mux.stop();
    assert.equal(code, 0, mux.output());
    assert.ok(Date.now() - sent < 10_000);
    for (let i = 0; i < 100 && alice.errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(streamErrorOf(alice), ["system-shutdown"]);
    await alice.stop();
  } finally {
    mux.kill();
  }
});

test("CLI: --help lists flags, --version prints it, an invalid config names the key and exits 2", async () => {
  const cli = (...args: string[]) => run(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "main.ts"), ...args], { cwd: ROOT, timeoutMs: 20_000 });
  const help = await cli("--help");
  for (const flag of ["--config", "--upstream-host", "--upstream-port", "--limits-max-stanza-bytes", "--admin-port", "--store-path"]) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  assert.match((await cli("--version")).stdout, /^mucmux \d+\.\d+\.\d+/);
  await assert.rejects(cli("--upstream-port", "notaport"), (err: Error) => /exit 2/.test(err.message) && /upstream\.port/.test(err.message));
  await assert.rejects(
    run(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "main.ts")], { cwd: ROOT, timeoutMs: 20_000, env: { ...process.env, MUCMUX_LIMITS_HANDSHAKE_SECONDS: "-1" } }),
    /limits\.handshakeSeconds/,
  );
});

test("slixmpp (Debian python3-slixmpp) logs in and chats through mucmux over STARTTLS and direct TLS", async () => {
  const mux = await startMucmux({ upstreamPort: prosody.port });
  const bob = await login(mux.directPort, "bob", "slixpeer");
  try {
    await bob.send(xml("presence"));
    for (const [mode, port, extra] of [["starttls", mux.starttlsPort, []], ["direct", mux.directPort, ["--direct-tls"]]] as const) {
      const reply = bob.waitFor((el) => el.name === "message" && el.getChildText("body") === `ping ${mode}`, 20_000)
        .then((m) => bob.send(xml("message", { to: m.attrs.from, type: "chat" }, xml("body", {}, `pong ${mode}`))));
      const { stdout } = await run("/usr/bin/python3", [SLIX, "--jid", `alice@localhost/slix-${mode}`, "--password", "alicepw",
        "--host", "127.0.0.1", "--port", String(port), "--to", bob.jid, "--body", `ping ${mode}`, "--expect", `pong ${mode}`,
        "--ca", testCertificate().certFile, ...extra], { timeoutMs: 30_000 });
      await reply;
      const events = stdout.trim().split("\n").map((l) => JSON.parse(l) as { event: string; from?: string; ok?: boolean });
      assert.ok(events.some((e) => e.event === "message" && e.from === bob.jid), stdout);
      assert.deepEqual(events.at(-1), { event: "done", ok: true });
    }
  } finally {
    await bob.stop();
    await mux.stop();
  }
});
