// SPEC E5: faults around mucmux, against real Prosody 0.12 and mucmux's own process.
//   - the server killed (SIGKILL): every session gets a stream error within 2 s;
//   - the server stopped (SIGTERM): sessions get its system-shutdown; logins during the outage fail fast;
//     after the restart, sessions and anchors come back without ever exceeding upstream.connectsPerSecond
//     (counted at a TCP relay in front of the server); /healthz stays 200 throughout;
//   - a client's TCP reset in the middle of a stanza: nothing of it reaches the server (recording upstream),
//     the canary session is undisturbed;
//   - the store made read-only: registration changes get a clear IQ error, the proxy stays up, and
//     everything works again once the store is writable;
//   - a damaged store file: mucmux refuses to start (exit 1) with a clear message.
// The server cases run against ejabberd 23.01 too (SIGTERM, SIGKILL, logins during the outage).
// (50 SIGKILLs of mucmux while it queues: faults-kill.test.ts; SIGTERM under load: drain-load.test.ts.)
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { once } from "node:events";
import { spawn } from "node:child_process";
import { closeSync, openSync, statSync, writeSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { xml, type Element } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { startEjabberd, type EjabberdServer } from "../support/ejabberd.js";
import { startMucmux, writeTestConfig, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { freePort } from "../support/ports.js";
import { pidAlive, waitForExit } from "../support/proc.js";
import { makeReadOnly } from "../support/readonly.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { startEnv, waitUntil, type Env } from "../adversarial/harness.js";
import { join } from "./muc-support.js";
import { getRegistration, formField, metric, OFFLINE, roomKept, submit, until } from "./muc-offline-support.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const status = async (port: number, p: string) => {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${p}`);
    return { code: r.status, text: await r.text() };
  } catch (e) {
    return { code: 0, text: String(e) };
  }
};

/**
 * A TCP relay in front of the server that records when each connection was accepted (the server's view
 * of mucmux's connect rate, independent of mucmux). While the server is down it does not listen either,
 * so connects are refused as they would be by the server's own port.
 */
class CountingRelay {
  readonly accepted: number[] = [];
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private constructor(readonly port: number, private readonly target: number) {}

  static async start(target: number): Promise<CountingRelay> {
    const r = new CountingRelay(await freePort(), target);
    await r.listen();
    return r;
  }

