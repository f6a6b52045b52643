// Upstream connect rate cap (upstream.connectsPerSecond): a token bucket shared by every new upstream TCP connection
// mucmux opens, client logins and anchor (re)connects alike, so that after a server outage mucmux does not
// stampede the recovering server with every session and anchor at once.
//
// Logins are served before anchors (a person is waiting) and wait at most `loginWaitMs` for a slot;
// then the caller refuses the login with `temporary-auth-failure` and the client retries later.
// Anchors wait as long as it takes (they reconnect in the background and keep their own backoff).
// A cap of 0 turns the limiter off: every acquire succeeds at once.
import type { UpstreamOutcome } from "./upstream.js";

export type ConnectKind = "login" | "anchor";

export interface ConnectLimiterOptions {
  /** Sustained connects per second; 0 = no cap. */
  perSecond: number;
  /** Connects allowed at once after a quiet period (bucket size, >= 1). */
  burst: number;
  /** Longest wait of a login for a slot; 0 = refuse at once when none is free. */
  loginWaitMs: number;
  /** Told once per acquire that had to wait (then either got a slot or was refused). */
  onLimited?(kind: ConnectKind, outcome: "waited" | "refused"): void;
  /** Clock (tests). */
  now?(): number;
}

interface Waiter {
  kind: ConnectKind;
  resolve(ok: boolean): void;
  timer: NodeJS.Timeout | undefined;
}

export class ConnectLimiter {
  private tokens: number;
  private last: number;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: ConnectLimiterOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.tokens = Math.max(1, opts.burst);
    this.last = this.now();
  }

  get enabled(): boolean {
    return this.opts.perSecond > 0;
  }

  /**
   * Resolves true when the caller may connect now; false when a login's wait bound passed, the limiter
   * closed, or `signal` aborted (the client hung up while waiting: its place goes to the next in line).
   */
  acquire(kind: ConnectKind, signal?: AbortSignal): Promise<boolean> {
    if (this.closed || signal?.aborted) return Promise.resolve(false);
    if (!this.enabled) return Promise.resolve(true);
    this.refill();
    // Nobody queued ahead of a login (anchors queue behind logins anyway): take a free slot at once.
    if (this.tokens >= 1 && (kind === "login" ? !this.queue.some((w) => w.kind === "login") : this.queue.length === 0)) {
      this.tokens -= 1;
      return Promise.resolve(true);
    }
    if (kind === "login" && this.opts.loginWaitMs <= 0) {
      this.opts.onLimited?.(kind, "refused");
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const w: Waiter = { kind, resolve, timer: undefined };
      if (signal) {
        const gone = () => this.withdraw(w);
        signal.addEventListener("abort", gone, { once: true });
        w.resolve = (ok) => { signal.removeEventListener("abort", gone); resolve(ok); };
      }
      if (kind === "login") {
        w.timer = setTimeout(() => this.expire(w), this.opts.loginWaitMs);
        // Logins go before every anchor, after the logins already waiting.
        const firstAnchor = this.queue.findIndex((q) => q.kind === "anchor");
        this.queue.splice(firstAnchor < 0 ? this.queue.length : firstAnchor, 0, w);
      } else {
        this.queue.push(w);
      }
      this.schedule();
    });
  }

  /** Drain: every waiter is refused, later acquires too. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.queue.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(Math.max(1, this.opts.burst), this.tokens + ((t - this.last) / 1000) * this.opts.perSecond);
    this.last = t;
  }

  /** A waiter whose client went away: out of the queue, no slot taken, nothing counted. */
  private withdraw(w: Waiter): void {
    const i = this.queue.indexOf(w);
    if (i < 0) return;
    this.queue.splice(i, 1);
    clearTimeout(w.timer);
    w.resolve(false);
  }

  private expire(w: Waiter): void {
    const i = this.queue.indexOf(w);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.opts.onLimited?.(w.kind, "refused");
    w.resolve(false);
  }

  /** Serve the queue head whenever a whole token is available again. */
  private schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    this.refill();
    const wait = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.opts.perSecond) * 1000;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.tokens >= 1 && this.queue.length > 0) {
        const w = this.queue.shift() as Waiter;
        clearTimeout(w.timer);
        this.tokens -= 1;
        this.opts.onLimited?.(w.kind, "waited");
        w.resolve(true);
      }
      this.schedule();
    }, Math.ceil(wait));
    this.timer.unref();
  }
}

/**
 * `connect` behind the limiter. A login refused for want of a slot is answered like a server's SASL
 * `<temporary-auth-failure/>` (the client may retry; `mechanism` is "none": nothing was sent upstream);
 * an anchor is refused only once the limiter closed (drain), as a failed connect.
 */
export function limitConnects<A extends unknown[]>(
  limiter: ConnectLimiter,
  kind: ConnectKind,
  connect: (...args: A) => Promise<UpstreamOutcome>,
  /** The caller's abort signal among the arguments (a login whose client hung up stops waiting). */
  signalOf?: (...args: A) => AbortSignal | undefined,
): (...args: A) => Promise<UpstreamOutcome> {
  return async (...args: A) => {
    const signal = signalOf?.(...args);
    if (await limiter.acquire(kind, signal)) return connect(...args);
    if (signal?.aborted) return { ok: false, reason: "connect", detail: "the client went away while waiting" };
    if (kind === "anchor") return { ok: false, reason: "connect", detail: "mucmux is shutting down" };
    return {
      ok: false,
      reason: "sasl",
      condition: "temporary-auth-failure",
      text: "too many logins to the server right now; try again shortly",
      // The label of mucmux_sasl_outcomes_total, as for logins that never reached the server.
      mechanism: "none",
    };
  };
}
