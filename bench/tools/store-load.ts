// What one room message costs the store, PostgreSQL (several replicas, SPEC H) beside SQLite (one replica): per-call
// latency (p50/p99, one call at a time) and throughput (CONCURRENCY calls in flight) of the Store calls a room message
// makes: queued for an offline account (`enqueue` with the room's stanza-id as key, fenced by the account's lease as
// a replica does), delivered (`pending` + `remove`, one message and a page of 100), the catch-up point of an online
// account (`markSeen`), and the leases (`acquire`, `renew` of 1000 accounts). A throwaway PostgreSQL 15 on loopback
// (test/support/postgres.ts: fsync on, scram) and a SQLite file under test/.tmp; statements per call are counted at the
// driver (every pg.Client#query, BEGIN and COMMIT included; the store's 2 s health probe left out).
// `node --import tsx bench/tools/store-load.ts [RUNS] [N]` (default 3 runs of N = 1000 calls per figure); prints a
// markdown table of medians over the runs. Not part of `npm run bench`.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pg from "pg";

import { TEST_TMP } from "../../test/support/certs.js";
import { startPostgres } from "../../test/support/postgres.js";
import { createLogger } from "../../src/log.js";
import { PgStore } from "../../src/store/pg.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { Store } from "../../src/store/store.js";
import { loadAverage } from "../lib/procfs.js";
import { median, percentileSorted, sortedCopy } from "../lib/stats.js";

const RUNS = Number(process.argv[2] ?? 3);
const N = Number(process.argv[3] ?? 1000);
const CONCURRENCY = 8;
const PAGES = 15; // accounts with a page of 100 messages, one at a time (and as many again in flight)
const POOL = 10; // store.poolSize's default
const ROOM = "bench@conference.localhost";
const LIMITS = { maxPerAccount: 1000, maxPerRoom: 200 }; // the config defaults
const OWNER = "store-load-r0";
const TTL = 60_000;
// A room message as mucmux queues it: canonical XML without `to`, ~420 bytes.
const STANZA = (i: number) => `<message from='${ROOM}/someone' type='groupchat' id='m${i}' xmlns='jabber:client'>` +
  `<body>${"A room message of an ordinary length, a sentence or two. ".repeat(4)}</body>` +
  `<stanza-id xmlns='urn:xmpp:sid:0' id='sid-${i}' by='${ROOM}'/></message>`;

// Statements sent to PostgreSQL, counted at the driver.
let statements = 0;
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string } | undefined)?.text;
  if (text !== "SELECT 1") statements++;
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;

interface OpResult { p50: number; p99: number; perSec: number; statements: number; perCall: number }
type Row = { op: string; store: string; unit: number; results: OpResult[] };

/** `fn(i)` for i < n one at a time (latency) and, on a fresh index range, CONCURRENCY at a time (throughput). */
async function measure(n: number, fn: (i: number) => Promise<unknown>, opts: { unit?: number; serial?: boolean } = {}): Promise<OpResult> {
  const lat = new Float64Array(n);
  const s0 = statements;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    lat[i] = performance.now() - t0;
  }
  const stmts = statements - s0;
  const sorted = sortedCopy(lat);
  let seconds = lat.reduce((a, b) => a + b, 0) / 1000;
  if (!opts.serial) {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < n; i = next++) await fn(i + n);
    }));
    seconds = (performance.now() - t0) / 1000;
  }
  return { p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99), perSec: (n * (opts.unit ?? 1)) / seconds, statements: stmts / n, perCall: opts.unit ?? 1 };
}

const account = (prefix: string, i: number) => `${prefix}${i}@localhost`;

