// The PostgreSQL store against a real PostgreSQL 15 (test/support/postgres.ts): the Store and LeaseStore contracts
// (test/unit/store/contract.ts), its own migrations up, down and up again, replicas starting at once, two replicas
// draining one queue (each message delivered exactly once), and an outage (SIGKILL of the server): calls fail with a
// clear error within store.timeoutSeconds, healthy() turns false, and the same store works again once the server is
// back. No log line carries the password.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startPostgres, type PgServer } from "../support/postgres.js";
import { until } from "../support/wait.js";
import { PgStore } from "../../src/store/pg.js";
import { migratePg, PG_SCHEMA_VERSION } from "../../src/store/pg-schema.js";
import { StoreError } from "../../src/store/store.js";
import { endStore, openStore } from "../../src/store/open.js";
import { createLogger } from "../../src/log.js";
import { storeContract, type ContractStore } from "../unit/store/contract.js";

let server: PgServer;
const lines: string[] = [];
const log = createLogger("info", { write: (l: string) => void lines.push(l) });
const password = () => decodeURIComponent(new URL(server.url).password);

before(async () => {
  server = await startPostgres({ name: "store-pg" });
});
after(async () => {
  await server?.stop();
});

const open = async (o: { same?: boolean } = {}, timeoutMs = 5000): Promise<PgStore> => {
  if (!o.same) await server.reset();
  return PgStore.open(server.url, { poolSize: 5, timeoutMs, log });
};

storeContract("PgStore", (o) => open(o), async (s: ContractStore) => (s as PgStore).end(), { leases: true });

const A = "alice@localhost";
const R = "room@conference.localhost";
const NOW = Date.now();
const big = { maxPerAccount: 100_000, maxPerRoom: 100_000 };

