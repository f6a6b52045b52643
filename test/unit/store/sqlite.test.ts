// SqliteStore (SPEC D6b, D7): registrations and the bounded offline queue, on `:memory:` and on a real
// file (WAL, migration from schema 1, survives a reopen); durability checked at start-up, damaged files
// refused, stable ids and the catch-up point (exactly once across crashes).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, openSync, closeSync, writeSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { SqliteStore, StoreError } from "../../../src/store/sqlite.js";
import type { NewQueuedMessage, Store } from "../../../src/store/store.js";
import { tmpFile } from "./helpers.js";

const A = "alice@localhost";
const R1 = "room1@conference.localhost";
const R2 = "room2@conference.localhost";
const NOW = 1_700_000_000_000;
const big = { maxPerAccount: 1000, maxPerRoom: 1000 };
const msg = (room: string, n: number, ttl = 60_000): NewQueuedMessage =>
  ({ account: A, room, stanza: `<message type='groupchat' from='${room}/bob'><body>${n}</body></message>`, receivedAt: NOW, expiresAt: NOW + ttl });
const bodies = async (s: Store, now = NOW) => (await s.pending(A, now, 0, 100)).map((m) => /<body>(\d+)</.exec(m.stanza)?.[1]);

describe("SqliteStore", () => {
  it("keeps registrations per account and room (SPEC D3/D4)", async () => {
    const s = new SqliteStore(":memory:");
    await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
    await s.saveRegistration({ account: A, room: R2, nick: "al", offline: false, createdViaMucmux: true }, NOW);
    await s.saveRegistration({ account: "bob@localhost", room: R1, nick: "bob", offline: true, createdViaMucmux: true }, NOW);
    const regs = (await s.registrations(A)).sort((a, b) => a.room.localeCompare(b.room));
    assert.deepEqual(regs, [
      { account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false },
      { account: A, room: R2, nick: "al", offline: false, createdViaMucmux: true },
    ]);
    await s.saveRegistration({ account: A, room: R1, nick: "alice2", offline: false, createdViaMucmux: false }, NOW);
    assert.equal((await s.registrations(A)).find((r) => r.room === R1)?.nick, "alice2");
    await s.deleteRegistration(A, R1);
    assert.deepEqual((await s.registrations(A)).map((r) => r.room), [R2]);
    s.close();
  });

  it("queues in order, pages by id and removes only what it is told to", async () => {
    const s = new SqliteStore(":memory:");
    for (let i = 1; i <= 5; i++) assert.equal((await s.enqueue(msg(i % 2 ? R1 : R2, i), big, NOW)).queued, true);
    assert.deepEqual(await bodies(s), ["1", "2", "3", "4", "5"]);
    const first = await s.pending(A, NOW, 0, 2);
    assert.equal(first.length, 2);
    const rest = await s.pending(A, NOW, first[1]!.id, 100);
    assert.deepEqual(rest.map((m) => m.id), (await s.pending(A, NOW, 0, 100)).slice(2).map((m) => m.id));
    await s.remove([first[0]!.id, first[1]!.id]);
    assert.deepEqual(await bodies(s), ["3", "4", "5"]);
    assert.equal(await s.queueDepth(NOW), 3);
    assert.deepEqual(await s.pending("bob@localhost", NOW, 0, 100), []);
    s.close();
  });

  it("enforces the per-room and per-account caps by dropping the oldest", async () => {
    const s = new SqliteStore(":memory:");
    const caps = { maxPerAccount: 3, maxPerRoom: 2 };
    assert.deepEqual((await s.enqueue(msg(R1, 1), caps, NOW)).dropped, { cap_account: 0, cap_room: 0, ttl: 0 });
    await s.enqueue(msg(R1, 2), caps, NOW);
    assert.deepEqual((await s.enqueue(msg(R1, 3), caps, NOW)).dropped, { cap_account: 0, cap_room: 1, ttl: 0 });
    assert.deepEqual(await bodies(s), ["2", "3"]);
    await s.enqueue(msg(R2, 4), caps, NOW);
    assert.deepEqual((await s.enqueue(msg(R2, 5), caps, NOW)).dropped, { cap_account: 1, cap_room: 0, ttl: 0 });
    assert.deepEqual(await bodies(s), ["3", "4", "5"]);
    const none = await s.enqueue(msg(R1, 6), { maxPerAccount: 10, maxPerRoom: 0 }, NOW);
    assert.deepEqual(none, { queued: false, duplicate: false, dropped: { cap_account: 0, cap_room: 1, ttl: 0 } });
    s.close();
  });

  it("expires messages after their TTL: never pending, swept by expire() and by enqueue()", async () => {
    const s = new SqliteStore(":memory:");
    await s.enqueue(msg(R1, 1, 1000), big, NOW);
    await s.enqueue(msg(R1, 2, 5000), big, NOW);
    assert.deepEqual(await bodies(s, NOW + 2000), ["2"]);
    assert.equal(await s.queueDepth(NOW + 2000), 1);
    assert.equal(await s.expire(NOW + 2000), 1);
    const out = await s.enqueue(msg(R1, 3), big, NOW + 6000);
    assert.equal(out.dropped.ttl, 1);
    assert.deepEqual(await bodies(s, NOW + 6000), ["3"]);
    s.close();
  });

  it("a real file: WAL, migrated from schema 1, everything survives a reopen", async () => {
    const file = tmpFile();
    const v1 = new Database(file);
    v1.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '1')");
    v1.close();
    const s = new SqliteStore(file);
    await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: true }, NOW);
    await s.enqueue(msg(R1, 1), big, NOW);
    assert.ok(existsSync(`${file}-wal`), "WAL mode");
    s.close();
    const again = new SqliteStore(file);
    assert.equal((await again.registrations(A))[0]?.offline, true);
    assert.deepEqual(await bodies(again), ["1"]);
    // SPEC G6: kept anchors (schema 6) survive a reopen too.
    await again.saveKeptAnchor(A, Buffer.from([1, 2, 3]), NOW);
    again.close();
    const third = new SqliteStore(file);
    assert.deepEqual(await third.keptAnchors(), [{ account: A, sealed: Buffer.from([1, 2, 3]) }]);
    await third.deleteKeptAnchor(A);
    assert.deepEqual(await third.keptAnchors(), []);
    third.close();
    const raw = new Database(file, { readonly: true });
    assert.equal((raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, "6");
    assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
    raw.close();
  });

  it("refuses a store written by a newer mucmux", () => {
    const file = tmpFile();
    const db = new Database(file);
    db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99')");
    db.close();
    assert.throws(() => new SqliteStore(file), /schema version 99/);
  });

  it("start-up: journal_mode=wal and synchronous=FULL in effect (memory: 'memory'), read back", () => {
    const file = tmpFile();
    const s = new SqliteStore(file);
    assert.deepEqual(s.pragmas(), { journalMode: "wal", synchronous: 2 });
    s.close();
    const m = new SqliteStore(":memory:");
    assert.deepEqual(m.pragmas(), { journalMode: "memory", synchronous: 2 });
    m.close();
  });

  it("start-up: a damaged file fails PRAGMA quick_check and is refused with a clear error", async () => {
    const file = tmpFile();
    const s = new SqliteStore(file);
    const pad = "x".repeat(400);
    for (let i = 0; i < 300; i++) await s.enqueue({ ...msg(R1, i), stanza: `<message><body>${i} ${pad}</body></message>` }, big, NOW);
    s.close(); // checkpoints the WAL into the file
    const size = statSync(file).size;
    assert.ok(size > 40 * 4096, `several pages (${size} bytes)`);
    // Garbage over interior pages (not page 1, so the file still opens as a database).
    const fd = openSync(file, "r+");
    for (const page of [5, 9, 17]) writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, page * 4096 + 0);
    closeSync(fd);
    assert.throws(() => new SqliteStore(file), (err: unknown) => {
      assert.ok(err instanceof StoreError, String(err));
      assert.equal(err.code, "ERR_MUCMUX_STORE");
      assert.ok(err.message.includes(file), err.message);
      assert.match(err.message, /integrity check|malformed/);
      assert.doesNotMatch(err.message, /xxxx/, "no row contents in the message");
      return true;
    });
  });

  it("stable ids: a key queued already is not queued again; queuing moves the catch-up point", async () => {
    const s = new SqliteStore(":memory:");
    assert.equal(await s.catchUpFrom(A, R1), undefined, "no registration, no catch-up");
    await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
    assert.deepEqual(await s.catchUpFrom(A, R1), { key: undefined, at: NOW }, "from the registration on");
    const first = await s.enqueue({ ...msg(R1, 1), key: "sid-1", receivedAt: NOW + 10 }, big, NOW);
    assert.equal(first.queued, true);
    const again = await s.enqueue({ ...msg(R1, 1), key: "sid-1", receivedAt: NOW + 20 }, big, NOW);
    assert.deepEqual({ queued: again.queued, duplicate: again.duplicate }, { queued: false, duplicate: true });
    assert.equal((await s.enqueue({ ...msg(R2, 1), key: "sid-1" }, big, NOW)).queued, true, "keys are per room");
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
    // A delivered (removed) message may come again with its key: it is new to the queue then; the
    // stage's catch-up point keeps that from happening (test/integration/faults-kill.test.ts).
    await s.deleteRegistration(A, R1);
    assert.equal(await s.catchUpFrom(A, R1), undefined);
    s.close();
  });
});
