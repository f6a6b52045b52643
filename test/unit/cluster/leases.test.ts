// LeaseManager (SPEC H1–H4) against an in-memory LeaseStore with the PostgreSQL store's semantics (the real one is
// tested in test/integration/store-pg.test.ts): routing, waiting out a dead owner, renewal, loss, release, fencing.
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import type { Lease, LeaseStore, ReplicaInfo } from "../../../src/store/store.js";
import { LeaseManager } from "../../../src/cluster/leases.js";

/** One shared "database": leases and replicas, expiry on its own clock. */
class MemoryLeases {
  now = 1_000_000;
  token = 0;
  readonly leases = new Map<string, { owner: string; token: number; expiresAt: number }>();
  readonly replicas = new Map<string, { address: string; seenAt: number }>();
  readonly listeners = new Set<() => void>();
  kept = new Set<string>();

  view(): LeaseStore {
    return leaseView(this);
  }
}

function leaseView(db: MemoryLeases): LeaseStore {
  const read = (account: string): Lease | undefined => {
    const l = db.leases.get(account);
    return l && { account, owner: l.owner, token: l.token, expiresInMs: l.expiresAt - db.now };
  };
  return {
    async heartbeat(id, address) { db.replicas.set(id, { address, seenAt: db.now }); },
    async replica(id): Promise<ReplicaInfo | undefined> {
      const r = db.replicas.get(id);
      return r && { id, address: r.address, seenMsAgo: db.now - r.seenAt };
    },
    async retire(id) { db.replicas.delete(id); },
    async lease(account) { return read(account); },
    async acquire(account, owner, ttlMs) {
      const l = db.leases.get(account);
      if (!l || l.expiresAt <= db.now) db.leases.set(account, { owner, token: ++db.token, expiresAt: db.now + ttlMs });
      else if (l.owner === owner) l.expiresAt = db.now + ttlMs;
      return read(account)!;
    },
    async renew(owner, held, ttlMs) {
      const lost: string[] = [];
      for (const [account, token] of held) {
        const l = db.leases.get(account);
        if (l && l.owner === owner && l.token === token) l.expiresAt = db.now + ttlMs;
        else lost.push(account);
      }
      return lost;
    },
    async release(owner, held) {
      for (const [account, token] of held) {
        const l = db.leases.get(account);
        if (l && l.owner === owner && l.token === token) l.expiresAt = db.now;
      }
    },
    async orphanedKeptAnchors() {
      return [...db.kept].filter((a) => { const l = db.leases.get(a); return !l || l.expiresAt <= db.now; });
    },
    async notifyReleased() { for (const f of db.listeners) f(); },
    onReleased(f) { db.listeners.add(f); return () => db.listeners.delete(f); },
  };
}

const log = pino({ level: "silent" });

function manager(db: MemoryLeases, id: string, opts: { inUse?: (a: string) => boolean; onLost?: (a: readonly string[]) => void; leaseMs?: number } = {}) {
  return new LeaseManager({
    store: db.view(), replicaId: id, address: `${id}:5270`, leaseMs: opts.leaseMs ?? 10_000, log,
    inUse: opts.inUse ?? (() => true), onLost: opts.onLost ?? (() => {}), now: () => db.now,
  });
}

test("a free account is routed here; a second replica is sent to the owner; after the owner releases, it is taken", async () => {
  const db = new MemoryLeases();
  const a = manager(db, "a");
  const b = manager(db, "b");
  await a.start();
  await b.start();
  assert.deepEqual(await a.route("alice@x", { deadlineMs: 1000 }), { kind: "local" });
  assert.deepEqual(await b.route("alice@x", { deadlineMs: 1000 }), { kind: "remote", owner: "a", address: "a:5270" });
  assert.equal(a.holds("alice@x"), true);
  assert.equal(b.holds("alice@x"), false);
  // SPEC H3: the fence is the token held here, and nothing for an account held elsewhere.
  const token = db.leases.get("alice@x")!.token;
  assert.deepEqual(a.fence("alice@x"), { owner: "a", token });
  assert.deepEqual(b.fence("alice@x"), { owner: "b", token: 0 });
  await a.releaseAll();
  assert.equal(a.holds("alice@x"), false);
  assert.deepEqual(await b.route("alice@x", { deadlineMs: 1000 }), { kind: "local" });
  assert.ok(db.leases.get("alice@x")!.token > token, "a new owner gets a larger fencing token");
  await a.stop();
  await b.stop();
});

