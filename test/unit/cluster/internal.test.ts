// The internal link (SPEC H2) over real TLS on loopback, with the test CA's replica certificates: a handed-over
// client's bytes reach the owner after the prelude and the owner's reach the client; a refusal or an unreachable
// owner leaves the client where it was; a broken preamble or a foreign certificate gets nothing, and the listener
// goes on serving.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import pino from "pino";
import { InternalLink, parsePreamble, type HandoffPreamble } from "../../../src/cluster/internal.js";
import { clusterCertificates } from "../../support/cluster-certs.js";
import { testCertificate } from "../../support/certs.js";
import { freePorts } from "../../support/ports.js";

const certs = clusterCertificates(2);
const log = pino({ level: "silent" });
const counts: Record<string, number> = {};
const metrics = {
  handoff: (d: string, r: string) => { counts[`${d}:${r}`] = (counts[`${d}:${r}`] ?? 0) + 1; },
  bytes: (d: string, n: number) => { counts[`bytes:${d}`] = (counts[`bytes:${d}`] ?? 0) + n; },
  pipes: (delta: number) => { counts.pipes = (counts.pipes ?? 0) + delta; },
};
const material = (i: number) => ({
  cert: readFileSync(certs.replicas[i]!.certFile), key: readFileSync(certs.replicas[i]!.keyFile), ca: readFileSync(certs.caFile),
});

const sessions: { preamble: HandoffPreamble; socket: tls.TLSSocket }[] = [];
let refuse: string | undefined;
const owner = new InternalLink({ ...material(0), log, metrics, onSession: (preamble, socket) => {
  if (refuse) return refuse;
  sessions.push({ preamble, socket });
  return undefined;
} });
const entry = new InternalLink({ ...material(1), log, metrics, onSession: () => "not here" });
const ownerPort = await owner.listen("127.0.0.1", 0);
after(() => { owner.close(); entry.close(); });

const preamble: HandoffPreamble = {
  v: 1, account: "alice@localhost", mode: "direct", sni: "localhost", cb: { "tls-exporter": Buffer.from("cb").toString("base64") },
  origin: { source: { address: "203.0.113.5", port: 40000 }, destination: { address: "127.0.0.1", port: 5223 } },
};

/** A connected socket pair: `inside` plays the entry replica's accepted client socket, `outside` the device. */
async function clientPair(): Promise<{ inside: net.Socket; outside: net.Socket; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const outside = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  const inside = await accepted;
  return { inside, outside, close: () => server.close() };
}

const read = (s: net.Socket, until: (text: string) => boolean, ms = 3000) => new Promise<string>((resolve, reject) => {
  let text = "";
  const t = setTimeout(() => reject(new Error(`read timed out; got ${JSON.stringify(text)}`)), ms);
  s.on("data", (c: Buffer) => {
    text += c.toString();
    if (until(text)) { clearTimeout(t); resolve(text); }
  });
});

test("a handed-over client: the preamble arrives whole, the prelude first, then bytes both ways until either end closes", async () => {
  const pair = await clientPair();
  let detached = 0;
  const ok = await entry.handOff(`127.0.0.1:${ownerPort}`, preamble, "<prelude/>", () => { detached++; return pair.inside; });
  assert.equal(ok, true);
  assert.equal(detached, 1);
  const s = sessions.at(-1)!;
  assert.deepEqual(s.preamble, preamble);
  const atOwner = read(s.socket, (t) => t.includes("from-device"));
  pair.outside.write("from-device");
  assert.equal(await atOwner, "<prelude/>from-device");
  const atDevice = read(pair.outside, (t) => t.includes("from-owner"));
  s.socket.write("from-owner");
  assert.equal(await atDevice, "from-owner");
  assert.equal(counts.pipes, 1);
  assert.ok((counts["bytes:out"] ?? 0) >= "<prelude/>from-device".length);
  assert.ok((counts["bytes:in"] ?? 0) >= "from-owner".length);
  const ownerClosed = new Promise((r) => s.socket.once("close", r));
  pair.outside.destroy();
  await ownerClosed;
  assert.equal(counts.pipes, 0);
  pair.close();
});

test("a refusal or an unreachable owner: false, and the client socket is not taken", async () => {
  const pair = await clientPair();
  refuse = "draining";
  let detached = 0;
  assert.equal(await entry.handOff(`127.0.0.1:${ownerPort}`, preamble, "", () => { detached++; return pair.inside; }), false);
  refuse = undefined;
  const [closedPort = 1] = await freePorts(1);
  assert.equal(await entry.handOff(`127.0.0.1:${closedPort}`, preamble, "", () => { detached++; return pair.inside; }), false);
  assert.equal(detached, 0);
  assert.ok(!pair.inside.destroyed, "the client stays with the entry replica");
  assert.ok((counts["out:refused"] ?? 0) >= 1 && (counts["out:failed"] ?? 0) >= 1);
  pair.outside.destroy();
  pair.close();
});

test("a bad preamble is answered with a refusal; a foreign certificate gets nothing; the listener goes on", async () => {
  const m = material(1);
  const frame = (body: string) => { const b = Buffer.from(body); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); return Buffer.concat([h, b]); };
  const bad = tls.connect({ host: "127.0.0.1", port: ownerPort, ...m, checkServerIdentity: () => undefined });
  await new Promise((r) => bad.once("secureConnect", r));
  const answer = read(bad, (t) => t.includes("}"));
  bad.write(frame(JSON.stringify({ ...preamble, v: 2 })));
  assert.match(await answer, /"ok":false,"reason":"unknown preamble version"/);
  bad.destroy();
  const cert = testCertificate();
  const foreign = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port: ownerPort, cert: cert.cert, key: cert.key, ca: readFileSync(certs.caFile), checkServerIdentity: () => undefined });
    s.on("secureConnect", () => s.write(frame(JSON.stringify(preamble))));
    s.on("data", () => resolve("answered"));
    s.on("error", () => resolve("refused"));
    s.on("close", () => resolve("refused"));
  });
  assert.equal(foreign, "refused");
  const before = sessions.length;
  const pair = await clientPair();
  assert.equal(await entry.handOff(`127.0.0.1:${ownerPort}`, preamble, "", () => pair.inside), true);
  assert.equal(sessions.length, before + 1);
  pair.outside.destroy();
  pair.close();
});

test("parsePreamble checks every field", () => {
  assert.deepEqual(parsePreamble(JSON.parse(JSON.stringify(preamble))), preamble);
  for (const broken of [null, 1, { ...preamble, account: "nobody" }, { ...preamble, mode: "udp" }, { ...preamble, origin: {} },
    { ...preamble, sni: 5 }, { ...preamble, cb: { x: 1 } }]) {
    assert.equal(typeof parsePreamble(broken), "string", JSON.stringify(broken));
  }
});
