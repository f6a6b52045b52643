// Room-message load shared by the MUC scenarios (muc-fanout, muc-heavy): numbered groupchat bodies sent at a
// fixed open-loop rate, and a tracker of the copies every receiving session gets (count, first and last
// arrival per message), scanned from the raw bytes without an XML parser.
import { cpuDelta, cpuSnapshot, type CpuDelta } from "./procfs.js";
import { sortedCopy } from "./stats.js";
import { sleep, until } from "./target.js";
import type { BenchSession } from "./xmpp.js";

const MARKER = "<body>k";

/** The body of message k: the tracker finds `<body>k<k> ` in what the sessions receive. */
export const numberedBody = (k: number, pad: string): string => `k${k} ${pad}`;

/** Copies of messages 0..capacity-1, each expected `expected` times (once per receiving session). */
export class CopyTracker {
  readonly sentAt: Float64Array;
  readonly firstAt: Float64Array;
  readonly lastAt: Float64Array;
  readonly copies: Uint16Array;

  constructor(readonly capacity: number, readonly expected: number) {
    this.sentAt = new Float64Array(capacity);
    this.firstAt = new Float64Array(capacity);
    this.lastAt = new Float64Array(capacity);
    this.copies = new Uint16Array(capacity);
  }

  /** Replaces each session's onData with the scanner. */
  watch(sessions: readonly BenchSession[]): void {
    for (const s of sessions) {
      let carry = "";
      s.onData = (chunk) => {
        const now = performance.now();
        const text = carry + chunk.toString("latin1");
        let i = text.indexOf(MARKER);
        let consumed = 0;
        while (i !== -1) {
          const end = text.indexOf(" ", i + MARKER.length);
          if (end === -1) break;
          const k = Number(text.slice(i + MARKER.length, end));
          if (k >= 0 && k < this.capacity) {
            if (this.copies[k] === 0) this.firstAt[k] = now;
            this.copies[k] = (this.copies[k] ?? 0) + 1;
            if (this.copies[k] === this.expected) this.lastAt[k] = now;
          }
          consumed = end;
          i = text.indexOf(MARKER, end);
        }
        carry = text.slice(Math.max(consumed, text.length - 64));
      };
    }
  }

  /** Records the send time of message k (call right before writing it). */
  sent(k: number): void {
    this.sentAt[k] = performance.now();
  }

  complete(k: number): boolean {
    return this.copies[k] === this.expected;
  }

  /** Over messages from..to-1: copies missing, and sorted times from the write to the last / first copy (ms). */
  summary(from: number, to: number): { lost: number; last: Float64Array; first: Float64Array } {
    const last: number[] = [], first: number[] = [];
    let lost = 0;
    for (let j = from; j < to; j++) {
      const c = this.copies[j] ?? 0;
      lost += this.expected - c;
      if (c === this.expected) last.push((this.lastAt[j] ?? 0) - (this.sentAt[j] ?? 0));
      if (c > 0) first.push((this.firstAt[j] ?? 0) - (this.sentAt[j] ?? 0));
    }
    return { lost, last: sortedCopy(last), first: sortedCopy(first) };
  }
}

/**
 * Calls send(k) for k = 0..total-1, message k due at k/rate seconds after the start whatever happened to the
 * earlier ones (open loop: a slow server gets the backlog, not a slower generator); resolves after the last.
 * `burst` > 1: messages are released in groups of that many, each group when its first one is due.
 */
export function openLoop(rate: number, total: number, send: (k: number) => void, burst = 1): Promise<void> {
  let k = 0;
  const t0 = performance.now();
  return new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, (Math.floor(((performance.now() - t0) / 1000) * (rate / burst)) + 1) * burst);
      while (k < due) send(k++);
      if (k >= total) return resolve();
      setTimeout(tick, 1);
    };
    tick();
  });
}

export interface RoomLoadOptions {
  rate: number;
  /** Messages released together (default 1): see openLoop. */
  burst?: number;
  warmupMs: number;
  measureMs: number;
  /** The sessions that receive the copies, each expected to get every message once. */
  receivers: readonly BenchSession[];
  /** Writes message k (its body made with numberedBody(k, …)). */
  send(k: number): void;
  prosodyPid: number;
  mucmuxPid: number | undefined;
  /** How long the last message's copies may take after the last send. */
  settleMs: number;
}

/**
 * Room messages at a fixed open-loop rate; CPU is read from the warm-up boundary until every copy of the last
 * message has arrived. The copies of messages warm..total-1 are summarised.
 */
export async function measureRoomLoad(o: RoomLoadOptions): Promise<{ cpu: CpuDelta; msgs: number } & ReturnType<CopyTracker["summary"]>> {
  const total = Math.floor(((o.warmupMs + o.measureMs) / 1000) * o.rate);
  const warm = Math.floor((o.warmupMs / 1000) * o.rate);
  const copies = new CopyTracker(total, o.receivers.length);
  copies.watch(o.receivers);
  let c0: ReturnType<typeof cpuSnapshot> | undefined;
  await openLoop(o.rate, total, (k) => {
    if (k === warm) c0 = cpuSnapshot(o.prosodyPid, o.mucmuxPid);
    copies.sent(k);
    o.send(k);
  }, o.burst);
  await until(() => copies.complete(total - 1), o.settleMs);
  await sleep(200);
  const c1 = cpuSnapshot(o.prosodyPid, o.mucmuxPid);
  if (!c0) throw new Error("no warm-up boundary");
  return { cpu: cpuDelta(c0, c1), msgs: total - warm, ...copies.summary(warm, total) };
}
