// XEP-0198 stream management counters, per hop (SPEC F1): what mucmux wrote to a stream and the peer has not
// acknowledged yet, and what mucmux read from it. One ClientSm per client stream that enabled SM, one LegSm per
// upstream leg mucmux enabled SM on. No I/O here: the Link writes, these count.

import { NS } from "./ns.js";

export const NS_SM = NS.sm;
/** `h` wraps at 2^32 (XEP-0198 §4). */
const WRAP = 2 ** 32;

/** The sequence number `total` as it travels in `h`. */
export const wrapH = (total: number): number => total % WRAP;

/**
 * An `h` attribute: an unsigned 32-bit integer in canonical decimal form, else undefined (a bogus value is a
 * protocol error, never a number guessed from it).
 */
export function parseH(text: string | undefined): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]{0,9})$/.test(text)) return undefined;
  const h = Number(text);
  return h < WRAP ? h : undefined;
}

/** How many stanzas an `h` acknowledges beyond `acked` (both may have wrapped). */
const advance = (h: number, acked: number): number => (h - wrapH(acked) + WRAP) % WRAP;

interface Unacked {
  readonly text: string;
  /** For a stanza relayed from a leg with SM: its number there (the server keeps it until mucmux acknowledges it). */
  readonly legSeq: number | undefined;
  /** Told once: acknowledged (no error), or never will be (the session ended first). */
  readonly done: ((err?: Error | null) => void) | undefined;
}

/** A FIFO with O(1) removal at the head (acks trim from the front, sends append at the back). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number { return this.items.length - this.head; }
  push(v: T): void { this.items.push(v); }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined as T; // released now, not at the next compaction (GC, bench/ relay-sm)
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  *values(): IterableIterator<T> { for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T; }
  clear(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}

export type AckResult = { ok: true; acked: number } | { ok: false; sent: number };

/** mucmux → client: every stanza mucmux hands to the device, kept until the client acknowledges it. */
export class ClientSm {
  /** Stanzas read from the client since it enabled SM (the `h` mucmux reports). */
  inbound = 0;
  /** Bytes of the unacknowledged stanzas. */
  bytes = 0;
  /** An `<r/>` is out and not answered yet. */
  requested = false;
  private acked = 0;
  /** Stanzas written to a client socket (the rest of the queue waits for a resumed stream). */
  private written = 0;
  private readonly queue = new Fifo<Unacked>();

  constructor(
    /** The stream id a client resumes with (`previd`); undefined without resumption. */
    readonly id: string | undefined,
    /** Seconds the session is kept after its connection dies (`max`). */
    readonly max: number,
  ) {}

  get unacked(): number { return this.queue.length; }
  /** Stanzas handed to this stream so far (sent or waiting). */
  get sent(): number { return this.acked + this.queue.length; }

  /**
   * A stanza toward the device; `writtenNow`: it went to a live socket (else it waits for a resume); `legSeq`: its
   * number on the session's leg, when it is a stanza the server keeps until mucmux acknowledges it (SPEC F6).
   */
  push(text: string, done: Unacked["done"], writtenNow: boolean, legSeq?: number): void {
    this.queue.push({ text, done, legSeq });
    this.bytes += text.length;
    if (writtenNow) this.written = this.sent;
  }

  /** The client's `<a h>` (or the `h` of its `<resume>`): acknowledged stanzas leave the queue. */
  ack(h: number): AckResult {
    const n = advance(h, this.acked);
    if (n > this.written - this.acked) {
      // Behind what it acknowledged before (a client repeating an old count): nothing new is acknowledged.
      if (advance(wrapH(this.acked), h) <= this.acked) return { ok: true, acked: 0 };
      return { ok: false, sent: wrapH(this.written) };
    }
    for (let i = 0; i < n; i++) {
      const u = this.queue.shift() as Unacked;
      this.bytes -= u.text.length;
      u.done?.();
    }
    this.acked += n;
    return { ok: true, acked: n };
  }

  /**
   * SPEC F6: how many of the leg's stanzas mucmux may acknowledge to the server, `read` being how many it read: all
   * but those still waiting here for the device's acknowledgement (the first such and everything after it).
   */
  legHandled(read: number): number {
    for (const u of this.queue.values()) if (u.legSeq !== undefined) return u.legSeq - 1;
    return read;
  }

  /**
   * The server resumed its session with mucmux's count `handled`: it sends the leg's later stanzas again, so the
   * copies waiting here are dropped (the device gets them once, from the server).
   */
  dropLegAfter(handled: number): void {
    const kept = this.queue.clear().filter((u) => {
      if (u.legSeq === undefined || u.legSeq <= handled) return true;
      this.bytes -= u.text.length;
      u.done?.(new Error("resent by the server"));
      return false;
    });
    for (const u of kept) this.queue.push(u);
  }

  /** After a resume: everything unacknowledged, in order, to be written to the new socket now. */
  resend(): string[] {
    this.written = this.sent;
    return [...this.queue.values()].map((u) => u.text);
  }

  /** The session ended: what was never acknowledged is reported as not delivered. */
  fail(err: Error): void {
    for (const u of this.queue.clear()) u.done?.(err);
    this.bytes = 0;
  }
}

/** Sessions that may be resumed, by the id their client resumes with (SPEC F5). */
export class ResumptionTable<S> {
  private readonly byId = new Map<string, S>();
  get size(): number { return this.byId.size; }
  add(id: string, session: S): void { this.byId.set(id, session); }
  get(id: string): S | undefined { return this.byId.get(id); }
  forget(id: string, session: S): void {
    if (this.byId.get(id) === session) this.byId.delete(id);
  }
}

/** mucmux → server on a leg: stanzas kept until the server acknowledges them, resent after an upstream resume. */
export class LegSm {
  /** The server's resumption id (`<enabled id resume='true'/>`); undefined until then, or when not resumable. */
  id: string | undefined;
  /** The server answered `<enabled/>`: its stanzas are counted from there on. */
  enabled = false;
  /** Stanzas read from the server since `<enabled/>`. */
  inbound = 0;
  /** The count mucmux last acknowledged to the server. */
  reported = 0;
  requested = false;
  private acked = 0;
  private keeping = true;
  private readonly queue = new Fifo<string>();
  private bytes = 0;

  constructor(private readonly maxStanzas: number, private readonly maxBytes: number) {}

  get unacked(): number { return this.queue.length; }

  /** A stanza written on the leg. Past the bound nothing more is kept and the leg cannot be resumed. */
  push(text: string): void {
    if (!this.keeping) return;
    if (this.queue.length >= this.maxStanzas || this.bytes + text.length > this.maxBytes) return this.stopKeeping();
    this.queue.push(text);
    this.bytes += text.length;
  }

  /** Nothing to resend, ever: the server did not offer resumption, or the queue outgrew its bound. */
  stopKeeping(): void {
    this.keeping = false;
    this.id = undefined;
    this.queue.clear();
    this.bytes = 0;
  }

  /** The server's `<a h>` or `<resumed h>`; false when `h` acknowledges more than was sent (ignored). */
  ack(h: number): boolean {
    const n = advance(h, this.acked);
    if (n > this.queue.length) return false;
    for (let i = 0; i < n; i++) this.bytes -= (this.queue.shift() as string).length;
    this.acked += n;
    return true;
  }

  /** After `<resumed h>`: what the server did not get, to be written again in order. */
  unsent(): string[] { return [...this.queue.values()]; }
}
