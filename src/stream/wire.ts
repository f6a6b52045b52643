// One side of a Link: a socket (plain or TLS, swappable on STARTTLS), its stream parser and its write path.
// Parsing never throws out of a socket handler (SPEC E1–E3): errors arrive as onError with a condition.
import type { Socket } from "node:net";
import type { Element } from "@xmpp/xml";
import { StreamParser, type ParserHandlers, type ParserLimits, type StreamHeader } from "../xml/parser.js";
import { XmlStreamError } from "../xml/errors.js";
import { serialize } from "../xml/serialize.js";
import type { Counter } from "prom-client";
import { lazyCounter } from "../metrics/lazy-counter.js";
import type { Hold, Holdable } from "./write-batch.js";
import type { Config } from "../config/index.js";
import type { LoginPacer } from "./login-pacer.js";

/** Characters scanned per turn for big frames (SPEC E1: no step over 10 ms on the densest input). */
export const PARSE_SLICE_CHARS = 8192;

export type Side = "client" | "upstream";

export interface WireHandlers {
  onOpen(header: StreamHeader): void;
  onElement(el: Element, bytes: number): void;
  onStreamClose(): void;
  onError(err: XmlStreamError): void;
  /** The socket ended or failed; called once. */
  onSocketEnd(error: Error | undefined): void;
  /** The write buffer drained below the high-water mark (resume the other side). */
  onDrain(): void;
  /** A deadline of WireTimeouts expired: "stanza" (a started stanza not finished), "write-stall" (peer does not read). */
  onTimeout?(what: "stanza" | "write-stall"): void;
}

/** Slow-peer deadlines (SPEC E4: limits.stanzaSeconds, limits.writeStallSeconds); 0 or unset: off. */
export interface WireTimeouts {
  stanzaMs?: number;
  writeStallMs?: number;
}

/** Parser limits and deadlines of the wires of one configuration: made once, shared by every session's wires. */
export interface WireSettings {
  /** A client's stream before authentication, and after. */
  readonly clientUnauthed: Readonly<ParserLimits>;
  readonly clientAuthed: Readonly<ParserLimits>;
  readonly clientTimeouts: Readonly<WireTimeouts>;
  /** An upstream stream (a leg, the anchor): the server's output may exceed the client limits. */
  readonly upstream: Readonly<ParserLimits>;
}

const SETTINGS = new WeakMap<Config["limits"], WireSettings>();

export function wireSettings(limits: Config["limits"]): WireSettings {
  let s = SETTINGS.get(limits);
  if (!s) {
    const shape = { maxDepth: limits.maxDepth, maxAttributes: limits.maxAttributes, maxChildren: limits.maxChildren };
    const client = { ...shape, maxElements: limits.maxElements };
    s = {
      clientUnauthed: Object.freeze({ ...client, maxStanzaBytes: limits.maxUnauthedStanzaBytes }),
      clientAuthed: Object.freeze({ ...client, maxStanzaBytes: limits.maxStanzaBytes }),
      clientTimeouts: Object.freeze({ stanzaMs: limits.stanzaSeconds * 1000, writeStallMs: limits.writeStallSeconds * 1000 }),
      upstream: Object.freeze({ ...shape, maxStanzaBytes: Math.max(limits.maxStanzaBytes * 4, 1 << 20) }),
    };
    SETTINGS.set(limits, s);
  }
  return s;
}

export interface WireAccounting {
  bytesIn(n: number): void;
  bytesOut(n: number): void;
}

/** The Wire a socket's events go to (set while attached): its listeners are shared functions, `this` being the socket. */
const WIRE = Symbol("mucmux.wire");
type Attached = Socket & { [WIRE]?: Wire | undefined };
const NO_TIMEOUTS: Readonly<WireTimeouts> = Object.freeze({});

export class Wire implements Holdable {
  // Per wire: one small object of methods for the parser and shared socket listeners, not a closure per event
  // (56 bytes each, and every session has two wires). Nested here, they may call the Wire's private methods.
  private static readonly ParserEvents = class implements ParserHandlers {
    constructor(private readonly wire: Wire) {}
    onStreamOpen(header: StreamHeader): void { this.wire.handlers.onOpen(header); }
    onElement(el: Element, n: number): void { this.wire.handlers.onElement(el, n); }
    onStreamClose(): void { this.wire.handlers.onStreamClose(); }
    onError(e: XmlStreamError): void { this.wire.handlers.onError(e); }
  };

  private static onSocketData(this: Attached, chunk: Buffer): void { this[WIRE]?.received(chunk); }
  private static onSocketClose(this: Attached): void { this[WIRE]?.finish(undefined); }
  private static onSocketError(this: Attached, e: Error): void { this[WIRE]?.finish(e); }
  private static onSocketDrain(this: Attached): void { this[WIRE]?.drained(); }

