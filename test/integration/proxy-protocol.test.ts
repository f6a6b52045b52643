// PROXY protocol. Inbound v1/v2 from trusted load balancers only (per-IP caps and auth
// throttling on the header's address; a trusted peer without a valid header, an untrusted peer with one,
// garbage: closed, nothing upstream, the canary unaffected), on both listeners; outbound v2 byte for
// byte; and against ejabberd 23.01 (use_proxy_protocol + mod_fail2ban): failed logins from one client
// ban that client, not mucmux's address, so everyone else still logs in.
// The "load balancer" is 127.0.0.2 (trusted); the canary and untrusted peers connect from 127.0.0.1.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { Duplex } from "node:stream";
import { encodeProxyV2 } from "../../src/net/proxy-protocol.js";
import { Canary, startEnv, waitUntil, type Env } from "../adversarial/harness.js";
import { FakeUpstream } from "../support/fake-upstream.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import { startEjabberd, type EjabberdServer } from "../support/ejabberd.js";
import { until } from "../support/wait.js";

const LB = "127.0.0.2";
const SIG = "0d0a0d0a000d0a515549540a";
const OPEN = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
/** One turn of the event loop: mucmux (in this process) reads what was written before the next write. */
const turn = () => new Promise<void>((r) => setImmediate(r));
const v1 = (src: string, sport: number, dst = "192.0.2.10", dport = 5222) => Buffer.from(`PROXY TCP4 ${src} ${dst} ${sport} ${dport}\r\n`, "latin1");
const v2 = (src: string, sport: number, dst = "192.0.2.10", dport = 5223) =>
  encodeProxyV2({ source: { address: src, port: sport }, destination: { address: dst, port: dport } }) as Buffer;
type Mode = "direct" | "starttls";

/** One side of a test connection: what it received, and when it closed. */
class Conn {
  text = "";
  closedAt = 0;
  constructor(public socket: net.Socket) { this.attach(socket); }
  attach(s: net.Socket): void {
    this.socket = s;
    s.on("data", (d: Buffer) => { this.text += d.toString("utf8"); });
    s.on("close", () => { this.closedAt ||= Date.now(); });
    s.on("error", () => {});
  }
  get closed(): boolean { return this.closedAt > 0; }
  send(d: string | Buffer): void { this.socket.write(d); }
  async waitFor(re: RegExp, ms = 5000): Promise<void> {
    await waitUntil(() => re.test(this.text) || this.closed, ms, `${re} (got ${this.text.slice(-300)})`);
    if (!re.test(this.text)) throw new Error(`closed before ${re}; got ${this.text.slice(-300)}`);
  }
  /** Milliseconds from `t0` until the TCP close. */
  async closedWithin(t0: number, ms: number): Promise<number> {
    await waitUntil(() => this.closed, ms + 500, "the connection to close");
    return this.closedAt - t0;
  }
  destroy(): void { this.socket.destroy(); }
}

/** A Duplex over `raw` whose first write carries `prefix` too: the PROXY header and the ClientHello leave in one segment. */
function prefixed(raw: net.Socket, prefix: Buffer): Duplex {
  let first = prefix.length > 0;
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      raw.write(first ? Buffer.concat([prefix, chunk]) : chunk, cb);
      first = false;
    },
    final(cb) { raw.end(); cb(); },
    read() { raw.resume(); },
    destroy(err, cb) { raw.destroy(); cb(err); },
  });
  raw.on("data", (b: Buffer) => { if (!d.push(b)) raw.pause(); });
  raw.on("end", () => d.push(null));
  raw.on("close", () => d.destroy());
  raw.on("error", () => d.destroy());
  return d;
}

async function tcp(port: number, from: string): Promise<net.Socket> {
  const raw = net.connect({ host: "127.0.0.1", port, localAddress: from, noDelay: true });
  await new Promise<void>((resolve, reject) => { raw.once("connect", resolve); raw.once("error", reject); });
  return raw;
}

/**
 * Connects from `from`, sends `header` (with the first TLS or XML bytes in the same segment, or dripped
 * byte by byte first) and gets an encrypted XMPP connection through mucmux's `mode` listener; rejects
 * when mucmux closes the connection instead.
 */
