// SqliteStore (SPEC D6b, D7), what only the SQLite store has: a real file (WAL, migration from schema 1 and down
// again, survives a reopen), durability checked at start-up, damaged files refused. What every store does is in
// contract.ts (sqlite-contract.test.ts runs it here).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, openSync, closeSync, writeSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { SqliteStore, StoreError } from "../../../src/store/sqlite.js";
import type { NewQueuedMessage, Store } from "../../../src/store/store.js";
import { migrate, SCHEMA_VERSION } from "../../../src/store/schema.js";
import { tmpFile } from "./helpers.js";

const A = "alice@localhost";
const R1 = "room1@conference.localhost";
const NOW = 1_700_000_000_000;
const big = { maxPerAccount: 1000, maxPerRoom: 1000 };
const msg = (room: string, n: number, ttl = 60_000): NewQueuedMessage =>
  ({ account: A, room, stanza: `<message type='groupchat' from='${room}/bob'><body>${n}</body></message>`, receivedAt: NOW, expiresAt: NOW + ttl });
const bodies = async (s: Store, now = NOW) => (await s.pending(A, now, 0, 100)).map((m) => /<body>(\d+)</.exec(m.stanza)?.[1]);

describe("SqliteStore", () => {
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

  it("migrations go down to 0 and up again, step by step, each version's tables as they were", () => {
    const db = new Database(":memory:");
    const shape = () => db.prepare("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();
    const version = () => Number((db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value);
    assert.equal(migrate(db, ":memory:"), 0);
    const latest = shape();
    const shapes: unknown[] = [];
    for (let v = SCHEMA_VERSION - 1; v >= 0; v--) {
      assert.equal(migrate(db, ":memory:", v), v + 1);
      assert.equal(version(), v);
      shapes[v] = shape();
    }
    assert.deepEqual(shapes[0], [{ name: "meta", sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)" }]);
    // Up one step at a time: each version looks as it did on the way down.
    for (let v = 1; v < SCHEMA_VERSION; v++) {
      migrate(db, ":memory:", v);
      assert.deepEqual(shape(), shapes[v], `version ${v}`);
    }
    migrate(db, ":memory:");
    assert.equal(version(), SCHEMA_VERSION);
    assert.deepEqual(shape(), latest);
    assert.throws(() => migrate(db, ":memory:", SCHEMA_VERSION + 1), /no schema version/);
    db.close();
    // A store with data goes down to 3 and back up: what versions 1–3 had is kept.
    const file = tmpFile();
    const s = new SqliteStore(file);
    return (async () => {
      await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
      await s.enqueue({ ...msg(R1, 1), key: "sid-1" }, big, NOW);
      await s.saveKeptAnchor(A, Buffer.from([1]), NOW);
      s.close();
      const raw = new Database(file);
      migrate(raw, file, 3);
      raw.close();
      const again = new SqliteStore(file);
      assert.deepEqual(await bodies(again), ["1"]);
      assert.deepEqual(await again.catchUpFrom(A, R1), { key: "sid-1", at: NOW });
      assert.deepEqual(await again.keptAnchors(), [], "kept anchors (version 6) went with their table");
      again.close();
    })();
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

});