  parser: StreamParser;
  /** Held by a WriteBatch until the end of this turn (write-batch.ts). */
  batchHold: Hold | undefined;
  private sock: Socket;
  private ended = false;
  private detached = false;
  private parsing = false; // the parser is slicing a big frame: socket paused
  private flowPaused = false; // paused for backpressure (SPEC E4)

  constructor(
    socket: Socket,
    private handlers: WireHandlers,
    private limits: Readonly<ParserLimits>,
    private readonly accounting: WireAccounting,
    private readonly maxBufferedBytes: number,
    private readonly timeouts: Readonly<WireTimeouts> = NO_TIMEOUTS,
  ) {
    this.sock = socket;
    this.parser = this.newParser(limits);
    this.attach(socket);
  }

  private newParser(limits: Readonly<ParserLimits>): StreamParser {
    return new StreamParser(
      new Wire.ParserEvents(this),
      limits,
      {
        // SPEC E1: big frames are parsed in slices; the socket is paused meanwhile, and the relayed
        // stanzas of a slice still leave corked, as those of one read do.
        sliceChars: PARSE_SLICE_CHARS,
        defer: (fn) => void setImmediate(() => {
          const peer = this.peer;
          peer?.sock.cork();
          fn();
          peer?.sock.uncork();
        }),
        onBusy: (busy) => {
          this.parsing = busy;
          if (busy) this.sock.pause();
          else if (!this.flowPaused && !this.ended) this.sock.resume();
        },
      },
    );
  }

  /** Another owner takes this wire over (a resumed session adopts the connection it was resumed on, SPEC F5). */
  setHandlers(h: WireHandlers): void {
    this.handlers = h;
  }

  /** From now on (a stream restarted on a new socket keeps them); shared objects, never changed (wireSettings). */
  setLimits(l: Readonly<ParserLimits>): void {
    this.limits = l;
    this.parser.setLimits(l);
  }

  get socket(): Socket { return this.sock; }
  get isEnded(): boolean { return this.ended; }

  /** The wire this one relays to (a client's leg): its writes are corked while one read is parsed, so the stanzas
   * of one read leave in one write (one TLS record, one syscall) instead of one each. Toward a client the Link's
   * writer batches per turn instead (write-batch.ts), whichever stream the stanzas came from. */
  peer: Wire | undefined;

  /** SPEC E8: set while the stream is not online: each read waits for the login pacer's budget. */
  gate: LoginPacer | undefined;
  /** A read is held by the login pacer: the socket stays paused until it is released. */
  private gated = false;

  private received(chunk: Buffer): void {
    if (this.gate !== undefined && !this.gate.admit(this, chunk)) {
      this.gated = true;
      this.sock.pause();
      return;
    }
    this.take(chunk);
  }

  /** The login pacer hands back a read it held (SPEC E8). */
  release(chunk: Buffer): void {
    this.gated = false;
    if (this.ended || this.detached) return;
    this.take(chunk);
    if (!this.ended && !this.detached && !this.parsing && !this.flowPaused && !this.gated) this.sock.resume();
  }

  private take(chunk: Buffer): void {
    this.accounting.bytesIn(chunk.length);
    const peer = this.peer;
    peer?.sock.cork();
    this.parser.write(chunk);
    peer?.sock.uncork();
    if (this.timeouts.stanzaMs) this.checkStanzaDeadline(this.timeouts.stanzaMs);
  }
  private stanzaTimer: ReturnType<typeof setTimeout> | undefined;
  private stanzaTimerFrames = 0;
  private stallTimer: ReturnType<typeof setTimeout> | undefined;

  /** Runs from the first byte of a frame to its end; restarted when a later frame is under way. */
  private checkStanzaDeadline(ms: number): void {
    const frames = this.parser.frames;
    if (!this.parser.midFrame) {
      clearTimeout(this.stanzaTimer);
      this.stanzaTimer = undefined;
      return;
    }
    if (this.stanzaTimer !== undefined && frames === this.stanzaTimerFrames) return;
    clearTimeout(this.stanzaTimer);
    this.stanzaTimerFrames = frames;
    this.stanzaTimer = setTimeout(() => {
      this.stanzaTimer = undefined;
      if (!this.ended && this.parser.midFrame && this.parser.frames === frames) this.handlers.onTimeout?.("stanza");
    }, ms);
    this.stanzaTimer.unref();
  }