async function connect(port: number, mode: Mode, opts: { header?: Buffer; from?: string; drip?: boolean } = {}): Promise<Conn> {
  const raw = await tcp(port, opts.from ?? LB);
  let header = opts.header ?? Buffer.alloc(0);
  if (opts.drip) {
    for (const b of header) { raw.write(Buffer.from([b])); await turn(); }
    header = Buffer.alloc(0);
  }
  const secure = (socket: Duplex) => new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ socket, servername: "localhost" });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
    s.once("close", () => reject(new Error("closed during the TLS handshake")));
  });
  if (mode === "direct") return new Conn(await secure(prefixed(raw, header)));
  const plain = new Conn(raw);
  plain.send(Buffer.concat([header, Buffer.from(OPEN)]));
  await plain.waitFor(/<starttls/);
  plain.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await plain.waitFor(/<proceed/);
  raw.removeAllListeners("data");
  return new Conn(await secure(raw));
}

/** PLAIN login on an encrypted connection: "success", the SASL failure condition, or "stream:<condition>". */
async function login(c: Conn, user: string, password: string): Promise<string> {
  c.send(OPEN);
  await c.waitFor(/<mechanism>PLAIN|<stream:error/, 10_000);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
  await waitUntil(() => /<success|<failure|<stream:error/.test(c.text) || c.closed, 15_000, "a SASL outcome");
  if (/<success/.test(c.text)) return "success";
  const streamError = /<stream:error><([a-z-]+)/.exec(c.text)?.[1];
  return streamError ? `stream:${streamError}` : (/<failure[^>]*><([a-z-]+)/.exec(c.text)?.[1] ?? "closed");
}

/** Connect and log in once; "refused" when mucmux closed the connection before TLS/XMPP. */
async function attempt(port: number, mode: Mode, header: Buffer | undefined, user: string, password: string, from = LB): Promise<string> {
  let c: Conn;
  try {
    c = await connect(port, mode, { ...(header ? { header } : {}), from });
  } catch {
    return "refused";
  }
  try {
    return await login(c, user, password);
  } finally {
    c.destroy();
  }
}

async function headerCounts(mux: TestMucmux): Promise<Record<string, number>> {
  const m = await mux.app.metrics.proxyHeaders.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.result), v.value]));
}

