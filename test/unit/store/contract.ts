// The Store contract (SPEC D6b, D7, A10–A15, G6) and the LeaseStore contract (SPEC H1–H4): one suite, run against
// every store implementation — the SQLite store (test/unit/store/sqlite-contract.test.ts) and the PostgreSQL store
// (test/integration/store-pg.test.ts). Behaviour only one store has (SQLite's pragmas, quick_check, damaged files;
// PostgreSQL's outages) is tested beside that store.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Fence, LeaseStore, NewQueuedMessage, Store, StoredVerifier, FastToken } from "../../../src/store/store.js";
import { elapse } from "../../support/wait.js";

export type ContractStore = Store & Partial<LeaseStore> & { setFence?(f: Fence | undefined): void };

export interface ContractOptions {
  /** Run the LeaseStore part (the store must implement it, and setFence). */
  leases?: boolean;
}

const A = "alice@localhost";
const B = "bob@localhost";
const R1 = "room1@conference.localhost";
const R2 = "room2@conference.localhost";
const NOW = 1_700_000_000_000;
const big = { maxPerAccount: 1000, maxPerRoom: 1000 };
const msg = (room: string, n: number, ttl = 60_000, account = A): NewQueuedMessage =>
  ({ account, room, stanza: `<message type='groupchat' from='${room}/bob'><body>${n}</body></message>`, receivedAt: NOW, expiresAt: NOW + ttl });
const bodies = async (s: Store, now = NOW, account = A) =>
  (await s.pending(account, now, 0, 100)).map((m) => /<body>(\d+)</.exec(m.stanza)?.[1]);

const verifier = (hash: "SHA-1" | "SHA-256", n: number, account = A): StoredVerifier => ({
  account, hash, salt: Buffer.from(`salt-${n}`), iterations: 4096 + n, storedKey: Buffer.alloc(hash === "SHA-1" ? 20 : 32, n),
  serverKey: Buffer.alloc(hash === "SHA-1" ? 20 : 32, n + 1), source: n % 2 ? "learned" : "imported", upstream: n % 2 === 0,
  sealed: n % 2 ? Buffer.from(`sealed-${n}`) : undefined, updatedAt: NOW + n,
});
const token = (n: number, agent = "phone", expiresAt = NOW + 86_400_000, account = A): FastToken => ({
  account, hash: Buffer.alloc(32, n), agent, responder: Buffer.alloc(32, n + 100), sealed: Buffer.from(`secret-${n}`),
  expiresAt, count: -1, createdAt: NOW + n,
});

/**
 * Registers the contract's tests. `open` gives a store with nothing in it (a fresh database); `{ same: true }` gives
 * another instance on the same data as the last fresh one (a second replica), where the store has such a thing.
 */
