// Which store this process uses: the SQLite file (store.path, the embedded default), or PostgreSQL shared by several
// replicas when store.url is set (SPEC H). The one place that knows both; app.ts wraps what it returns with the
// instrumentation, and the cluster code takes the leases and sets the fence.
import type { Config } from "../config/index.js";
import type { Logger } from "../log.js";
import { PgStore, describePgUrl } from "./pg.js";
import { SqliteStore } from "./sqlite.js";
import type { Fence, LeaseStore, Store } from "./store.js";

export interface OpenedStore {
  /** The durable store (not instrumented: the caller wraps it). */
  store: Store;
  /** The account leases: PostgreSQL only (undefined with SQLite: one replica owns its file). */
  leases: LeaseStore | undefined;
  /** SPEC H3: the lease check enqueue, pending and markSeen apply (a no-op with SQLite). */
  setFence(f: Fence): void;
}

/** Opens the configured store; rejects with a StoreError (file refused, PostgreSQL unreachable, newer schema). */
export async function openStore(config: Pick<Config, "store">, log: Logger): Promise<OpenedStore> {
  const { url, path, poolSize, timeoutSeconds } = config.store;
  if (url === undefined) {
    const sqlite = new SqliteStore(path); // refuses a damaged file or non-durable commits
    log.info({ store: path, ...sqlite.pragmas(), quickCheck: "ok" }, "store opened");
    return { store: sqlite, leases: undefined, setFence: () => {} };
  }
  const pg = await PgStore.open(url, { poolSize, timeoutMs: timeoutSeconds * 1000, log });
  // host, port and database only: store.url carries the password.
  log.info({ store: "postgres", ...describePgUrl(url), poolSize }, "store opened");
  return { store: pg, leases: pg, setFence: (f) => pg.setFence(f) };
}

/** Closes the store, waiting for a networked store's connections to end where it can. */
export async function endStore(store: Store): Promise<void> {
  if (store instanceof PgStore) await store.end();
  else store.close();
}
