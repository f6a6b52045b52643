/**
 * Which domains are MUC services. Three sources: `muc.services` (when set, the only one), discovery
 * through the server (XEP-0030, per served domain, refreshed hourly), and disco#info answers clients
 * asked for that were seen passing by (learn()). isService() is a Set lookup: it runs per stanza.
 */
import { LRUCache } from "lru-cache";
import type { Config } from "../config/index.js";
import type { Logger } from "../log.js";
import { runDiscovery, type RunOutcome } from "./run.js";
import { serviceDomain, type IqQuery } from "./xep0030.js";

export { hasMucIdentity } from "./xep0030.js";

export type { IqQuery } from "./xep0030.js";

export interface MucServices {
  /** Is `domain` (any case) a MUC service: configured, discovered, or learned? Synchronous, cheap (a Set lookup): called per stanza. */
  isService(domain: string): boolean;
  /** Discovery for served domain `served` ran to an end at least once (success, error or timeout); resolves at once when `muc.services` is configured or when it already did. Never rejects. Bounded: resolves after at most `waitMs`. */
  ready(served: string, waitMs?: number): Promise<void>;
  /** What ready() waits for has happened: discovery for `served` ended at least once, or the services are configured. */
  settled(served: string): boolean;
  /** Start discovery for `served` through `query` if it never ran, or if the last run is older than the refresh interval, or failed (retry no sooner than a backoff). Cheap to call on every login. */
  discover(served: string, query: IqQuery): void;
  /** A disco#info result seen passing by (a client asked): the caller checked its identity (hasMucIdentity); learns `domain` (bounded, least recently learned dropped first). */
  learn(domain: string): void;
  /** Snapshot for logs/metrics/tests. */
  list(): string[];
  close(): void;
}

/** A successful run is repeated after this long (timer, and discover() once it is due). */
export const REFRESH_MS = 60 * 60_000;
/** A failed run is retried after this long, doubling per consecutive failure up to REFRESH_MS. */
export const RETRY_MIN_MS = 30_000;
/** ready()'s bound when the caller gives none. */
export const READY_WAIT_MS = 2_000;
/** Domains kept by learn(). */
export const MAX_LEARNED = 1024;

/** Discovery state of one served domain. */
interface Served {
  query: IqQuery | undefined;
  services: Set<string>;
  running: boolean;
  /** When the last run ended (deps.now), undefined before the first. */
  endedAt: number | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  waiters: Set<() => void>;
}

export function createMucServices(deps: { config: Config; log: Logger; now?: () => number }): MucServices {
  const now = deps.now ?? Date.now;
  const configured = deps.config.muc.services?.length ? new Set(deps.config.muc.services.map((d) => d.toLowerCase())) : undefined;
  const served = new Map<string, Served>();
  const learned = new LRUCache<string, true>({ max: MAX_LEARNED });
  let discovered = new Set<string>();
  const stop = new AbortController();

  const stateOf = (name: string): Served => {
    let st = served.get(name);
    if (!st) served.set(name, (st = { query: undefined, services: new Set(), running: false, endedAt: undefined, failures: 0, timer: undefined, waiters: new Set() }));
    return st;
  };
  const retryMs = (failures: number) => Math.min(RETRY_MIN_MS * 2 ** Math.max(0, failures - 1), REFRESH_MS);

  const start = (name: string, st: Served, query: IqQuery) => {
    clearTimeout(st.timer);
    st.timer = undefined;
    st.running = true;
    // runDiscovery does not reject; should it ever, the run still ends (as an error) so that it can be retried.
    void runDiscovery(name, query, st.services, stop.signal)
      .then((outcome) => finish(name, st, outcome), () => finish(name, st, { ok: false, reason: "error" }));
  };

  const finish = (name: string, st: Served, outcome: RunOutcome) => {
    st.running = false;
    if (stop.signal.aborted) return;
    st.endedAt = now();
    if (outcome.ok) {
      st.failures = 0;
      st.services = outcome.services;
      discovered = new Set([...served.values()].flatMap((s) => [...s.services]));
      const extra = { ...(outcome.unanswered ? { unanswered: outcome.unanswered } : {}), ...(outcome.leftOut ? { leftOut: outcome.leftOut } : {}) };
      deps.log.info({ served: name, services: [...outcome.services].sort(), ...extra }, "muc services discovered");
    } else {
      st.failures++;
      deps.log.warn({ served: name, reason: outcome.reason, retrySeconds: retryMs(st.failures) / 1000 },
        "muc service discovery failed; keeping the services known before");
    }
    for (const resolve of st.waiters) resolve();
    st.waiters.clear();
    st.timer = setTimeout(() => {
      if (st.query && !st.running) start(name, st, st.query);
    }, st.failures ? retryMs(st.failures) : REFRESH_MS);
    st.timer.unref();
  };

  return {
    isService(name) {
      const domain = name.toLowerCase();
      if (configured) return configured.has(domain);
      return discovered.has(domain) || learned.has(domain);
    },

    ready(name, waitMs = READY_WAIT_MS) {
      if (configured || stop.signal.aborted) return Promise.resolve();
      const st = stateOf(name.toLowerCase());
      if (st.endedAt !== undefined) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          st.waiters.delete(done);
          resolve();
        };
        // A timer's delay is a signed 32-bit number of ms; NaN and negatives mean at once.
        const timer = setTimeout(done, Math.min(Math.max(0, waitMs) || 0, 2 ** 31 - 1));
        timer.unref();
        st.waiters.add(done);
      });
    },

    settled(name) {
      return configured !== undefined || stop.signal.aborted || served.get(name.toLowerCase())?.endedAt !== undefined;
    },

    discover(name, query) {
      if (configured || stop.signal.aborted) return;
      const key = name.toLowerCase();
      const st = stateOf(key);
      st.query = query;
      if (st.running) return;
      const due = st.endedAt === undefined || now() - st.endedAt >= (st.failures ? retryMs(st.failures) : REFRESH_MS);
      if (due) start(key, st, query);
    },

    learn(domain) {
      if (configured || stop.signal.aborted) return;
      const name = serviceDomain(domain);
      if (name !== undefined) learned.set(name, true);
    },

    list() {
      if (configured) return [...configured].sort();
      return [...new Set([...discovered, ...learned.keys()])].sort();
    },

    close() {
      stop.abort();
      for (const st of served.values()) {
        clearTimeout(st.timer);
        st.timer = undefined;
        for (const resolve of st.waiters) resolve();
        st.waiters.clear();
      }
    },
  };
}