describe("inbound PROXY protocol from a trusted balancer (both listeners)", () => {
  let env: Env;
  before(async () => {
    env = await startEnv({
      proxyProtocol: { trusted: [`${LB}/32`] },
      limits: { maxConnectionsPerIp: 2, authFailuresPerIp: 2, authFailureWindowSeconds: 60, handshakeSeconds: 2 },
    });
  });
  after(async () => { await env?.stop(); });

  test("limits.maxConnectionsPerIp counts the header's address, v1 and v2, across listeners; not the balancer's", async () => {
    const { directPort, starttlsPort } = env.mux;
    const open: Conn[] = [];
    try {
      open.push(await connect(directPort, "direct", { header: v1("203.0.113.7", 40001) }));
      open.push(await connect(starttlsPort, "starttls", { header: v2("203.0.113.7", 40002) }));
      await assert.rejects(connect(directPort, "direct", { header: v2("203.0.113.7", 40003) }), "a third from 203.0.113.7");
      await assert.rejects(connect(starttlsPort, "starttls", { header: v1("203.0.113.7", 40004) }), "also on the other listener");
      // Four connections from the balancer's own address so far: another client behind it is unaffected.
      open.push(await connect(starttlsPort, "starttls", { header: v1("203.0.113.8", 40005) }));
      open.push(await connect(directPort, "direct", { header: v2("203.0.113.8", 40006), drip: true }));
      open[0]?.destroy();
      // 203.0.113.7 has a free slot again once mucmux has seen that connection close: admitted from then on.
      let again: Conn | undefined;
      await until("a connection from 203.0.113.7 to be admitted again", async () =>
        (again = await connect(directPort, "direct", { header: v1("203.0.113.7", 40007), drip: true }).catch(() => undefined)) !== undefined, 5000);
      if (again) open.push(again);
      const counts = await headerCounts(env.mux);
      assert.ok((counts.proxy_v1 ?? 0) >= 4 && (counts.proxy_v2 ?? 0) >= 3, JSON.stringify(counts));
      await env.canary.check();
    } finally {
      for (const c of open) c.destroy();
    }
  });

  test("limits.authFailuresPerIp counts the header's address: that client is throttled, its neighbour behind the balancer is not", async () => {
    const p = env.mux.directPort;
    assert.equal(await attempt(p, "direct", v1("203.0.113.20", 1), "victim", "wrong"), "not-authorized");
    assert.equal(await attempt(env.mux.starttlsPort, "starttls", v2("203.0.113.20", 2), "victim", "wrong"), "not-authorized");
    const legs = env.upstream.connections.length;
    assert.equal(await attempt(p, "direct", v2("203.0.113.20", 3), "victim", "right"), "temporary-auth-failure");
    assert.equal(env.upstream.connections.length, legs, "the server was not asked");
    assert.equal(await attempt(p, "direct", v1("203.0.113.21", 4), "victim", "right"), "success");
    await env.canary.check();
  });

  test("a trusted peer without a valid header is closed (within 1 s; silence within limits.handshakeSeconds) and nothing reaches upstream", async () => {
    const legs = env.upstream.connections.length;
    const before = await headerCounts(env.mux);
    const cases: [string, Mode, Buffer][] = [
      ["no header, XML first", "starttls", Buffer.from(OPEN)],
      ["no header, TLS first", "direct", Buffer.from("160301", "hex")],
      ["v1 with a bad address", "starttls", Buffer.concat([Buffer.from("PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n"), Buffer.from(OPEN)])],
      ["v1 garbage, no CRLF", "direct", Buffer.from("PROXY TCP4 1.2.3.4 <stream:stream")],
      ["v2 version 3", "direct", Buffer.from(`${SIG}311100 0c cb007107 0a000001 0001 0002`.replace(/ /g, ""), "hex")],
      ["v2 oversize", "starttls", Buffer.from(`${SIG}2111ffff`, "hex")],
      ["v2 signature with a wrong byte", "starttls", Buffer.from(`0d0a0d0a000d0a515549580a21110000`, "hex")],
    ];
    for (const [name, mode, bytes] of cases) {
      const c = new Conn(await tcp(mode === "direct" ? env.mux.directPort : env.mux.starttlsPort, LB));
      const t0 = Date.now();
      c.send(bytes);
      const ms = await c.closedWithin(t0, 1000);
      assert.ok(ms <= 1000, `${name}: closed after ${ms} ms`);
      assert.equal(c.text, "", `${name}: mucmux answered ${c.text.slice(0, 200)}`);
    }
    const silent = new Conn(await tcp(env.mux.starttlsPort, LB));
    const t0 = Date.now();
    const ms = await silent.closedWithin(t0, 3000);
    assert.ok(ms <= 3000, `a silent trusted peer closed after ${ms} ms (handshakeSeconds 2)`);
    assert.equal(env.upstream.connections.length, legs, "no upstream connection was opened");
    const now = await headerCounts(env.mux);
    const delta = (k: string) => (now[k] ?? 0) - (before[k] ?? 0);
    assert.deepEqual([delta("missing"), delta("invalid"), delta("timeout")], [3, 4, 1]);
    await env.canary.check();
  });

  test("an untrusted peer's PROXY header is not read as one: the usual XML error (STARTTLS) or TLS failure (direct), within 1 s", async () => {
    const legs = env.upstream.connections.length;
    const c = new Conn(await tcp(env.mux.starttlsPort, "127.0.0.1"));
    let t0 = Date.now();
    c.send(Buffer.concat([v1("203.0.113.66", 1), Buffer.from(OPEN)]));
    assert.ok((await c.closedWithin(t0, 1000)) <= 1000);
    assert.match(c.text, /<stream:error><(not-well-formed|bad-format) xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>.*<\/stream:stream>$/s);
    const d = new Conn(await tcp(env.mux.directPort, "127.0.0.1"));
    t0 = Date.now();
    d.send(v2("203.0.113.66", 2));
    assert.ok((await d.closedWithin(t0, 1000)) <= 1000);
    assert.equal(env.upstream.connections.length, legs);
    await env.canary.check();
  });
});

/** A TCP relay in front of the fake upstream that takes off (and keeps) the v2 header mucmux sends first. */
async function startHeaderRelay(target: number): Promise<{ port: number; headers: Buffer[]; stop(): Promise<void> }> {
  const headers: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on("error", () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 16) return;
      const total = 16 + buf.readUInt16BE(14);
      if (buf.length < total) return;
      c.off("data", onData);
      c.pause();
      headers.push(buf.subarray(0, total));
      const up = net.connect({ host: "127.0.0.1", port: target }, () => {
        up.write(buf.subarray(total));
        c.pipe(up);
        up.pipe(c);
      });
      sockets.add(up);
      up.on("error", () => c.destroy());
      c.on("close", () => up.destroy());
    };
    c.on("data", onData);
  });
  await new Promise<void>((r) => server.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    headers,
    stop: () => { for (const s of sockets) s.destroy(); return new Promise<void>((r) => server.close(() => r())); },
  };
}

