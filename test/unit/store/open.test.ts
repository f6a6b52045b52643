// openStore without store.url: the SQLite file, its "store opened" line as before, no leases, a no-op fence hook.
// (With store.url: test/integration/store-pg.test.ts.)
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore, endStore } from "../../../src/store/open.js";
import { SqliteStore } from "../../../src/store/sqlite.js";
import { createLogger } from "../../../src/log.js";
import { tmpFile } from "./helpers.js";

describe("openStore", () => {
  it("store.url unset: the SQLite store at store.path, logged with its pragmas", async () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (l: string) => void lines.push(l) });
    const file = tmpFile();
    const opened = await openStore({ store: { path: file, poolSize: 10, timeoutSeconds: 5 } }, log);
    assert.ok(opened.store instanceof SqliteStore);
    assert.equal(opened.leases, undefined);
    opened.setFence(() => ({ owner: "r1", token: 1 }));
    const now = Date.now();
    const out = await opened.store.enqueue({ account: "a@localhost", room: "r@conference.localhost", stanza: "<message/>", receivedAt: now, expiresAt: now + 1000 },
      { maxPerAccount: 10, maxPerRoom: 10 }, now);
    assert.equal(out.queued, true, "SQLite has no fence");
    const line = JSON.parse(lines.find((l) => l.includes("store opened")) ?? "{}") as Record<string, unknown>;
    assert.deepEqual({ store: line.store, journalMode: line.journalMode, synchronous: line.synchronous, quickCheck: line.quickCheck },
      { store: file, journalMode: "wal", synchronous: 2, quickCheck: "ok" });
    await endStore(opened.store);
    assert.equal(opened.store.healthy(), false);
  });
});
