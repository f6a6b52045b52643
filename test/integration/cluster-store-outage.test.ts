// A PostgreSQL outage under a running replica (as the read-only SQLite test in muc-offline.test.ts does for the
// embedded store), against real Prosody and a real PostgreSQL killed and started again: joined sessions are
// untouched, /readyz says the store is unavailable, saving an offline setting gets a clear IQ error, messages that
// could not be queued are counted, a login that must be routed is refused with temporary-auth-failure; once the
// database is back, everything works again without a restart and nothing stored before the outage is lost.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { startPostgres, type PgServer } from "../support/postgres.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import { clusterCertificates } from "../support/cluster-certs.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { connectVia, isGroupchat, join } from "./muc-support.js";
import { isCopy, metric, roomKept, submit, until } from "./muc-offline-support.js";

let prosody: ProsodyServer;
let pg: PgServer;
let mux: TestMucmux;
const open: TestClient[] = [];

before(async () => {
  [prosody, pg] = await Promise.all([startProsody({ muc: true }), startPostgres({ name: "outage" })]);
  const certs = clusterCertificates(1);
  const c = certs.replicas[0]!;
  mux = await startMucmux({
    upstreamPort: prosody.port,
    extra: {
      store: { url: pg.url, timeoutSeconds: 2 },
      cluster: { host: "127.0.0.1", port: 0, cert: c.certFile, key: c.keyFile, ca: certs.caFile, leaseSeconds: 3 },
    },
  });
});

after(async () => {
  await Promise.allSettled(open.map((c) => c.stop()));
  await mux?.stop();
  await Promise.all([prosody?.stop(), pg?.stop()]);
});

const connect = async (user: string, resource: string) => {
  const c = await connectVia(mux.directPort, user, resource);
  open.push(c);
  await c.send(xml("presence"));
  return c;
};
const readyz = async () => {
  const res = await fetch(`http://127.0.0.1:${mux.adminPort}/readyz`);
  return { status: res.status, text: await res.text() };
};

test("PostgreSQL killed and started again under a running replica", async () => {
  const r = `outage-${Date.now().toString(36)}@conference.localhost`;
  await prosody.register("dave", "davepw");
  const bob = await connect("bob", "o");
  const carol = await connect("carol", "o");
  await join(bob, r, "bob");
  await join(carol, r, "carol");
  const a = await connect("alice", "o");
  await join(a, r, "alice");
  await a.iq(submit(r, "alice", "1"));
  await a.stop();
  await roomKept(mux, "alice", r);
  await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "stored before")));
  await until("one queued", async () => (await mux.app.store?.pending("alice@localhost", Date.now(), 0, 10).catch(() => []))?.length === 1);

  await pg.kill();
  await until("the store reported unavailable", async () => (await readyz()).text.includes("store unavailable"), 10_000);
  assert.equal((await readyz()).status, 503);
  // Joined sessions are untouched.
  await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "during")));
  await carol.waitFor(isGroupchat(r, "during"));
  await until("the message that could not be queued is counted", async () =>
    (await metric(mux.adminPort, "mucmux_offline_messages_dropped_total", 'reason="store_error"')) >= 1, 10_000);
  // An offline setting cannot be saved: a clear IQ error, nothing else breaks.
  await assert.rejects(carol.iq(submit(r, "carol", "1")), (err: Error) => /internal-server-error/.test(String(err)) || /stored/.test(String(err)));
  // A login that needs a lease is refused with temporary-auth-failure (the lease store is the same database).
  // (A raw client: xmpp.js gives SASL 2 s, and the lease call is retried for a moment before the login fails.)
  const raw = await RawClient.connect(mux.directPort);
  raw.open();
  await raw.waitFor(/<mechanism>PLAIN/);
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0dave\0davepw").toString("base64")}</auth>`);
  await raw.waitFor(/<failure[^>]*><temporary-auth-failure\/><text[^>]*>the lease store is unavailable</, 15_000);
  raw.close();
  await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "still fine")));
  await carol.waitFor(isGroupchat(r, "still fine"));

  await pg.start();
  await until("ready again", async () => (await readyz()).status === 200, 15_000);
  await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "after")));
  await until("queued again", async () => (await mux.app.store?.pending("alice@localhost", Date.now(), 0, 10).catch(() => []))?.length === 2);
  const d = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "dave", password: "davepw" });
  open.push(d);
  // Nothing stored before the outage is lost: alice's next login gets both queued messages, once.
  const a2 = await connect("alice", "back");
  await a2.waitFor(isCopy(r, "stored before"));
  await a2.waitFor(isCopy(r, "after"));
});