/** The v2 header decoded by hand (independently of mucmux's decoder). */
function describeV2(h: Buffer): string {
  assert.equal(h.subarray(0, 12).toString("hex"), SIG);
  if (h[12] === 0x20) return `LOCAL family=${(h[13] as number).toString(16)} len=${h.readUInt16BE(14)}`;
  assert.equal(h[12], 0x21);
  if (h[13] === 0x11 && h.length === 28) {
    return `${[...h.subarray(16, 20)].join(".")}:${h.readUInt16BE(24)} > ${[...h.subarray(20, 24)].join(".")}:${h.readUInt16BE(26)}`;
  }
  if (h[13] === 0x21 && h.length === 52) {
    return `${h.subarray(16, 32).toString("hex")}:${h.readUInt16BE(48)} > ${h.subarray(32, 48).toString("hex")}:${h.readUInt16BE(50)}`;
  }
  return `unexpected ${h.toString("hex")}`;
}

describe("outbound PROXY v2 (upstream.proxyProtocol: v2), byte for byte", () => {
  test("the server connection starts with a v2 header naming the client (or LOCAL), before any XML", async () => {
    const upstream = await FakeUpstream.start();
    const relay = await startHeaderRelay(upstream.port);
    const mux = await startMucmux({ upstreamPort: relay.port, extra: { upstream: { proxyProtocol: "v2" }, proxyProtocol: { trusted: [`${LB}/32`] } } });
    let canary: Canary | undefined;
    try {
      canary = await Canary.start({ mux, upstream });
      const local = canary.client.socket.localPort;
      // mucmux's own connections (the start-up probe of the server's SASL mechanisms, SPEC A10) say LOCAL.
      const clients = relay.headers.filter((h) => !describeV2(h).startsWith("LOCAL"));
      assert.ok(relay.headers.filter((h) => describeV2(h).startsWith("LOCAL")).length <= 1, "at most the probe");
      assert.equal(describeV2(clients[0] as Buffer), `127.0.0.1:${local} > 127.0.0.1:${mux.directPort}`, "a direct client: its socket's endpoints");
      assert.equal(await attempt(mux.starttlsPort, "starttls", v1("203.0.113.7", 40001, "192.0.2.10", 5222), "u1", "pw"), "success");
      assert.equal(describeV2(relay.headers.at(-1) as Buffer), "203.0.113.7:40001 > 192.0.2.10:5222", "behind the balancer: the header's endpoints");
      const six = v2("2001:db8::7", 40002, "2001:db8::1", 5223);
      assert.equal(await attempt(mux.directPort, "direct", six, "u2", "pw"), "success");
      assert.equal(describeV2(relay.headers.at(-1) as Buffer),
        "20010db8000000000000000000000007:40002 > 20010db8000000000000000000000001:5223");
      const lbLocal = Buffer.from(`${SIG}20000000`, "hex");
      assert.equal(await attempt(mux.directPort, "direct", lbLocal, "u3", "pw"), "success");
      assert.match(describeV2(relay.headers.at(-1) as Buffer), new RegExp(`^127\\.0\\.0\\.2:\\d+ > 127\\.0\\.0\\.1:${mux.directPort}$`),
        "a LOCAL header from the balancer: its own connection's endpoints");
      const n = relay.headers.length;
      await fetch(`http://127.0.0.1:${mux.adminPort}/readyz`);
      await waitUntil(() => relay.headers.length > n, 2000, "the readiness probe's header");
      assert.equal(describeV2(relay.headers.at(-1) as Buffer), "LOCAL family=11 len=12", "the readiness probe says LOCAL (with its own endpoints)");
      await canary.check();
    } finally {
      canary?.stop();
      await mux.stop();
      await relay.stop();
      await upstream.stop();
    }
  });
});

