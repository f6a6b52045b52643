// mucmux itself on the PostgreSQL store (store.url): it starts, its store calls go to PostgreSQL (counted in the
// store metrics), /readyz says `store unavailable` while PostgreSQL is down and ready again once it is back, without
// a restart, and it drains cleanly. Its log (audited for secrets, with the URL's password added) never holds the
// password. The upstream is a bare TCP listener: only its reachability matters here.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startPostgres, type PgServer } from "../support/postgres.js";
import { startMucmux, metric } from "../support/mucmux.js";
import { addTestSecret } from "../support/log-audit.js";
import { testCertificate } from "../support/certs.js";
import { until } from "../support/wait.js";
import { PgStore } from "../../src/store/pg.js";
import { createLogger } from "../../src/log.js";

let server: PgServer;
let upstream: net.Server;
let upstreamPort = 0;

before(async () => {
  server = await startPostgres({ name: "store-pg-app" });
  addTestSecret(decodeURIComponent(new URL(server.url).password));
  upstream = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
  upstreamPort = (upstream.address() as net.AddressInfo).port;
});
after(async () => {
  await new Promise((r) => upstream?.close(r));
  await server?.stop();
});

const readyz = async (port: number) => {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, text: await r.text() };
};

describe("mucmux with store.url", () => {
  it("runs on PostgreSQL; /readyz follows an outage and recovers without a restart", async () => {
    const cert = testCertificate();
    const mux = await startMucmux({
      upstreamPort,
      extra: {
        store: { url: server.url, timeoutSeconds: 2 },
        // Required with store.url (the replicas' internal link); this test runs one replica.
        cluster: { cert: cert.certFile, key: cert.keyFile, ca: cert.certFile },
      },
    });
    try {
      const store = mux.app.store;
      assert.ok(store);
      await until("ready", async () => (await readyz(mux.adminPort)).status === 200, 10_000);
      const now = Date.now();
      // (Queue calls are fenced by this replica's account leases, SPEC H3; registrations are not.)
      const reg = { account: "alice@localhost", room: "room@conference.localhost", nick: "alice", offline: true, createdViaMucmux: false };
      await store.saveRegistration(reg, now);
      // It is in PostgreSQL: another store on the same database sees it.
      const other = await PgStore.open(server.url, { poolSize: 1, timeoutMs: 5000, log: createLogger("silent") });
      assert.deepEqual(await other.registrations("alice@localhost"), [reg]);
      await other.end();
      assert.equal(await metric(mux.adminPort, "mucmux_store_operation_duration_seconds_count", 'op="save_registration"'), 1);

      await server.kill();
      await assert.rejects(store.registrations("alice@localhost"), /store postgres 127\.0\.0\.1:\d+\/mucmux/);
      const down = await readyz(mux.adminPort);
      assert.equal(down.status, 503);
      assert.match(down.text, /store unavailable/);
      assert.ok((await metric(mux.adminPort, "mucmux_store_errors_total", 'op="registrations"')) >= 1);

      await server.start();
      await until("ready again", async () => (await readyz(mux.adminPort)).status === 200, 15_000, 100);
      assert.deepEqual(await store.registrations("alice@localhost"), [reg]);
    } finally {
      await mux.stop(); // fails when a log line held the password
    }
  });
});
