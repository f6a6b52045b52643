// How tests wait. A test waits for the event or condition it needs, never for a fixed time:
//   - until(): a condition no event announces to this process (another process's log file, a metric on
//     /metrics, a PID, a store file, a client's received stanzas); it is checked every few ms, and the
//     check, not the interval, is the wait.
//   - "nothing (more) happened" is shown by an ordering round trip: something sent along the same path
//     after the unwanted thing must come back, and the unwanted thing must not have come before it (see
//     roomRoundTrip/serverRoundTrip in test/integration/muc-support.ts, offline barriers, transcript barriers).
//     Only where no such path exists, quietPeriod() waits a bounded time, and says why.
//   - where time itself is the behaviour under test (a linger, a TTL, a history window), elapse()/untilTime()
//     let exactly that much time pass, and say which timer it is.
//   - pace() sets the rate of a load generator or a sampler; it waits for nothing.

const tick = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once `check` returns true (it may be async and may throw: a throw fails the wait at once);
 * rejects with `timed out waiting for <what>` after `timeoutMs`.
 */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
    await tick(everyMs);
  }
}

/** Like until(), but resolves false on timeout instead of rejecting (for callers with their own message). */
export async function poll(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await tick(everyMs);
  }
}

/**
 * A bounded negative wait, for the rare case where nothing can be sent along the path of the unwanted
 * event to show that it did not happen. `why` names the missing ordering path (it is not logged; it is
 * there to be read next to the call).
 */
export function quietPeriod(ms: number, why: string): Promise<void> {
  void why;
  return tick(ms);
}

/** Time is the behaviour under test: lets `ms` pass for the timer named in `why`. */
export function elapse(ms: number, why: string): Promise<void> {
  void why;
  return tick(Math.max(0, ms));
}

/** Time is the behaviour under test: resolves once Date.now() >= `at` (epoch ms), for the timer named in `why`. */
export async function untilTime(at: number, why: string): Promise<void> {
  while (Date.now() < at) await elapse(at - Date.now(), why);
}

/** The rate of a load generator or sampler loop (one step every `ms`); not a wait for anything. */
export function pace(ms: number): Promise<void> {
  return tick(ms);
}