export function storeContract(
  name: string,
  open: (o?: { same?: boolean }) => Promise<ContractStore>,
  close: (s: ContractStore) => Promise<void>,
  opts: ContractOptions = {},
): void {
  const withStore = (fn: (s: ContractStore) => Promise<void>) => async () => {
    const s = await open();
    try {
      await fn(s);
    } finally {
      await close(s);
    }
  };

  describe(`${name}: Store contract`, () => {
    it("keeps registrations per account and room (SPEC D3/D4)", withStore(async (s) => {
      await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
      await s.saveRegistration({ account: A, room: R2, nick: "al", offline: false, createdViaMucmux: true }, NOW);
      await s.saveRegistration({ account: B, room: R1, nick: "bob", offline: true, createdViaMucmux: true }, NOW);
      assert.deepEqual(await s.registrations(A), [
        { account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false },
        { account: A, room: R2, nick: "al", offline: false, createdViaMucmux: true },
      ]);
      await s.saveRegistration({ account: A, room: R1, nick: "alice2", offline: false, createdViaMucmux: false }, NOW);
      assert.equal((await s.registrations(A)).find((r) => r.room === R1)?.nick, "alice2");
      await s.deleteRegistration(A, R1);
      assert.deepEqual((await s.registrations(A)).map((r) => r.room), [R2]);
      assert.deepEqual(await s.registrations("nobody@localhost"), []);
    }));

    it("queues in order, pages by id and removes only what it is told to", withStore(async (s) => {
      for (let i = 1; i <= 5; i++) assert.equal((await s.enqueue(msg(i % 2 ? R1 : R2, i), big, NOW)).queued, true);
      assert.deepEqual(await bodies(s), ["1", "2", "3", "4", "5"]);
      const all = await s.pending(A, NOW, 0, 100);
      assert.ok(all.every((m, i) => typeof m.id === "number" && (i === 0 || m.id > all[i - 1]!.id)), "increasing numeric ids");
      assert.deepEqual(all[0], { id: all[0]!.id, account: A, room: R1, stanza: msg(R1, 1).stanza, receivedAt: NOW, expiresAt: NOW + 60_000 });
      const first = await s.pending(A, NOW, 0, 2);
      assert.equal(first.length, 2);
      const rest = await s.pending(A, NOW, first[1]!.id, 100);
      assert.deepEqual(rest.map((m) => m.id), all.slice(2).map((m) => m.id));
      await s.remove([first[0]!.id, first[1]!.id]);
      await s.remove([]);
      assert.deepEqual(await bodies(s), ["3", "4", "5"]);
      assert.equal(await s.queueDepth(NOW), 3);
      assert.deepEqual(await s.pending(B, NOW, 0, 100), []);
      // Ids are never reused: a new message after removals gets a larger id.
      await s.enqueue(msg(R1, 6), big, NOW);
      const last = await s.pending(A, NOW, 0, 100);
      assert.ok(last.at(-1)!.id > all.at(-1)!.id);
    }));

    it("enforces the per-room and per-account caps by dropping the oldest", withStore(async (s) => {
      const caps = { maxPerAccount: 3, maxPerRoom: 2 };
      assert.deepEqual(await s.enqueue(msg(R1, 1), caps, NOW), { queued: true, duplicate: false, dropped: { cap_account: 0, cap_room: 0, ttl: 0 } });
      await s.enqueue(msg(R1, 2), caps, NOW);
      assert.deepEqual((await s.enqueue(msg(R1, 3), caps, NOW)).dropped, { cap_account: 0, cap_room: 1, ttl: 0 });
      assert.deepEqual(await bodies(s), ["2", "3"]);
      await s.enqueue(msg(R2, 4), caps, NOW);
      assert.deepEqual((await s.enqueue(msg(R2, 5), caps, NOW)).dropped, { cap_account: 1, cap_room: 0, ttl: 0 });
      assert.deepEqual(await bodies(s), ["3", "4", "5"]);
      const none = await s.enqueue(msg(R1, 6), { maxPerAccount: 10, maxPerRoom: 0 }, NOW);
      assert.deepEqual(none, { queued: false, duplicate: false, dropped: { cap_account: 0, cap_room: 1, ttl: 0 } });
      const noAccount = await s.enqueue(msg(R1, 7), { maxPerAccount: 0, maxPerRoom: 10 }, NOW);
      assert.deepEqual(noAccount, { queued: false, duplicate: false, dropped: { cap_account: 1, cap_room: 0, ttl: 0 } });
      // Another account's queue is its own.
      await s.enqueue(msg(R1, 8, 60_000, B), caps, NOW);
      assert.deepEqual(await bodies(s), ["3", "4", "5"]);
      assert.deepEqual(await bodies(s, NOW, B), ["8"]);
    }));

    it("expires messages after their TTL: never pending, swept by expire() and by enqueue()", withStore(async (s) => {
      await s.enqueue(msg(R1, 1, 1000), big, NOW);
      await s.enqueue(msg(R1, 2, 5000), big, NOW);
      await s.enqueue(msg(R1, 9, 1000, B), big, NOW);
      assert.deepEqual(await bodies(s, NOW + 2000), ["2"]);
      assert.equal(await s.queueDepth(NOW + 2000), 1);
      assert.equal(await s.expire(NOW + 2000), 2, "every account's expired messages");
      assert.equal(await s.expire(NOW + 2000), 0);
      const out = await s.enqueue(msg(R1, 3), big, NOW + 6000);
      assert.equal(out.dropped.ttl, 1);
      assert.deepEqual(await bodies(s, NOW + 6000), ["3"]);
    }));

    it("stable ids: a key queued already is not queued again; queuing moves the catch-up point", withStore(async (s) => {
      assert.equal(await s.catchUpFrom(A, R1), undefined, "no registration, no catch-up");
      await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: undefined, at: NOW }, "from the registration on");
      const first = await s.enqueue({ ...msg(R1, 1), key: "sid-1", receivedAt: NOW + 10 }, big, NOW);
      assert.equal(first.queued, true);
      const again = await s.enqueue({ ...msg(R1, 1), key: "sid-1", receivedAt: NOW + 20 }, big, NOW);
      assert.deepEqual(again, { queued: false, duplicate: true, dropped: { cap_account: 0, cap_room: 0, ttl: 0 } });
      assert.equal((await s.enqueue({ ...msg(R2, 1), key: "sid-1" }, big, NOW)).queued, true, "keys are per room");
      assert.equal((await s.enqueue({ ...msg(R1, 1, 60_000, B), key: "sid-1" }, big, NOW)).queued, true, "keys are per account");
      assert.equal((await s.enqueue(msg(R1, 2), big, NOW)).queued, true, "no key, no de-duplication");
      assert.equal((await s.enqueue(msg(R1, 3), big, NOW)).queued, true);
      assert.deepEqual(await bodies(s), ["1", "1", "2", "3"]);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: "sid-1", at: NOW + 10 });
      await s.markSeen(A, R1, "sid-9", NOW + 30);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: "sid-9", at: NOW + 30 });
      // Saving the form again keeps the point (an upsert, not a replace).
      await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: true }, NOW + 40);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: "sid-9", at: NOW + 30 });
      assert.equal((await s.registrations(A))[0]?.createdViaMucmux, true);
      // markSeen without a registration changes nothing.
      await s.markSeen(A, "nowhere@conference.localhost", "sid-x", NOW);
      assert.equal(await s.catchUpFrom(A, "nowhere@conference.localhost"), undefined);
      // A removed key may be queued again (the stage's catch-up point keeps that from happening).
      const queued = await s.pending(A, NOW, 0, 100);
      await s.remove(queued.map((m) => m.id));
      assert.equal((await s.enqueue({ ...msg(R1, 1), key: "sid-1" }, big, NOW)).queued, true);
      await s.deleteRegistration(A, R1);
      assert.equal(await s.catchUpFrom(A, R1), undefined);
    }));

    it("SCRAM verifiers: per account and hash, replaced in place, deleted one or all (SPEC A10–A13)", withStore(async (s) => {
      assert.deepEqual(await s.verifiers(A), []);
      await s.saveVerifiers([verifier("SHA-256", 1), verifier("SHA-1", 2), verifier("SHA-1", 3, B)]);
      assert.deepEqual(await s.verifiers(A), [verifier("SHA-1", 2), verifier("SHA-256", 1)]);
      await s.saveVerifiers([{ ...verifier("SHA-1", 4), hash: "SHA-1" }]);
      assert.deepEqual(await s.verifiers(A), [verifier("SHA-1", 4), verifier("SHA-256", 1)]);
      await s.saveVerifiers([]);
      assert.equal(await s.deleteVerifiers(A, "SHA-256"), 1);
      assert.equal(await s.deleteVerifiers(A, "SHA-256"), 0);
      assert.deepEqual(await s.verifiers(A), [verifier("SHA-1", 4)]);
      assert.equal(await s.deleteVerifiers(B), 1);
      assert.equal(await s.deleteVerifiers(A), 1);
      assert.deepEqual(await s.verifiers(A), []);
    }));

    it("FAST tokens: hashed lookup, expiry, the newest `keep` per agent, replay counter (SPEC A15)", withStore(async (s) => {
      await s.saveFastToken(token(1), 2, NOW);
      assert.deepEqual(await s.fastToken(A, Buffer.alloc(32, 1), NOW), token(1));
      assert.equal(await s.fastToken(A, Buffer.alloc(32, 1), NOW + 86_400_000), undefined, "expired");
      assert.equal(await s.fastToken(B, Buffer.alloc(32, 1), NOW), undefined, "another account");
      await s.saveFastToken(token(2), 2, NOW);
      await s.saveFastToken(token(3), 2, NOW);
      assert.equal(await s.fastToken(A, Buffer.alloc(32, 1), NOW), undefined, "only the newest 2 of the agent stay");
      assert.ok(await s.fastToken(A, Buffer.alloc(32, 2), NOW));
      assert.ok(await s.fastToken(A, Buffer.alloc(32, 3), NOW));
      await s.saveFastToken(token(4, "laptop"), 2, NOW);
      assert.ok(await s.fastToken(A, Buffer.alloc(32, 2), NOW), "per agent");
      // Expired tokens of the account go when a new one is saved.
      await s.saveFastToken(token(5, "old", NOW + 10), 2, NOW);
      await s.saveFastToken(token(6, "tablet"), 2, NOW + 20);
      assert.equal(await s.deleteFastTokens(A, Buffer.alloc(32, 5)), 0, "swept already");
      // The replay counter only goes up.
      assert.equal(await s.useFastToken(A, Buffer.alloc(32, 2), 0), true);
      assert.equal(await s.useFastToken(A, Buffer.alloc(32, 2), 0), false, "the same count again is a replay");
      assert.equal(await s.useFastToken(A, Buffer.alloc(32, 2), 5), true);
      assert.equal(await s.useFastToken(A, Buffer.alloc(32, 2), 3), false);
      assert.equal((await s.fastToken(A, Buffer.alloc(32, 2), NOW))?.count, 5);
      assert.equal(await s.useFastToken(A, Buffer.alloc(32, 99), 1), false, "no such token");
      assert.equal(await s.deleteFastTokens(A, Buffer.alloc(32, 2)), 1);
      assert.equal(await s.deleteFastTokens(A), 3);
      assert.equal(await s.fastToken(A, Buffer.alloc(32, 3), NOW), undefined);
    }));

    it("kept anchors: saved, replaced, listed, deleted (SPEC G6)", withStore(async (s) => {
      assert.deepEqual(await s.keptAnchors(), []);
      await s.saveKeptAnchor(B, Buffer.from([9]), NOW);
      await s.saveKeptAnchor(A, Buffer.from([1, 2, 3]), NOW);
      await s.saveKeptAnchor(A, Buffer.from([4]), NOW + 1);
      assert.deepEqual(await s.keptAnchors(), [{ account: A, sealed: Buffer.from([4]) }, { account: B, sealed: Buffer.from([9]) }]);
      await s.deleteKeptAnchor(A);
      await s.deleteKeptAnchor("nobody@localhost");
      assert.deepEqual(await s.keptAnchors(), [{ account: B, sealed: Buffer.from([9]) }]);
    }));

    it("healthy while open; closed: unhealthy and every call rejects", async () => {
      const s = await open();
      assert.equal(s.healthy(), true);
      await s.enqueue(msg(R1, 1), big, NOW);
      await close(s);
      assert.equal(s.healthy(), false);
      await assert.rejects(s.pending(A, NOW, 0, 10));
      await assert.rejects(s.enqueue(msg(R1, 2), big, NOW));
    });
  });

  if (!opts.leases) return;

  const leases = (s: ContractStore): ContractStore & LeaseStore => {
    assert.ok(s.acquire && s.setFence, `${name} implements LeaseStore`);
    return s as ContractStore & LeaseStore;
  };

  describe(`${name}: LeaseStore contract (SPEC H1–H4)`, () => {
    it("acquire: a fresh lease; the holder extends it with the same token; another replica gets the holder's lease back", withStore(async (st) => {
      const s = leases(st);
      assert.equal(await s.lease(A), undefined);
      const l = await s.acquire(A, "r1", 10_000);
      assert.equal(l.owner, "r1");
      assert.equal(l.account, A);
      assert.ok(Number.isInteger(l.token) && l.token > 0, `token ${l.token}`);
      assert.ok(l.expiresInMs > 9000 && l.expiresInMs <= 10_000, `expiresInMs ${l.expiresInMs}`);
      const again = await s.acquire(A, "r1", 20_000);
      assert.equal(again.token, l.token, "renewal keeps the token");
      assert.ok(again.expiresInMs > 19_000);
      const other = await s.acquire(A, "r2", 10_000);
      assert.deepEqual({ owner: other.owner, token: other.token }, { owner: "r1", token: l.token });
      const read = await s.lease(A);
      assert.deepEqual({ owner: read?.owner, token: read?.token }, { owner: "r1", token: l.token });
    }));

    it("two replicas racing for the same accounts: exactly one owner each, and both agree on it", async () => {
      const one = leases(await open());
      const two = leases(await open({ same: true }));
      try {
        const accounts = Array.from({ length: 25 }, (_, i) => `user${i}@localhost`);
        const results = await Promise.all(accounts.flatMap((a) => [one.acquire(a, "r1", 10_000), two.acquire(a, "r2", 10_000)]));
        for (let i = 0; i < accounts.length; i++) {
          const [x, y] = [results[2 * i]!, results[2 * i + 1]!];
          assert.equal(x.owner, y.owner, `${accounts[i]}: both see the same owner`);
          assert.equal(x.token, y.token, `${accounts[i]}: and the same token`);
          assert.ok(x.owner === "r1" || x.owner === "r2");
        }
        const tokens = new Set(results.map((r) => r.token));
        assert.equal(tokens.size, accounts.length, "a token per account");
      } finally {
        await close(two);
        await close(one);
      }
    });

    it("renew: one call for the whole map; what is no longer held comes back", withStore(async (st) => {
      const s = leases(st);
      const a = await s.acquire(A, "r1", 5000);
      const b = await s.acquire(B, "r1", 5000);
      const held = new Map([[A, a.token], [B, b.token]]);
      assert.deepEqual(await s.renew("r1", held, 30_000), []);
      const renewed = await s.lease(A);
      assert.equal(renewed?.token, a.token, "renewal keeps the token");
      assert.ok((renewed?.expiresInMs ?? 0) > 25_000);
      assert.deepEqual(await s.renew("r1", new Map([[A, a.token], [B, b.token + 1000]]), 30_000), [B], "a stale token");
      assert.deepEqual(await s.renew("r2", held, 30_000), [A, B].sort(), "another owner holds nothing");
      assert.deepEqual(await s.renew("r1", new Map([["carol@localhost", 1]]), 30_000), ["carol@localhost"], "never leased");
      assert.deepEqual(await s.renew("r1", new Map(), 30_000), []);
    }));

    it("expiry: another replica takes the lease with a larger token; the old holder cannot renew it", withStore(async (st) => {
      const s = leases(st);
      const l = await s.acquire(A, "r1", 50);
      await elapse(120, "the 50 ms lease expires on the database's clock");
      assert.ok(((await s.lease(A))?.expiresInMs ?? 1) <= 0, "expired");
      const taken = await s.acquire(A, "r2", 10_000);
      assert.equal(taken.owner, "r2");
      assert.ok(taken.token > l.token, `${taken.token} > ${l.token}`);
      assert.deepEqual(await s.renew("r1", new Map([[A, l.token]]), 10_000), [A]);
      const back = await s.acquire(A, "r1", 10_000);
      assert.equal(back.owner, "r2", "unexpired: still r2's");
    }));

    it("release: expires this owner's leases with these tokens at once, nothing else", withStore(async (st) => {
      const s = leases(st);
      const a = await s.acquire(A, "r1", 60_000);
      const b = await s.acquire(B, "r1", 60_000);
      await s.release("r2", new Map([[A, a.token]]));
      await s.release("r1", new Map([[B, b.token + 1]]));
      assert.equal((await s.acquire(A, "r2", 10_000)).owner, "r1", "not released by another owner");
      assert.equal((await s.acquire(B, "r2", 10_000)).owner, "r1", "not released with a stale token");
      await s.release("r1", new Map([[A, a.token], [B, b.token]]));
      assert.ok(((await s.lease(A))?.expiresInMs ?? 1) <= 0);
      const taken = await s.acquire(A, "r2", 10_000);
      assert.equal(taken.owner, "r2");
      assert.ok(taken.token > Math.max(a.token, b.token));
      await s.release("r1", new Map());
    }));

    it("fence (SPEC H3): enqueue, pending and markSeen act only with the current owner and token", withStore(async (st) => {
      const s = leases(st);
      let fence: { owner: string; token: number } | undefined;
      s.setFence!((account) => (account === A ? fence : undefined));
      await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
      // No lease believed held: unfenced (a single replica).
      assert.equal((await s.enqueue(msg(R1, 1), big, NOW)).queued, true);
      const l = await s.acquire(A, "r1", 60_000);
      fence = { owner: "r1", token: l.token };
      assert.equal((await s.enqueue({ ...msg(R1, 2), key: "k2" }, big, NOW)).queued, true);
      assert.deepEqual(await bodies(s), ["1", "2"]);
      await s.markSeen(A, R1, "k3", NOW + 3);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: "k3", at: NOW + 3 });
      // Another replica takes over: this one's token is stale.
      await s.release("r1", new Map([[A, l.token]]));
      const taken = await s.acquire(A, "r2", 60_000);
      assert.equal(taken.owner, "r2");
      const out = await s.enqueue({ ...msg(R1, 4), key: "k4" }, big, NOW);
      assert.deepEqual(out, { queued: false, duplicate: false, fenced: true, dropped: { cap_account: 0, cap_room: 0, ttl: 0 } });
      assert.deepEqual(await s.pending(A, NOW, 0, 100), []);
      await s.markSeen(A, R1, "k5", NOW + 5);
      assert.deepEqual(await s.catchUpFrom(A, R1), { key: "k3", at: NOW + 3 }, "markSeen did nothing");
      // An expired lease nobody took over is still its owner's (a store outage longer than the lease time must not
      // fence the owner off its accounts); the next owner's token fences it.
      fence = { owner: "r2", token: taken.token };
      assert.deepEqual(await bodies(s), ["1", "2"], "the current owner sees the queue");
      await s.release("r2", new Map([[A, taken.token]]));
      assert.equal((await s.enqueue({ ...msg(R1, 6), key: "k6" }, big, NOW)).queued, true, "expired, not taken over: still r2's");
      await s.acquire(A, "r3", 60_000);
      assert.equal((await s.enqueue({ ...msg(R1, 8), key: "k8" }, big, NOW)).fenced, true, "taken over by r3: r2 is fenced");
      // Other accounts are not fenced.
      assert.equal((await s.enqueue(msg(R1, 7, 60_000, B), big, NOW)).queued, true);
      s.setFence!(undefined);
      assert.deepEqual(await bodies(s), ["1", "2", "6"]);
    }));

    it("orphanedKeptAnchors: kept anchors whose lease expired or never existed", withStore(async (st) => {
      const s = leases(st);
      const C = "carol@localhost";
      for (const a of [A, B, C]) await s.saveKeptAnchor(a, Buffer.from([1]), NOW);
      await s.acquire(A, "r1", 60_000);
      const b = await s.acquire(B, "r1", 60_000);
      await s.release("r1", new Map([[B, b.token]]));
      await s.acquire("dave@localhost", "r1", 60_000);
      assert.deepEqual(await s.orphanedKeptAnchors(), [B, C]);
    }));

    it("replicas: heartbeat, read back on the database's clock, retire", withStore(async (st) => {
      const s = leases(st);
      assert.equal(await s.replica("r1"), undefined);
      await s.heartbeat("r1", "10.0.0.1:5270");
      const r = await s.replica("r1");
      assert.equal(r?.address, "10.0.0.1:5270");
      assert.ok((r?.seenMsAgo ?? -1) >= 0 && (r?.seenMsAgo ?? 1e9) < 5000, `seenMsAgo ${r?.seenMsAgo}`);
      await s.heartbeat("r1", "10.0.0.2:5270");
      assert.equal((await s.replica("r1"))?.address, "10.0.0.2:5270");
      await s.retire("r1");
      assert.equal(await s.replica("r1"), undefined);
    }));

    it("notifyReleased reaches another instance's onReleased", async () => {
      const one = leases(await open());
      const two = leases(await open({ same: true }));
      try {
        let heard = 0;
        const got = new Promise<void>((resolve) => {
          two.onReleased(() => {
            heard++;
            resolve();
          });
        });
        const off = one.onReleased(() => {});
        // The LISTEN connection is set up asynchronously: notify until it is heard.
        const deadline = Date.now() + 10_000;
        while (heard === 0 && Date.now() < deadline) {
          await one.notifyReleased();
          await Promise.race([got, elapse(100, "the LISTEN connection is being set up")]);
        }
        await got;
        assert.ok(heard >= 1);
        off();
      } finally {
        await close(two);
        await close(one);
      }
    });
  });
}