  private startStallTimer(): void {
    const ms = this.timeouts.writeStallMs;
    if (!ms || this.stallTimer !== undefined) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (!this.ended && this.sock.writableLength > 0) this.handlers.onTimeout?.("write-stall");
    }, ms);
    this.stallTimer.unref();
  }

  private clearTimers(): void {
    clearTimeout(this.stanzaTimer);
    clearTimeout(this.stallTimer);
    this.stanzaTimer = undefined;
    this.stallTimer = undefined;
  }
  private drained(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.handlers.onDrain();
  }

  private attach(socket: Socket): void {
    this.sock = socket;
    this.detached = false;
    (socket as Attached)[WIRE] = this;
    socket.on("data", Wire.onSocketData);
    socket.on("close", Wire.onSocketClose);
    socket.on("error", Wire.onSocketError);
    socket.on("drain", Wire.onSocketDrain);
  }

  /** Detach from the current socket (for a TLS upgrade); the caller wraps it and calls `replaceSocket`. */
  detach(): Socket {
    const s = this.sock;
    s.off("data", Wire.onSocketData);
    s.off("close", Wire.onSocketClose);
    s.off("error", Wire.onSocketError);
    s.off("drain", Wire.onSocketDrain);
    (s as Attached)[WIRE] = undefined;
    this.detached = true;
    return s;
  }

  /**
   * Hold the client socket until its TLS handshake may start (SPEC E8): stop parsing (bytes that followed
   * <starttls/> in the same read are dropped), reading (paused) and writing, but still watch it for close and
   * errors, so the Link ends if the client goes away meanwhile. The caller reads the ClientHello, wraps the
   * socket and calls `replaceSocket`.
   */
  hold(): Socket {
    const s = this.detach();
    this.parser.stop();
    s.pause();
    (s as Attached)[WIRE] = this;
    s.on("close", Wire.onSocketClose);
    s.on("error", Wire.onSocketError);
    return s;
  }

  /**
   * Continue on a new (TLS) socket with a fresh parser. The old parser is stopped, so bytes that followed
   * <starttls/> or <proceed/> in the same plaintext read are never parsed (STARTTLS command injection).
   */
  replaceSocket(socket: Socket): void {
    this.detach(); // a held socket's close and error now reach the TLS socket's listeners instead
    this.parser.stop();
    this.parsing = false;
    this.parser = this.newParser(this.limits);
    this.attach(socket);
  }

  private finish(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.parser.stop();
    this.clearTimers();
    this.handlers.onSocketEnd(err);
  }

  /**
   * Write raw XML text. Returns false when the socket buffer is above its high-water mark (pause the
   * source). Returns false and reports overflow when beyond the hard cap (SPEC E4).
   */
  write(data: string, onFlushed?: (err?: Error | null) => void): boolean {
    if (this.ended || this.detached || this.sock.destroyed) {
      onFlushed?.(new Error("stream closed"));
      return true;
    }
    this.accounting.bytesOut(Buffer.byteLength(data, "utf8"));
    const ok = this.sock.write(data, "utf8", onFlushed);
    if (!ok) this.startStallTimer(); // cleared by 'drain'
    return ok;
  }

  writeElement(el: Element): boolean {
    return this.write(serialize(el));
  }

  /** Bytes queued in the socket that the peer has not read yet. */
  get buffered(): number { return this.sock.writableLength; }
  overCap(): boolean { return this.sock.writableLength > this.maxBufferedBytes; }

  pause(): void { this.flowPaused = true; if (!this.ended) this.sock.pause(); }
  // A detached or held socket belongs to its TLS upgrade: resuming it would lose the bytes nobody reads.
  resume(): void { this.flowPaused = false; if (!this.ended && !this.parsing && !this.detached && !this.gated) this.sock.resume(); }

  /** Half-close after flushing, with a hard stop if the peer does not close within `graceMs`. */
  end(graceMs = 2000): void {
    if (this.sock.destroyed) return;
    this.sock.end();
    const t = setTimeout(() => this.sock.destroy(), graceMs);
    t.unref();
    this.sock.once("close", () => clearTimeout(t));
  }

  destroy(): void {
    this.parser.stop();
    this.clearTimers();
    this.sock.destroy();
  }
}

const ACCOUNTING = new WeakMap<object, Map<Side, WireAccounting>>();

/**
 * Byte accounting for every wire of one side, shared (one object per metrics registry and side, not two
 * closures per session), counted into LazyCounters: prom-client hashes the label set on every inc(), which
 * was a few per cent of the relay's CPU.
 */
export function sharedAccounting(bytes: Counter<"direction" | "side">, side: Side): WireAccounting {
  let bySide = ACCOUNTING.get(bytes);
  if (!bySide) ACCOUNTING.set(bytes, (bySide = new Map()));
  let a = bySide.get(side);
  if (!a) {
    const inC = lazyCounter(bytes, "in", side), outC = lazyCounter(bytes, "out", side);
    bySide.set(side, (a = { bytesIn: (n) => inC.inc(n), bytesOut: (n) => outC.inc(n) }));
  }
  return a;
}
