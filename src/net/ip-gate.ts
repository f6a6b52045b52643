// Per-IP admission at accept: a cap on concurrent connections and a token-bucket cap
// on the accept rate, both per remote address. A refused socket is destroyed before TLS or any parsing,
// so a flood from one address costs one accept each and cannot starve other addresses.

export type Admission = "ok" | "too-many" | "too-fast";

interface Bucket { tokens: number; at: number }

/** Buckets kept before full (idle) ones are pruned. */
const PRUNE_AT = 10_000;

export class IpGate {
  private readonly open = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();

  /** 0 disables the respective cap. */
  constructor(
    private readonly maxPerIp: number,
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.maxPerIp > 0 || this.perSecond > 0;
  }

  /** Admits a new connection from `ip` (counted until release), or says why not. */
  admit(ip: string): Admission {
    if (this.maxPerIp > 0 && (this.open.get(ip) ?? 0) >= this.maxPerIp) return "too-many";
    if (this.perSecond > 0) {
      const t = this.now();
      let b = this.buckets.get(ip);
      if (b === undefined) {
        if (this.buckets.size >= PRUNE_AT) this.prune(t);
        b = { tokens: this.perSecond, at: t };
        this.buckets.set(ip, b);
      }
      b.tokens = Math.min(this.perSecond, b.tokens + ((t - b.at) / 1000) * this.perSecond);
      b.at = t;
      if (b.tokens < 1) return "too-fast";
      b.tokens -= 1;
    }
    this.open.set(ip, (this.open.get(ip) ?? 0) + 1);
    return "ok";
  }

  release(ip: string): void {
    const n = (this.open.get(ip) ?? 0) - 1;
    if (n > 0) this.open.set(ip, n);
    else this.open.delete(ip);
  }

  private prune(t: number): void {
    for (const [ip, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.perSecond) this.buckets.delete(ip);
    }
  }
}

/**
 * Failed SASL attempts per remote address in a sliding window (XEP-0205). Per address
 * and not per account, so that guessing one account's password cannot lock its owner out.
 */
export class AuthFailureThrottle {
  private readonly fails = new Map<string, number[]>();

  /** `max` failures per `windowMs` (max 0: off). */
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The address has used up its failures for the window: refuse without asking the server. */
  blocked(ip: string): boolean {
    if (this.max <= 0) return false;
    return this.recent(ip).length >= this.max;
  }

  recordFailure(ip: string): void {
    if (this.max <= 0) return;
    const list = this.recent(ip);
    list.push(this.now());
    this.fails.delete(ip); // re-insert: the Map stays ordered by last failure
    this.fails.set(ip, list);
    if (this.fails.size > PRUNE_AT) {
      const oldest = this.fails.keys().next().value;
      if (oldest !== undefined) this.fails.delete(oldest);
    }
  }

  private recent(ip: string): number[] {
    const list = this.fails.get(ip);
    if (list === undefined) return [];
    const cutoff = this.now() - this.windowMs;
    while (list.length > 0 && (list[0] as number) <= cutoff) list.shift();
    if (list.length === 0) this.fails.delete(ip);
    return list;
  }
}
