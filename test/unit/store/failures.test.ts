// The store failing at runtime (the offline store, SPEC D): read-only underneath an open store, or closed. Every failure is
// counted and logged by the instrumented store, reads keep working where they can, and nothing already
// stored is lost.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite.js";
import { instrumentStore } from "../../../src/store/instrumented.js";
import { createMetrics, type Metrics } from "../../../src/metrics/metrics.js";
import { createLogger } from "../../../src/log.js";
import type { NewQueuedMessage } from "../../../src/store/store.js";
import { makeReadOnly, tmpFile } from "./helpers.js";

const A = "alice@localhost";
const R = "room@conference.localhost";
const NOW = 1_700_000_000_000;
const caps = { maxPerAccount: 10, maxPerRoom: 10 };
const msg = (n: number): NewQueuedMessage =>
  ({ account: A, room: R, stanza: `<message type='groupchat'><body>${n}</body></message>`, receivedAt: NOW, expiresAt: NOW + 60_000 });

async function errors(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.storeErrors.get()).values) out[String(v.labels.op)] = v.value;
  return out;
}

function setup(file: string) {
  const metrics = createMetrics({ version: "test", commit: "test" });
  const lines: string[] = [];
  const log = createLogger("warn", { write: (l: string) => void lines.push(l) });
  const inner = new SqliteStore(file);
  return { metrics, lines, inner, store: instrumentStore(inner, { metrics, log }) };
}

/**
 * Where chattr +i is not allowed (containers without CAP_LINUX_IMMUTABLE, overlay file systems), SQLite's
 * own read-only switch on the store's connection stands in: every write fails the same way for the store.
 */
function queryOnly(inner: SqliteStore): () => void {
  const db = (inner as unknown as { db: { pragma(s: string): unknown } }).db;
  db.pragma("query_only = ON");
  return () => void db.pragma("query_only = OFF");
}

describe("store failures at runtime", () => {
  it("read-only underneath: writes fail (counted, logged), reads work, nothing stored is lost", async () => {
    const file = tmpFile();
    const { metrics, lines, inner, store } = setup(file);
    await store.saveRegistration({ account: A, room: R, nick: "alice", offline: true, createdViaMucmux: false }, NOW);
    await store.enqueue(msg(1), caps, NOW);
    await store.enqueue(msg(2), caps, NOW);
    const restore = makeReadOnly(file) ?? queryOnly(inner);
    try {
      await assert.rejects(store.enqueue(msg(3), caps, NOW));
      await assert.rejects(store.saveRegistration({ account: A, room: R, nick: "alice", offline: false, createdViaMucmux: false }, NOW));
      const pending = await store.pending(A, NOW, 0, 10);
      assert.equal(pending.length, 2, "reads still work");
      await assert.rejects(store.remove(pending.map((m) => m.id)));
      assert.deepEqual(await errors(metrics), { enqueue: 1, save_registration: 1, remove: 1 });
      assert.equal(lines.filter((l) => l.includes("store operation failed")).length, 3);
      assert.ok(!lines.some((l) => l.includes("<body>")), "no message text in the log");
    } finally {
      restore();
    }
    store.close();
    const again = new SqliteStore(file);
    assert.equal((await again.pending(A, NOW, 0, 10)).length, 2, "both messages are still there");
    assert.equal((await again.registrations(A))[0]?.offline, true, "the flag is as it was");
    again.close();
  });

  it("closed (unavailable): every operation fails and is counted; the file keeps everything", async () => {
    const file = tmpFile();
    const { metrics, store } = setup(file);
    await store.enqueue(msg(1), caps, NOW);
    store.close();
    assert.equal(store.healthy(), false);
    await assert.rejects(store.enqueue(msg(2), caps, NOW));
    await assert.rejects(store.pending(A, NOW, 0, 10));
    await assert.rejects(store.registrations(A));
    assert.deepEqual(await errors(metrics), { enqueue: 1, pending: 1, registrations: 1 });
    const again = new SqliteStore(file);
    assert.equal((await again.pending(A, NOW, 0, 10)).length, 1);
    again.close();
  });

  it("operation latency is observed per operation", async () => {
    const { metrics, store } = setup(":memory:");
    await store.enqueue(msg(1), caps, NOW);
    await store.queueDepth(NOW);
    const text = await metrics.registry.metrics();
    assert.match(text, /mucmux_store_operation_duration_seconds_count\{op="enqueue"\} 1/);
    assert.match(text, /mucmux_store_operation_duration_seconds_count\{op="queue_depth"\} 1/);
    store.close();
  });
});