async function runStore(name: string, store: Store, leases: PgStore | undefined, run: number): Promise<Row[]> {
  const rows: Row[] = [];
  const add = (op: string, unit: number, r: OpResult) => rows.push({ op, store: name, unit, results: [r] });
  const now = () => Date.now();
  const p = `r${run}-`;
  // N accounts for the sequential calls, N more for the concurrent ones; each registered in ROOM and leased.
  const accounts = Array.from({ length: 2 * N }, (_, i) => account(p, i));
  const tokens = new Map<string, number>();
  for (const a of accounts) {
    await store.saveRegistration({ account: a, room: ROOM, nick: "n", offline: true, createdViaMucmux: true }, now());
    if (leases) tokens.set(a, (await leases.acquire(a, OWNER, TTL)).token);
  }
  leases?.setFence((a) => (tokens.has(a) ? { owner: OWNER, token: tokens.get(a) as number } : undefined));
  let seq = 0;
  const enqueue = (a: string) => {
    const i = seq++;
    const t = now();
    return store.enqueue({ account: a, room: ROOM, stanza: STANZA(i), receivedAt: t, expiresAt: t + 86_400_000, key: `sid-${run}-${i}` }, LIMITS, t);
  };
  // 1. A room message queued for an offline account: one per account.
  add("enqueue (with key, fenced on PostgreSQL)", 1, await measure(N, (i) => enqueue(accounts[i] as string)));
  // 2. Delivered at the account's next login: pending (the page holds the one message), then remove.
  const ids: number[] = new Array<number>(2 * N).fill(0);
  add("pending (1 message queued)", 1, await measure(N, async (i) => {
    const page = await store.pending(accounts[i] as string, now(), 0, 100);
    ids[i] = page[0]?.id ?? 0;
    if (!page[0]) throw new Error(`${name}: nothing pending for ${accounts[i]}`);
  }));
  add("remove (1 id)", 1, await measure(N, (i) => store.remove([ids[i] as number])));
  // 3. A page of 100: 100 messages for each of a few accounts, read and removed at once.
  const pageAccounts = accounts.slice(0, 2 * PAGES);
  for (const a of pageAccounts) for (let k = 0; k < 100; k++) await enqueue(a);
  const pageIds: number[][] = [];
  const half = pageAccounts.length / 2;
  add("pending (page of 100), per message", 100, await measure(half, async (i) => {
    const page = await store.pending(pageAccounts[i] as string, now(), 0, 100);
    if (page.length !== 100) throw new Error(`${name}: page of ${page.length}`);
    pageIds[i] = page.map((m) => m.id);
  }, { unit: 100 }));
  add("remove (100 ids), per message", 100, await measure(half, (i) => store.remove(pageIds[i] ?? []), { unit: 100 }));
  // 4. The catch-up point of an account whose anchor received the message (debounced per account·room in mucmux).
  add("markSeen", 1, await measure(N, (i) => store.markSeen(accounts[i] as string, ROOM, `seen-${run}-${i}`, now())));
  if (leases) {
    // 5. Leases: a new account's lease (insert), one's own extended, and the renewal of 1000 held leases in one call.
    add("acquire (new account)", 1, await measure(N, (i) => leases.acquire(account(`${p}new-`, i), OWNER, TTL)));
    add("acquire (own lease, extended)", 1, await measure(N, (i) => leases.acquire(accounts[i % N] as string, OWNER, TTL)));
    const held = new Map([...tokens].slice(0, 1000));
    for (let i = 0; held.size < 1000; i++) held.set(account(`${p}held-`, i), (await leases.acquire(account(`${p}held-`, i), OWNER, TTL)).token);
    const reps = Math.max(20, Math.round(N / 20));
    // One replica renews its leases in one call at a time: throughput here is one call after the other.
    add("renew (1000 leases in one call)", 1, await measure(reps, async () => {
      const lost = await leases.renew(OWNER, held, TTL);
      if (lost.length) throw new Error(`renew lost ${lost.length} leases`);
    }, { serial: true }));
  }
  leases?.setFence(undefined);
  return rows;
}

function merge(all: Row[][]): Row[] {
  const out: Row[] = [];
  for (const rows of all) {
    for (const r of rows) {
      const have = out.find((o) => o.op === r.op && o.store === r.store);
      if (have) have.results.push(...r.results);
      else out.push({ ...r, results: [...r.results] });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const load0 = loadAverage();
  const started = new Date();
  const log = createLogger("warn");
  const pgServer = await startPostgres({ name: "store-load" });
  const dir = fs.mkdtempSync(path.join(TEST_TMP, "store-load-"));
  const results: Row[][] = [];
  try {
    const pgStore = await PgStore.open(pgServer.url, { poolSize: POOL, timeoutMs: 5000, log });
    const sqlite = new SqliteStore(path.join(dir, "store.sqlite"));
    try {
      for (let run = 0; run < RUNS; run++) {
        results.push(await runStore("PostgreSQL", pgStore, pgStore, run));
        results.push(await runStore("SQLite", sqlite, undefined, run));
        process.stderr.write(`run ${run + 1}/${RUNS} done, load average ${loadAverage().join(" ")}\n`);
      }
    } finally {
      await pgStore.end();
      sqlite.close();
    }
  } finally {
    await pgServer.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const load1 = loadAverage();
  const cpu = os.cpus();
  console.log(`Store load, ${started.toISOString().slice(0, 16).replace("T", " ")} UTC: ${cpu.length} × ${cpu[0]?.model ?? "?"}, ` +
    `Node ${process.version}, PostgreSQL 15 on loopback (fsync on, pool ${POOL}), SQLite (WAL, synchronous FULL); ` +
    `${RUNS} runs of ${N} calls per figure (pages: ${PAGES} per run, each way); load average ${load0.join(" ")} at the start, ${load1.join(" ")} at the end.`);
  console.log("Medians over the runs; latency: one call at a time; throughput: " + CONCURRENCY + " calls in flight (renew: one at a time); " +
    "\"per message\" rows divide by the 100 messages of the page.\n");
  console.log("| call | store | statements per call | p50 ms | p99 ms | per second | runs |");
  console.log("|---|---|--:|--:|--:|--:|--:|");
  for (const r of merge(results)) {
    const m = (f: (x: OpResult) => number) => median(r.results.map(f));
    const per = r.unit > 1 ? r.unit : 1;
    const unit = r.unit > 1 ? " msg" : "";
    // statements per call: per page for the page rows.
    console.log(`| ${r.op} | ${r.store} | ${r.store === "SQLite" ? "—" : m((x) => x.statements).toFixed(1)} | ` +
      `${(m((x) => x.p50) / per).toFixed(3)} | ${(m((x) => x.p99) / per).toFixed(3)} | ${m((x) => x.perSec).toFixed(0)}${unit} | ${r.results.length} |`);
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(`store-load: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