  async listen(): Promise<void> {
    const server = net.createServer((client) => {
      this.accepted.push(performance.now());
      const up = net.connect({ host: "127.0.0.1", port: this.target });
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => { client.destroy(); up.destroy(); });
      }
      client.pipe(up);
      up.pipe(client);
      client.on("close", () => up.destroy());
      up.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  /** Stop listening (connects are refused); open connections end with the server's. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await this.close();
  }
}

/** Logs in over direct TLS with raw bytes (exact stream errors, no client library in between). */
async function rawLogin(port: number, user: string, resource: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, `${user}pw`, resource);
  return c;
}

describe("SPEC E5: the server fails under mucmux (Prosody 0.12)", () => {
  const USERS = Array.from({ length: 10 }, (_, i) => `fu${i}`);
  const RATE = 4;
  const BURST = 4;
  let prosody: ProsodyServer;
  let relay: CountingRelay;
  let mux: TestMucmux;
  const health: number[] = [];
  let healthTimer: NodeJS.Timeout | undefined;

  before(async () => {
    prosody = await startProsody({ muc: true, users: { ...Object.fromEntries(USERS.map((u) => [u, `${u}pw`])), alice: "alicepw" } });
    relay = await CountingRelay.start(prosody.port);
    mux = await startMucmux({
      upstreamPort: relay.port,
      extra: { upstream: { connectsPerSecond: RATE, connectBurst: BURST, connectWaitSeconds: 10 }, muc: { lingerSeconds: 600 } },
    });
    // mucmux stays up: /healthz answers 200 every 100 ms, whatever the server does.
    healthTimer = setInterval(() => void status(mux.adminPort, "/healthz").then((s) => void health.push(s.code)), 100);
  });
  after(async () => {
    clearInterval(healthTimer);
    await mux?.stop();
    await relay?.stop();
    await prosody?.stop();
  });

  test("SIGKILL of the server: every session gets a stream error within 2 s; mucmux stays up", async () => {
    const clients = await Promise.all(["alice", "fu0", "fu1"].map((u) => rawLogin(mux.directPort, u, "kill")));
    for (const c of clients) c.text = "";
    const t0 = Date.now();
    await prosody.kill();
    await relay.close();
    await Promise.all(clients.map((c) => c.waitClosed(2000 - (Date.now() - t0))));
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 2000, `closed after ${elapsed} ms`);
    for (const c of clients) {
      assert.match(c.text, /<stream:error><reset xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
      assert.match(c.text, /<\/stream:stream>$/);
    }
    assert.equal((await status(mux.adminPort, "/healthz")).code, 200);
    await prosody.restart();
    await relay.listen();
  });

  test("SIGTERM of the server: system-shutdown relayed; logins fail fast while it is down; recovery respects the connect rate cap", { timeout: 90_000 }, async () => {
    const room = `faults-${Date.now().toString(36)}@conference.localhost`;
    // Ten accounts, each with a session in the room: ten session legs and ten anchors upstream.
    const sessions: TestClient[] = [];
    const raws: RawClient[] = [];
    for (const u of USERS) {
      const c = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: u, password: `${u}pw`, resource: "f", timeoutMs: 20_000 });
      sessions.push(c);
      await join(c, room, u);
    }
    assert.equal(await metric(mux.adminPort, "mucmux_anchors_open"), USERS.length);
    const connectFailures = async () => await metric(mux.adminPort, "mucmux_upstream_connect_failures_total", 'reason="network"') +
      await metric(mux.adminPort, "mucmux_upstream_connect_failures_total", 'reason="protocol"');
    const failuresBefore = await connectFailures();
    try {
      const pid = prosody.pid;
      process.kill(pid, "SIGTERM");
      // SPEC E5: the server's own system-shutdown reaches every session.
      await until("every session closed", () => sessions.every((c) => c.errors.length > 0), 10_000);
      for (const c of sessions) assert.deepEqual(c.errors.map((e) => (e as Error & { condition?: string }).condition), ["system-shutdown"]);
      assert.ok(await waitForExit(pid, 10_000), "prosody stopped");
      await relay.close();
      assert.equal(pidAlive(pid), false);

      // Logins while the server is down fail at once with remote-connection-failed, not after a timeout.
      for (let i = 0; i < 3; i++) await loginFailsFast(mux.directPort);
      // /readyz follows within its probe's 2 s cache.
      let ready = await status(mux.adminPort, "/readyz");
      await until("/readyz to say 503", async () => (ready = await status(mux.adminPort, "/readyz")).code === 503, 4000, 100).catch(() => undefined);
      assert.equal(ready.code, 503);
      assert.match(ready.text, /upstream unreachable/);
      // The anchors keep trying (and failing) meanwhile: the server comes back once there have been as many
      // failed reconnects as anchors (refused connections, counted; the three logins above are counted too).
      await until("every anchor's failed reconnect", async () => (await connectFailures()) >= failuresBefore + 3 + USERS.length, 20_000, 100);

      // The server comes back: anchors reconnect by themselves and every client logs in again at once.
      const from = relay.accepted.length;
      await prosody.restart();
      await relay.listen();
      // Raw clients: no client-side timeout (xmpp.js gives SASL 2 s) cuts a login's wait for a slot short.
      const again = await Promise.all(USERS.map(async (u) => {
        for (;;) {
          const raw = await RawClient.connect(mux.directPort);
          raw.open();
          await raw.waitFor(/<mechanism>PLAIN/);
          raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${u}\0${u}pw`).toString("base64")}</auth>`);
          const m = await raw.waitFor(/<success|<failure/, 15_000);
          if (m[0] === "<success") {
            raw.text = "";
            raw.open();
            await raw.waitFor(/<\/stream:features>/);
            raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>g</resource></bind></iq>");
            await raw.waitFor(/<jid>/);
            return raw;
          }
          assert.match(raw.text, /<temporary-auth-failure\/>/, "a login without a slot in time is told to retry");
          raw.close();
        }
      }));
      raws.push(...again);
      await until("every anchor back", async () => (await metric(mux.adminPort, "mucmux_anchors_open")) === USERS.length, 30_000);
      // Back in the room: each join is answered (subject), and a message reaches the others.
      for (const [i, c] of again.entries()) {
        c.send(`<presence to='${room}/${USERS[i] ?? ""}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
        await c.waitFor(/<subject/, 10_000);
      }
      again[0]?.send(`<message to='${room}' type='groupchat'><body>we are back</body></message>`);
      for (const c of again.slice(1)) await c.waitFor(/<body>we are back<\/body>/, 10_000);

      // The server's view: never more than BURST + RATE × t connections in any span of t seconds.
      const t = relay.accepted.slice(from);
      assert.ok(t.length >= 2 * USERS.length, `${t.length} connections after the restart`);
      for (let i = 0; i < t.length; i++) {
        for (let j = i; j < t.length; j++) {
          const span = ((t[j] as number) - (t[i] as number)) / 1000;
          assert.ok(j - i + 1 <= BURST + RATE * (span + 0.05), `${j - i + 1} connections within ${span.toFixed(3)} s`);
        }
      }
      const waited = await metric(mux.adminPort, "mucmux_upstream_connects_limited_total", 'kind="login",outcome="waited"') +
        await metric(mux.adminPort, "mucmux_upstream_connects_limited_total", 'kind="anchor",outcome="waited"');
      assert.ok(waited > 0, "the cap held connects back");
      assert.ok(health.length > 20 && health.every((c) => c === 200), `/healthz: ${[...new Set(health)].join(",")}`);
    } finally {
      await Promise.allSettled(sessions.map((c) => c.stop()));
      for (const r of raws) r.close();
    }
  });
});

describe("SPEC E5: the server fails under mucmux (ejabberd 23.01)", () => {
  let ej: EjabberdServer;
  let mux: TestMucmux;
  before(async () => {
    ej = await startEjabberd({ muc: false });
    mux = await startMucmux({ upstreamPort: ej.port });
  });
  after(async () => {
    await mux?.stop();
    await ej?.stop();
  });

  test("SIGTERM: system-shutdown relayed, logins fail fast meanwhile; SIGKILL after a restart: a stream error within 2 s", { timeout: 90_000 }, async () => {
    const a = await rawLogin(mux.directPort, "alice", "ejterm");
    a.text = "";
    process.kill(ej.pid, "SIGTERM");
    await a.waitClosed(10_000);
    assert.match(a.text, /<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    assert.ok(await waitForExit(ej.pid, 30_000), "ejabberd stopped");
    await loginFailsFast(mux.directPort);

    await ej.restart();
    const b = await rawLogin(mux.directPort, "bob", "ejkill");
    b.text = "";
    const t1 = Date.now();
    await ej.kill();
    await b.waitClosed(2000 - (Date.now() - t1));
    assert.ok(Date.now() - t1 < 2000, `closed after ${Date.now() - t1} ms`);
    assert.match(b.text, /<stream:error><reset xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    assert.equal((await status(mux.adminPort, "/healthz")).code, 200);
    await ej.restart();
  });
});

describe("a client's TCP reset in the middle of a stanza (recording upstream)", () => {
  let env: Env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stop(); });

  let n = 0;
  for (const [name, size] of [["a small stanza", 0], ["a 100 KiB stanza being time-sliced", 100 << 10]] as const) {
    test(`${name}: nothing of it is forwarded; the canary is undisturbed`, async () => {
      // TLS over a TCP socket of our own, so that the TCP connection can be reset (RST) under it.
      const tcp = net.connect({ host: "127.0.0.1", port: env.mux.directPort });
      await once(tcp, "connect");
      const s = tls.connect({ socket: tcp, servername: "localhost" });
      await once(s, "secureConnect");
      let text = "";
      s.on("data", (d: Buffer) => { text += d.toString(); });
      s.on("error", () => {});
      const waitText = (re: RegExp) => waitUntil(() => re.test(text), 5000, String(re));
      const open = () => s.write("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
      const user = `resetter${++n}`;
      open();
      await waitText(/<mechanism>PLAIN/);
      s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}pw`).toString("base64")}</auth>`);
      await waitText(/<success/);
      open();
      await waitText(/<stream:features>.*<\/stream:features>/s);
      s.write("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>rst</resource></bind></iq>");
      await waitText(/<jid>/);
      const leg = env.upstream.find(user, "rst");
      assert.ok(leg, "the session's upstream leg");
      // A complete stanza first: it does arrive (the path works).
      s.write(`<message to='bob@localhost' type='chat' id='whole'><body>complete</body></message>`);
      await waitUntil(() => leg.received.some((el) => el.attrs.id === "whole"), 2000, "the complete stanza upstream");
      const mark = Buffer.concat(leg.bytes).length;
      const stanzas = leg.received.length;
      // The reset must come while mucmux is in the middle of the stanza: once it has read every byte of it
      // (client bytes it read, on /metrics; the canary writes nothing meanwhile).
      const bytesIn = () => metric(env.mux.adminPort, "mucmux_bytes_total", 'direction="in",side="client"');
      await env.canary.pause();
      const torn = `<message to='bob@localhost' type='chat' id='torn'><body>${"y".repeat(size)}never`;
      const before = await bytesIn();
      s.write(torn);
      await until("mucmux to have read the torn stanza", async () => (await bytesIn()) >= before + Buffer.byteLength(torn), 5000, 5);
      env.canary.resume();
      tcp.resetAndDestroy();
      await waitUntil(() => leg.closed, 2000, "the session's upstream leg to close");
      const after = Buffer.concat(leg.bytes).subarray(mark).toString("utf8").replace(/<\/stream:stream>\s*$/, "");
      assert.equal(after, "", `upstream received: ${after.slice(0, 200)}`);
      assert.equal(leg.received.length, stanzas);
      await env.canary.check();
    });
  }
});

describe("the store becomes read-only at runtime (Prosody 0.12)", () => {
  let prosody: ProsodyServer;
  before(async () => { prosody = await startProsody({ muc: true }); });
  after(async () => { await prosody?.stop(); });

  test("registration changes get a clear IQ error, the proxy stays up, and all works again once writable", async () => {
    const mux = await startMucmux({ upstreamPort: prosody.port });
    const file = path.join(path.dirname(mux.configFile), "mucmux.sqlite");
    const al = `ro${Date.now().toString(36)}`;
    await prosody.register(al, `${al}pw`);
    const via = (u: string, r: string, pw = `${u}pw`) =>
      connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: u, password: pw, resource: r });
    const open: TestClient[] = [];
    let restore: (() => void) | undefined;
    try {
      const room = `ro-${Date.now().toString(36)}@conference.localhost`;
      const bob = await via("bob", "ro", "bobpw");
      const carol = await via("carol", "ro", "carolpw");
      const a = await via(al, "ro");
      open.push(bob, carol, a);
      await join(bob, room, "bob");
      await join(a, room, al);
      assert.equal((await a.iq(submit(room, al, "1"))).attrs.type, "result");

      restore = makeReadOnly(file) ?? lockForWriting(file);
      // SPEC D3 with the store refusing writes: a clear, retryable IQ error; the flag is unchanged.
      const refused = await a.iq(submit(room, al, "0")).then(() => undefined, (e: unknown) => e as Error & { condition?: string; text?: string; type?: string });
      assert.ok(refused, "the change is refused");
      assert.deepEqual([refused.type, refused.condition, refused.text],
        ["wait", "internal-server-error", "the offline setting could not be stored; try again later"]);
      assert.equal(formField(await getRegistration(a, room), OFFLINE)?.getChildText("value"), "1", "still on");
      // The proxy is up: 1:1 chat relays, /healthz is 200.
      await bob.send(xml("message", { to: carol.jid, type: "chat" }, xml("body", {}, "still relaying")));
      await carol.waitFor((el: Element) => el.getChildText("body") === "still relaying");
      assert.equal((await status(mux.adminPort, "/healthz")).code, 200);
      assert.ok((await metric(mux.adminPort, "mucmux_store_errors_total", 'op="delete_registration"')) >= 1, "the failed write is counted");

      restore();
      restore = undefined;
      // Writable again: the change is stored, and a message for the absent account is queued.
      assert.equal((await a.iq(submit(room, al, "0"))).attrs.type, "result");
      assert.equal(formField(await getRegistration(a, room), OFFLINE)?.getChildText("value"), "0");
      assert.equal((await a.iq(submit(room, al, "1"))).attrs.type, "result");
      await a.stop();
      await roomKept(mux, al, room);
      await bob.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "after the store came back")));
      await until("queued", async () => ((await mux.app.store?.pending(`${al}@localhost`, Date.now(), 0, 10)) ?? []).length === 1);
    } finally {
      restore?.();
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux.stop();
    }
  });
});

/**
 * Where chattr +i is not allowed: another connection holds SQLite's write lock, so every write of mucmux
 * fails (SQLITE_BUSY after its busy timeout) until the lock is released.
 */
function lockForWriting(file: string): () => void {
  const db = new Database(file);
  db.exec("BEGIN EXCLUSIVE");
  return () => {
    db.exec("ROLLBACK");
    db.close();
  };
}

test("a damaged store is refused at start-up: exit code 1, a clear message", async () => {
  const upstream = await freePort();
  const configFile = writeTestConfig({ upstreamPort: upstream, logLevel: "info" });
  const file = path.join(path.dirname(configFile), "mucmux.sqlite");
  const s = new SqliteStore(file);
  for (let i = 0; i < 300; i++) {
    await s.enqueue({ account: "a@localhost", room: "r@conference.localhost", stanza: `<message><body>${i}${"z".repeat(400)}</body></message>`,
      receivedAt: Date.now(), expiresAt: Date.now() + 60_000 }, { maxPerAccount: 1000, maxPerRoom: 1000 }, Date.now());
  }
  s.close();
  assert.ok(statSync(file).size > 20 * 4096, "a store of several pages");
  const fd = openSync(file, "r+");
  for (const page of [4, 11]) writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, page * 4096);
  closeSync(fd);
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "main.ts"), "--config", configFile], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (c) => { clearTimeout(t); resolve(c); });
  });
  assert.equal(code, 1, err);
  assert.match(err, /mucmux: startup failed: store .*mucmux\.sqlite failed its integrity check \(PRAGMA quick_check: .+\); restore it from a backup/);
  assert.doesNotMatch(err, /zzzz/, "no row contents");
});

/** SPEC E5 with the server down: a login fails with remote-connection-failed at once, not after a timeout. */
async function loginFailsFast(port: number): Promise<void> {
  const raw = await RawClient.connect(port);
  raw.open();
  await raw.waitFor(/<mechanism>PLAIN/);
  const t0 = Date.now();
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0alicepw").toString("base64")}</auth>`);
  await raw.waitClosed(2000);
  assert.ok(Date.now() - t0 < 2000, `login failed after ${Date.now() - t0} ms`);
  assert.match(raw.text, /<stream:error><remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
}
