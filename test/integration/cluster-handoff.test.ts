// The handoff of a login to the account's owner (SPEC H1–H3), with two in-process replicas sharing a real PostgreSQL
// in front of real Prosody: the first login of an account makes its replica the owner; a login arriving at the other
// replica is handed over on the internal mTLS link (PLAIN, SCRAM relayed and terminated, SASL2), and the client sees
// one ordinary session of the owner: its traffic works both ways, and the entry replica only carries bytes. A peer
// without a certificate of the cluster's CA gets nothing from the internal listener.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { xml } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { startPostgres, type PgServer } from "../support/postgres.js";
import { startMucmux, metric, type TestMucmux } from "../support/mucmux.js";
import { clusterCertificates } from "../support/cluster-certs.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { testCertificate } from "../support/certs.js";
import { poll } from "../support/wait.js";

let prosody: ProsodyServer;
let pg: PgServer;
const replicas: TestMucmux[] = [];
const clients: TestClient[] = [];

before(async () => {
  [prosody, pg] = await Promise.all([startProsody(), startPostgres({ name: "handoff" })]);
  const certs = clusterCertificates(2);
  for (let i = 0; i < 2; i++) {
    const c = certs.replicas[i]!;
    replicas.push(await startMucmux({
      upstreamPort: prosody.port,
      extra: {
        store: { url: pg.url },
        cluster: { replicaId: `r${i}`, host: "127.0.0.1", port: 0, cert: c.certFile, key: c.keyFile, ca: certs.caFile, leaseSeconds: 3 },
      },
    }));
  }
});

after(async () => {
  for (const c of clients) await c.stop().catch(() => {});
  for (const r of replicas) await r.stop();
  await Promise.all([prosody?.stop(), pg?.stop()]);
});

const via = (i: number) => `xmpps://127.0.0.1:${replicas[i]!.directPort}`;
const sum = async (name: string, labels?: string) => (await Promise.all(replicas.map((r) => metric(r.adminPort, name, labels)))).reduce((a, b) => a + b, 0);

async function login(i: number, username: string, opts: { mechanism?: "PLAIN" | "SCRAM-SHA-1"; sasl2?: boolean; resource?: string } = {}): Promise<TestClient> {
  const c = await connectClient({ service: via(i), domain: "localhost", username, password: `${username}pw`, ...opts });
  clients.push(c);
  return c;
}

test("a login at the replica that does not own the account is handed to the owner; the session works both ways", async () => {
  const a0 = await login(0, "alice", { resource: "phone" }); // r0 takes alice's lease
  assert.equal(await metric(replicas[0]!.adminPort, "mucmux_cluster_leases_held"), 1);
  const handedBefore = await sum("mucmux_cluster_handoffs_total", 'direction="out",result="ok"');
  const a1 = await login(1, "alice", { resource: "laptop" }); // at r1: handed to r0
  assert.equal(await sum("mucmux_cluster_handoffs_total", 'direction="out",result="ok"') - handedBefore, 1);
  assert.equal(await metric(replicas[0]!.adminPort, "mucmux_cluster_handoffs_total", 'direction="in",result="ok"'), 1);
  assert.equal(await metric(replicas[1]!.adminPort, "mucmux_cluster_leases_held"), 0, "the entry replica owns nothing");
  assert.equal(await metric(replicas[1]!.adminPort, "mucmux_cluster_pipes_open"), 1);
  // Both sessions are the owner's: one account, two resources, talking to each other and to bob.
  const bob = await login(1, "bob");
  await a1.send(xml("message", { to: a0.jid, type: "chat", id: "m1" }, xml("body", {}, "hello phone")));
  assert.equal((await a0.waitFor((el) => el.attrs.id === "m1")).getChildText("body"), "hello phone");
  await bob.send(xml("message", { to: a1.jid, type: "chat", id: "m2" }, xml("body", {}, "hi laptop")));
  assert.equal((await a1.waitFor((el) => el.attrs.id === "m2")).getChildText("body"), "hi laptop");
  const pong = await a1.iq(xml("iq", { type: "get", to: "localhost", id: "p1" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  assert.equal(pong.attrs.type, "result");
  assert.ok(await metric(replicas[1]!.adminPort, "mucmux_cluster_bytes_total", 'direction="in"') > 0);
  assert.ok(await metric(replicas[1]!.adminPort, "mucmux_cluster_bytes_total", 'direction="out"') > 0);
  await a1.stop();
  assert.ok(await poll(async () => (await metric(replicas[1]!.adminPort, "mucmux_cluster_pipes_open")) === 0, 5000), "the pipe closes with the session");
});

test("SCRAM (relayed, then terminated with the learned verifier) and SASL2 are handed over too", async () => {
  const c0 = await login(0, "carol", { mechanism: "PLAIN" }); // r0 owns carol; PLAIN teaches the verifier
  await new Promise((r) => setTimeout(r, 300));
  const scram = await login(1, "carol", { mechanism: "SCRAM-SHA-1", resource: "scram" });
  const v2 = await login(1, "carol", { sasl2: true, resource: "v2" });
  for (const c of [scram, v2]) {
    await c.send(xml("message", { to: c0.jid, type: "chat", id: `from-${c.jid}` }, xml("body", {}, "x")));
    await c0.waitFor((el) => el.attrs.id === `from-${c.jid}`);
  }
  assert.ok(await metric(replicas[0]!.adminPort, "mucmux_cluster_handoffs_total", 'direction="in",result="ok"') >= 3);
});

test("the internal listener refuses a peer without a certificate of the cluster's CA", async () => {
  const cert = testCertificate(); // a valid certificate, but not one the cluster CA signed
  const internalPort = replicas[0]!.app.clusterPort ?? 0;
  assert.ok(internalPort > 0);
  const outcome = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port: internalPort, cert: cert.cert, key: cert.key, rejectUnauthorized: false });
    s.on("secureConnect", () => { s.write(Buffer.from([0, 0, 0, 2, 123, 125])); });
    s.on("data", () => resolve("answered"));
    s.on("error", (e) => resolve(`error: ${e.message}`));
    s.on("close", () => resolve("closed"));
  });
  assert.notEqual(outcome, "answered");
});
