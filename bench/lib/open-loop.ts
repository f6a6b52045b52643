// Open-loop iq pings: request j is due at t0 + j/rate whatever happened to earlier ones (no coordinated omission);
// its latency is counted from that due time and, separately, from the moment it was actually written.
import { sortedCopy } from "./stats.js";
import { DOMAIN, type BenchSession } from "./xmpp.js";

export class PingRun {
  readonly due: Float64Array;
  readonly written: Float64Array;
  readonly fromDue: Float64Array;
  readonly fromWrite: Float64Array;
  answered = 0;
  private next = 0;

  /** Watches `sessions` for the answers to pings with ids `<prefix><j>`, j < total. */
  constructor(private readonly sessions: readonly BenchSession[], private readonly prefix: string, readonly total: number) {
    this.due = new Float64Array(total);
    this.written = new Float64Array(total);
    this.fromDue = new Float64Array(total).fill(Number.NaN);
    this.fromWrite = new Float64Array(total).fill(Number.NaN);
    const ids = new RegExp(`\\bid=["']${prefix}(\\d+)["']`, "g");
    for (const s of sessions) {
      let buf = "";
      s.onData = (chunk) => {
        const now = performance.now();
        buf += chunk.toString("latin1");
        const end = buf.lastIndexOf(">") + 1; // complete start tags only
        const text = buf.slice(0, end);
        buf = buf.slice(end);
        for (const m of text.matchAll(ids)) {
          const j = Number(m[1]);
          if (!(j < total) || !Number.isNaN(this.fromDue[j] as number)) continue;
          this.fromDue[j] = now - (this.due[j] as number);
          this.fromWrite[j] = now - (this.written[j] as number);
          this.answered++;
        }
      };
    }
  }

  /** Pings written so far. */
  get sent(): number { return this.next; }

  /** Writes the pings at `rate` per second, round robin over the sessions; resolves once all were written. */
  start(rate: number): Promise<void> {
    const { due, written, total, sessions, prefix } = this;
    const interval = 1000 / rate;
    const t0 = performance.now() + 20;
    for (let j = 0; j < total; j++) due[j] = t0 + j * interval;
    return new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (this.next < total && (due[this.next] as number) <= now) {
          const j = this.next++;
          written[j] = performance.now();
          sessions[j % sessions.length]?.write(`<iq type='get' to='${DOMAIN}' id='${prefix}${j}'><ping xmlns='urn:xmpp:ping'/></iq>`);
        }
        if (this.next >= total) return resolve();
        setTimeout(tick, Math.max(0, (due[this.next] as number) - performance.now()));
      };
      setTimeout(tick, 20);
    });
  }

  /** Latencies of the requests from `warm` on, sorted; an unanswered one counts as +Infinity. */
  sorted(warm: number): { byDue: Float64Array; byWrite: Float64Array } {
    const sort = (a: Float64Array) => sortedCopy(Array.from(a.subarray(warm), (x) => (Number.isNaN(x) ? Number.POSITIVE_INFINITY : x)));
    return { byDue: sort(this.fromDue), byWrite: sort(this.fromWrite) };
  }
}