test("an owner that stopped heartbeating is waited out until its lease expires, then the lease is taken over", async () => {
  const db = new MemoryLeases();
  const a = manager(db, "a", { leaseMs: 300 });
  const b = manager(db, "b", { leaseMs: 300 });
  await a.start();
  await b.start();
  await a.route("alice@x", { deadlineMs: 1000 });
  await a.stop(); // a is gone: no heartbeat, no renewal (as after SIGKILL)
  db.replicas.set("a", { address: "a:5270", seenAt: db.now - 10_000 });
  const started = Date.now();
  const advance = setInterval(() => { db.now += 50; }, 10);
  const route = await b.route("alice@x", { deadlineMs: 5000 });
  clearInterval(advance);
  assert.deepEqual(route, { kind: "local" });
  assert.ok(Date.now() - started < 3000);
  await b.stop();
});

test("an owner that is alive but unreachable is waited out too, and a deadline shorter than its lease fails the login", async () => {
  const db = new MemoryLeases();
  const a = manager(db, "a");
  const b = manager(db, "b");
  await a.start();
  await b.start();
  await a.route("alice@x", { deadlineMs: 1000 });
  const r = await b.route("alice@x", { deadlineMs: 100, unreachable: "a" });
  assert.equal(r.kind, "unavailable");
  await a.stop();
  await b.stop();
});

test("renewal keeps what is in use, releases what is not, and hands lost leases to onLost", async () => {
  const db = new MemoryLeases();
  const lost: string[] = [];
  const inUse = new Set(["alice@x", "bob@x"]);
  const a = manager(db, "a", { leaseMs: 600, inUse: (acc) => inUse.has(acc), onLost: (l) => lost.push(...l) });
  await a.start();
  for (const acc of ["alice@x", "bob@x", "carol@x"]) await a.route(acc, { deadlineMs: 1000 });
  db.now += 120_000; // past the pin of a fresh login; carol is not in use
  // Someone else took bob (as after a store outage during which a's lease expired).
  db.leases.set("bob@x", { owner: "b", token: 99, expiresAt: db.now + 10_000 });
  await new Promise((r) => setTimeout(r, 450)); // one tick (every leaseMs / 3)
  assert.deepEqual(lost, ["bob@x"]);
  assert.equal(a.holds("alice@x"), true);
  assert.equal(a.holds("bob@x"), false);
  assert.equal(a.holds("carol@x"), false, "not in use any more: released");
  assert.ok(db.leases.get("carol@x")!.expiresAt <= db.now, "released leases expire at once");
  assert.ok(db.leases.get("alice@x")!.expiresAt > db.now, "renewed");
  await a.stop();
});

test("kept anchors nobody owns are adopted once; a released lease is announced", async () => {
  const db = new MemoryLeases();
  db.kept = new Set(["alice@x", "bob@x"]);
  const a = manager(db, "a");
  const b = manager(db, "b");
  let released = 0;
  const bb = new LeaseManager({
    store: db.view(), replicaId: "c", address: "c:1", leaseMs: 10_000, log, inUse: () => true, onLost: () => {},
    onReleased: () => released++, now: () => db.now,
  });
  await a.start();
  await b.start();
  await bb.start();
  assert.deepEqual((await a.adoptOrphans()).sort(), ["alice@x", "bob@x"]);
  assert.deepEqual(await b.adoptOrphans(), []);
  await a.releaseAll();
  assert.equal(released, 1);
  assert.deepEqual((await b.adoptOrphans()).sort(), ["alice@x", "bob@x"]);
  for (const m of [a, b, bb]) await m.stop();
});