describe("ejabberd 23.01 with use_proxy_protocol and mod_fail2ban", () => {
  const A = "203.0.113.7", B = "198.51.100.9";
  let ej: EjabberdServer;
  let mux: TestMucmux;
  before(async () => {
    ej = await startEjabberd({ proxyProtocol: true, fail2ban: { maxAuthFailures: 3 } });
    mux = await startMucmux({
      upstreamPort: ej.proxyPort ?? 0,
      // STARTTLS upstream: the header must come before it, on the raw TCP connection.
      extra: { upstream: { proxyProtocol: "v2", tls: "starttls" }, proxyProtocol: { trusted: [`${LB}/32`] } },
    });
  });
  after(async () => {
    await mux?.stop();
    await ej?.stop();
  });
  const log = () => readFileSync(ej.logFile, "utf8");
  /** ejabberd writes its log with a delay: wait for a line rather than read it once. */
  const logged = (re: RegExp, what: string) => waitUntil(() => re.test(log()), 5000, `ejabberd to log ${what}`);

  test("failed logins from client A get A banned by ejabberd; client B logs in through the same mucmux", async () => {
    const outcomes: string[] = [];
    for (let i = 1; i <= 3; i++) outcomes.push(await attempt(mux.starttlsPort, "starttls", v1(A, 41000 + i), "alice", "wrong"));
    // The third failure makes ejabberd ban A and drop the stream: for mucmux the server connection failed.
    assert.deepEqual(outcomes, ["not-authorized", "not-authorized", "stream:remote-connection-failed"]);
    assert.equal(await attempt(mux.directPort, "direct", v2(A, 41010), "alice", "alicepw"), "stream:remote-connection-failed", "A is banned now");
    assert.equal(await attempt(mux.directPort, "direct", v2(B, 42000), "alice", "alicepw"), "success", "B is not");
    assert.equal(await attempt(mux.starttlsPort, "starttls", v1(B, 42001), "bob", "bobpw"), "success");
    await logged(/Failed c2s \S+ authentication for alice@localhost from 203\.0\.113\.7/, "A's failures with A's address");
    await logged(/blacklisted IP 203\.0\.113\.7/, "A's ban");
    await logged(/Accepted proxied connection 198\.51\.100\.9:42000 -> 192\.0\.2\.10:5223/, "B's endpoints");
    await logged(/Accepted c2s \S+ authentication for bob@localhost by \S+ backend from 198\.51\.100\.9/, "B's login");
    assert.doesNotMatch(log(), /blacklisted IP (198\.51\.100\.9|127\.0\.0\.1)/);
  });

  test("the anchor's stream sends LOCAL and works: a room join through mucmux", async () => {
    const c = await connect(mux.directPort, "direct", { header: v2(B, 42002) });
    try {
      assert.equal(await login(c, "carol", "carolpw"), "success");
      c.text = "";
      c.send(OPEN);
      await c.waitFor(/<\/stream:features>/);
      c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r1</resource></bind></iq>");
      await c.waitFor(/<jid>/);
      c.send("<presence to='pp@conference.localhost/carol'><x xmlns='http://jabber.org/protocol/muc'/></presence>");
      await c.waitFor(/<status code='110'\/>/, 10_000);
      assert.equal(await mux.app.metrics.anchorsOpen.get().then((m) => m.values[0]?.value), 1);
      // LOCAL: ejabberd took the connection's own endpoints for the anchor.
      await logged(/Accepted c2s \S+ authentication for carol@localhost by \S+ backend from 127\.0\.0\.1/, "the anchor's login");
    } finally {
      c.destroy();
    }
  });

  test("control: without the header ejabberd bans mucmux's own address, and everyone behind it is locked out", async () => {
    const plain = await startMucmux({ upstreamPort: ej.port });
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) outcomes.push(await attempt(plain.directPort, "direct", undefined, "bob", "wrong", "127.0.0.3"));
      assert.deepEqual(outcomes, ["not-authorized", "not-authorized", "stream:remote-connection-failed"]);
      assert.equal(await attempt(plain.directPort, "direct", undefined, "carol", "carolpw", "127.0.0.4"), "stream:remote-connection-failed",
        "another client, right password: locked out");
      await logged(/blacklisted IP 127\.0\.0\.1/, "the ban of mucmux's own address");
      // With the header, mucmux's clients are still told apart.
      assert.equal(await attempt(mux.directPort, "direct", v2(B, 42003), "carol", "carolpw"), "success");
    } finally {
      await plain.stop();
    }
  });
});