describe("PgStore on PostgreSQL", () => {
  it("migrations: up to the latest, down to 0, up again; a newer schema is refused with a clear error", async () => {
    await server.reset();
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      const tables = async () => (await c.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows.map((r) => r.t);
      assert.equal(await migratePg(c), 0);
      const latest = await tables();
      assert.deepEqual(latest, ["account_leases", "fast_tokens", "kept_anchors", "meta", "offline_queue", "offline_registrations",
        "replicas", "scram_verifiers"]);
      assert.equal(await migratePg(c, 1), PG_SCHEMA_VERSION);
      assert.deepEqual(await tables(), ["fast_tokens", "kept_anchors", "meta", "offline_queue", "offline_registrations", "scram_verifiers"]);
      assert.equal(await migratePg(c, 0), 1);
      assert.deepEqual(await tables(), ["meta"]);
      assert.equal((await c.query("SELECT value FROM meta WHERE key = 'schema_version'")).rows[0]?.value, "0");
      assert.equal(await migratePg(c), 0);
      assert.deepEqual(await tables(), latest);
      // The store works on the re-created schema.
      const s = await PgStore.open(server.url, { poolSize: 2, timeoutMs: 5000, log });
      assert.equal((await s.enqueue({ account: A, room: R, stanza: "<message/>", receivedAt: NOW, expiresAt: NOW + 60_000 }, big, NOW)).queued, true);
      assert.equal((await s.acquire(A, "r1", 1000)).owner, "r1");
      await s.end();
      await c.query("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
      await assert.rejects(PgStore.open(server.url, { poolSize: 2, timeoutMs: 5000, log }), (err: unknown) => {
        assert.ok(err instanceof StoreError, String(err));
        assert.match(err.message, /schema version 99/);
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}/mucmux`));
        assert.ok(!err.message.includes(password()), "no password in the error");
        return true;
      });
    } finally {
      await c.end();
    }
  });

  it("replicas starting at once: one migrates (advisory lock), every one opens", async () => {
    await server.reset();
    const stores = await Promise.all(Array.from({ length: 6 }, () => PgStore.open(server.url, { poolSize: 2, timeoutMs: 5000, log })));
    try {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      assert.equal((await c.query("SELECT value FROM meta WHERE key = 'schema_version'")).rows[0]?.value, String(PG_SCHEMA_VERSION));
      await c.end();
      for (const s of stores) assert.equal(s.healthy(), true);
    } finally {
      await Promise.all(stores.map((s) => s.end()));
    }
  });

  it("a wrong password or an unreachable server: open fails with a clear error, no password in it", async () => {
    const bad = server.url.replace(`:${password()}@`, ":not-the-password@");
    await assert.rejects(PgStore.open(bad, { poolSize: 1, timeoutMs: 3000, log }), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.match(err.message, /password authentication failed/);
      assert.ok(!err.message.includes("not-the-password"));
      return true;
    });
  });

  it("two replicas draining one account's queue with pending/remove loops: every message exactly once", async () => {
    const one = await open();
    const two = await open({ same: true });
    try {
      const N = 300;
      for (let i = 0; i < N; i++) {
        await one.enqueue({ account: A, room: R, stanza: `<message><body>${i}</body></message>`, receivedAt: NOW, expiresAt: NOW + 600_000 }, big, NOW);
      }
      const delivered: string[][] = [[], []];
      const drain = async (s: PgStore, out: string[]) => {
        for (;;) {
          const page = await s.pending(A, NOW, 0, 7);
          if (page.length === 0) return;
          for (const m of page) out.push(/<body>(\d+)</.exec(m.stanza)?.[1] ?? "?");
          // Written to the client, then removed (SPEC D6b).
          await new Promise((r) => setImmediate(r));
          await s.remove(page.map((m) => m.id));
        }
      };
      // One loop per replica (within one replica, the account's catch-up is one loop: SPEC D6b).
      await Promise.all([drain(one, delivered[0]!), drain(two, delivered[1]!)]);
      const all = [...delivered[0]!, ...delivered[1]!];
      assert.equal(new Set(all).size, all.length, "no message twice");
      assert.equal(all.length, N, "every message");
      assert.ok(delivered[0]!.length > 0 && delivered[1]!.length > 0, `both replicas delivered (${delivered[0]!.length}/${delivered[1]!.length})`);
      assert.equal(await one.queueDepth(NOW), 0);
    } finally {
      await two.end();
      await one.end();
    }
  });

  it("outage: PostgreSQL killed, calls fail within store.timeoutSeconds and healthy() turns false; back: the same store works", async () => {
    const timeoutMs = 2000;
    const s = await open({}, timeoutMs);
    const other = await open({ same: true }, timeoutMs);
    let released = 0;
    other.onReleased(() => void released++);
    try {
      await s.saveRegistration({ account: A, room: R, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
      await s.enqueue({ account: A, room: R, stanza: "<message><body>1</body></message>", receivedAt: NOW, expiresAt: NOW + 600_000 }, big, NOW);
      await until("the LISTEN connection hears a release", async () => { await s.notifyReleased(); return released > 0; }, 10_000, 100);
      assert.equal(s.healthy(), true);

      await server.kill();
      for (const call of [() => s.pending(A, NOW, 0, 10), () => s.enqueue({ account: A, room: R, stanza: "<message/>", receivedAt: NOW, expiresAt: NOW + 1 }, big, NOW),
        () => s.registrations(A), () => s.acquire(A, "r1", 1000)]) {
        const t0 = Date.now();
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof StoreError, String(err));
          assert.match(err.message, new RegExp(`^store postgres 127\\.0\\.0\\.1:${server.port}/mucmux: `));
          assert.ok(!err.message.includes(password()));
          return true;
        });
        assert.ok(Date.now() - t0 <= timeoutMs + 1000, `failed after ${Date.now() - t0} ms`);
      }
      assert.equal(s.healthy(), false, "a failed call marks the store unhealthy");
      await until("the other store's probe notices", () => !other.healthy(), 5000);

      await server.start();
      await until("the periodic probe sees the server again", () => s.healthy(), 10_000, 50);
      assert.deepEqual((await s.pending(A, NOW, 0, 10)).map((m) => m.stanza), ["<message><body>1</body></message>"]);
      assert.equal((await s.registrations(A)).length, 1);
      assert.equal((await s.acquire(A, "r1", 1000)).owner, "r1");
      // The LISTEN connection came back by itself.
      const before = released;
      await until("a release is heard after the outage", async () => { await s.notifyReleased(); return released > before; }, 15_000, 200);
      await until("the other store is healthy again", () => other.healthy(), 10_000);
    } finally {
      await other.end();
      await s.end();
    }
  });

  it("openStore with store.url: the PostgreSQL store and its leases, logged by host, port and database", async () => {
    await server.reset();
    const own: string[] = [];
    const quiet = createLogger("info", { write: (l: string) => void own.push(l) });
    const opened = await openStore({ store: { path: "/nonexistent/unused.sqlite", url: server.url, poolSize: 3, timeoutSeconds: 5 } }, quiet);
    try {
      assert.ok(opened.store instanceof PgStore);
      assert.equal(opened.leases, opened.store);
      const line = JSON.parse(own.find((l) => l.includes("store opened")) ?? "{}") as Record<string, unknown>;
      assert.deepEqual({ store: line.store, host: line.host, port: line.port, database: line.database },
        { store: "postgres", host: "127.0.0.1", port: server.port, database: "mucmux" });
      for (const l of own) assert.ok(!l.includes(password()), l);
      // The fence set through openStore applies.
      const l = await opened.leases!.acquire(A, "r2", 60_000);
      opened.setFence(() => ({ owner: "r1", token: l.token }));
      const out = await opened.store.enqueue({ account: A, room: R, stanza: "<message/>", receivedAt: NOW, expiresAt: NOW + 1000 }, big, NOW);
      assert.equal(out.fenced, true);
    } finally {
      await endStore(opened.store);
    }
    lines.push(...own);
  });

  it("no log line carries the password", () => {
    assert.ok(lines.length > 0, "something was logged");
    for (const l of lines) assert.ok(!l.includes(password()), l);
  });
});
