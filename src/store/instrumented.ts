// Wraps any Store with what operators need to see: the latency of every operation, and its failures
// counted and logged (a read-only or unavailable store must never go unnoticed, nor take anything down).
// Errors are re-thrown: the caller decides what a failure means (SPEC D6: nothing stored is lost).
import type { LeaseStore, Store } from "./store.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";

type Timed = <A extends unknown[], R>(op: string, fn: (...args: A) => Promise<R>) => (...args: A) => Promise<R>;

/** Wraps one store call: its duration observed, a failure counted, logged and re-thrown. */
function timer(deps: { metrics: Metrics; log: Logger }): Timed {
  const { metrics, log } = deps;
  return (op, fn) =>
    async (...args) => {
      const end = metrics.storeOperationDuration.startTimer({ op });
      try {
        return await fn(...args);
      } catch (err) {
        metrics.storeErrors.inc({ op });
        log.warn({ op, err: err instanceof Error ? err.message : String(err) }, "store operation failed");
        throw err;
      } finally {
        end();
      }
    };
}

export function instrumentStore(inner: Store, deps: { metrics: Metrics; log: Logger }): Store {
  const timed = timer(deps);
  return {
    healthy: () => inner.healthy(),
    close: () => inner.close(),
    registrations: timed("registrations", (a) => inner.registrations(a)),
    saveRegistration: timed("save_registration", (r, now) => inner.saveRegistration(r, now)),
    deleteRegistration: timed("delete_registration", (a, r) => inner.deleteRegistration(a, r)),
    enqueue: timed("enqueue", (m, l, now) => inner.enqueue(m, l, now)),
    pending: timed("pending", (a, now, after, limit) => inner.pending(a, now, after, limit)),
    remove: timed("remove", (ids) => inner.remove(ids)),
    expire: timed("expire", (now) => inner.expire(now)),
    queueDepth: timed("queue_depth", (now) => inner.queueDepth(now)),
    markSeen: timed("mark_seen", (a, r, k, now) => inner.markSeen(a, r, k, now)),
    catchUpFrom: timed("catch_up_from", (a, r) => inner.catchUpFrom(a, r)),
    verifiers: timed("verifiers", (a) => inner.verifiers(a)),
    saveVerifiers: timed("save_verifiers", (vs) => inner.saveVerifiers(vs)),
    deleteVerifiers: timed("delete_verifiers", (a, h) => inner.deleteVerifiers(a, h)),
    fastToken: timed("fast_token", (a, h, now) => inner.fastToken(a, h, now)),
    saveFastToken: timed("save_fast_token", (t, keep, now) => inner.saveFastToken(t, keep, now)),
    useFastToken: timed("use_fast_token", (a, h, c) => inner.useFastToken(a, h, c)),
    deleteFastTokens: timed("delete_fast_tokens", (a, h) => inner.deleteFastTokens(a, h)),
    keptAnchors: timed("kept_anchors", () => inner.keptAnchors()),
    saveKeptAnchor: timed("save_kept_anchor", (a, s, n) => inner.saveKeptAnchor(a, s, n)),
    deleteKeptAnchor: timed("delete_kept_anchor", (a) => inner.deleteKeptAnchor(a)),
  };
}

/** The same for the lease calls of a networked store (SPEC H1): their latency is the cluster's routing cost. */
export function instrumentLeases(inner: LeaseStore, deps: { metrics: Metrics; log: Logger }): LeaseStore {
  const timed = timer(deps);
  return {
    heartbeat: timed("lease_heartbeat", (id, address) => inner.heartbeat(id, address)),
    replica: timed("lease_replica", (id) => inner.replica(id)),
    retire: timed("lease_retire", (id) => inner.retire(id)),
    lease: timed("lease_read", (a) => inner.lease(a)),
    acquire: timed("lease_acquire", (a, owner, ttl) => inner.acquire(a, owner, ttl)),
    renew: timed("lease_renew", (owner, held, ttl) => inner.renew(owner, held, ttl)),
    release: timed("lease_release", (owner, held) => inner.release(owner, held)),
    orphanedKeptAnchors: timed("lease_orphans", () => inner.orphanedKeptAnchors()),
    notifyReleased: timed("lease_notify", () => inner.notifyReleased()),
    onReleased: (listener) => inner.onReleased(listener),
  };
}
