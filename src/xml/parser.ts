// Stream parser: framer (bytes, caps, restricted XML) → strict UTF-8 decoding of each complete frame →
// the strict scanner, which validates the frame and builds its canonical Element in one pass
// (scanner.ts). Every input problem ends in exactly one onError call; write() never throws, because a
// throw in a socket handler would take down every session of the process.
import type { Element } from "@xmpp/xml";
import { XmlStreamError } from "./errors.js";
import { Framer } from "./framer.js";
import type { FrameKind } from "./framer.js";
import { Scanner } from "./scanner.js";

export interface ParserLimits {
  maxStanzaBytes: number;
  maxDepth: number;
  maxAttributes: number;
  maxChildren: number;
  /** Elements in one stanza (unset: no cap); see ScanLimits. */
  maxElements?: number;
}

export interface StreamHeader {
  /** Header attributes as written (to, from, id, version, xml:lang, ...), without namespace declarations. */
  attrs: Record<string, string>;
}

export interface ParserHandlers {
  onStreamOpen(header: StreamHeader): void;
  /** One top-level child of the stream, canonicalized; byteLength is its size on the wire. */
  onElement(el: Element, byteLength: number): void;
  onStreamClose(): void;
  /** Called at most once; the parser ignores all input afterwards. */
  onError(err: XmlStreamError): void;
}

export interface ParserOptions {
  contentNamespace?: string;
  /**
   * SPEC E1 (no input blocks the event loop > 10 ms): frames longer than this many characters are
   * scanned in slices of about this size, one per `defer` turn. Unset: every frame is parsed at once
   * (synchronous callers such as parseStanza and tests).
   */
  sliceChars?: number;
  /** Schedules the next slice (default setImmediate). */
  defer?: (fn: () => void) => void;
  /** true when slicing starts (input is only queued until it ends), false when the queue is drained. */
  onBusy?: (busy: boolean) => void;
}

/** A frame being scanned in slices. */
interface SliceJob {
  byteLength: number;
  /** Scanned in full: delivered in a turn of its own, so that no turn holds both a slice and the element's
   * onward work (stages, serialization). */
  scanned: boolean;
}

export class StreamParser {
  private readonly framer: Framer;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private readonly limits: ParserLimits;
  private readonly scanner: Scanner;
  private dead = false; // after an error or stop()
  private errored = false;
  private writing = false;
  private queue: Buffer[] = [];
  private job: SliceJob | null = null;
  private busyReported = false;
  private frameCount = 0;
  private readonly sliceChars: number;
  private readonly defer: (fn: () => void) => void;
  private readonly onBusy: ((busy: boolean) => void) | undefined;

  constructor(
    private readonly handlers: ParserHandlers,
    limits: ParserLimits,
    opts?: ParserOptions,
  ) {
    this.limits = { ...limits };
    this.sliceChars = opts?.sliceChars ?? Number.POSITIVE_INFINITY;
    this.defer = opts?.defer ?? ((fn) => void setImmediate(fn));
    this.onBusy = opts?.onBusy;
    this.framer = new Framer(
      { onFrame: (kind, bytes) => this.onFrame(kind, bytes), onError: (err) => this.fail(err) },
      { maxBytes: limits.maxStanzaBytes, maxAttributes: limits.maxAttributes },
    );
    this.scanner = new Scanner(this.limits, opts?.contentNamespace ?? "jabber:client");
  }

  get failed(): boolean {
    return this.errored;
  }

  /** Frames (stanzas, headers, closes) received so far. */
  get frames(): number {
    return this.frameCount;
  }

  /** A frame is incomplete or still being parsed (the stanza-completion deadline runs). */
  get midFrame(): boolean {
    return !this.dead && (this.job !== null || this.queue.length > 0 || this.framer.inFrame);
  }

  /** True while a large frame is being parsed in slices; later input is queued (SPEC E1). */
  get busy(): boolean {
    return this.job !== null;
  }

  write(chunk: Buffer): void {
    if (this.dead) return;
    this.queue.push(chunk); // byte order is kept: a handler or a slice in progress only queues
    if (!this.writing && this.job === null) this.drain();
  }

  private drain(): void {
    this.writing = true;
    try {
      while (!this.dead && this.job === null) {
        const next = this.queue.shift();
        if (next === undefined) break;
        const rest = this.framer.push(next);
        if (rest.length > 0) this.queue.unshift(rest); // a slice job started: the rest waits for it
      }
    } catch (err) {
      this.crash(err);
    } finally {
      this.writing = false;
    }
    if (this.dead) this.queue = [];
    else if (this.job === null && this.busyReported) {
      this.busyReported = false;
      this.onBusy?.(false);
    }
  }

  /** One slice of the frame in progress, then yield; the frame completes in its last slice. */
  private readonly sliceStep = (): void => {
    const job = this.job;
    if (job === null || this.dead) return;
    this.writing = true;
    try {
      if (!job.scanned) {
        job.scanned = this.scanner.run(this.scanner.position + this.sliceChars);
        this.defer(this.sliceStep);
        return;
      }
      this.job = null;
      this.deliver(job.byteLength);
    } catch (err) {
      this.job = null;
      this.crash(err);
    } finally {
      this.writing = false;
    }
    if (this.job === null) this.drain();
  };

  /** Stream restart (RFC 6120 §4.3.3): the next bytes, even within the current chunk, start a new stream. */
  reset(): void {
    if (this.job !== null) {
      // The frame being sliced belonged to the old stream; queued input continues under the new one.
      this.job = null;
      if (!this.writing) this.defer(() => this.drain());
    }
    this.framer.reset();
    this.scanner.resetStream();
  }

  setLimits(l: Partial<ParserLimits>): void {
    Object.assign(this.limits, l);
    this.framer.setLimits({ maxBytes: this.limits.maxStanzaBytes, maxAttributes: this.limits.maxAttributes });
  }

  /** Ignore the rest of the current chunk and all future input, without reporting an error. */
  stop(): void {
    this.dead = true;
    this.job = null;
    this.queue = [];
    this.framer.stop();
  }

  private onFrame(kind: FrameKind, bytes: Buffer): void {
    this.frameCount++;
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      return this.fail(new XmlStreamError("unsupported-encoding", "invalid UTF-8")); // SPEC E2
    }
    try {
      if (kind === "element") {
        this.scanner.begin(text);
        if (text.length > this.sliceChars) {
          // SPEC E1: a dense maximum-size frame takes milliseconds to scan and build; scan it in slices,
          // yielding to the event loop between them, and hold later input (the framer stops right after
          // this frame).
          this.framer.suspend();
          this.job = { byteLength: bytes.length, scanned: false };
          if (!this.busyReported) {
            this.busyReported = true;
            this.onBusy?.(true);
          }
          this.defer(this.sliceStep);
          return;
        }
        this.scanner.run(Number.POSITIVE_INFINITY);
        return this.deliver(bytes.length);
      }
      if (kind === "decl") {
        // RFC 6120 §11.6: UTF-8 only.
        const encoding = this.scanner.declaration(text);
        if (encoding !== undefined && encoding.toLowerCase() !== "utf-8") {
          this.fail(new XmlStreamError("unsupported-encoding", `encoding ${encoding}`));
        }
        return;
      }
      if (kind === "header") {
        const header = this.scanner.header(text);
        this.handlers.onStreamOpen({ attrs: header.attrs });
        if (header.closed && !this.dead) this.handlers.onStreamClose();
        return;
      }
      this.scanner.close(text);
      this.handlers.onStreamClose();
    } catch (err) {
      if (!(err instanceof XmlStreamError)) throw err;
      this.fail(err);
    }
  }

  private deliver(byteLength: number): void {
    const el = this.scanner.take();
    if (el === null) return this.fail(new XmlStreamError("not-well-formed", "malformed stanza"));
    this.handlers.onElement(el, byteLength);
  }

  /** A scanner error is the input's; anything else thrown while parsing is mucmux's own failure. */
  private crash(err: unknown): void {
    if (err instanceof XmlStreamError) this.fail(err);
    else this.fail(new XmlStreamError("internal-server-error", `parser failure: ${String(err)}`));
  }

  private fail(err: XmlStreamError): void {
    if (this.dead) return;
    this.dead = true;
    this.errored = true;
    this.framer.stop();
    try {
      this.handlers.onError(err);
    } catch {
      // The parser is already dead; a failing error handler must not make write() throw.
    }
  }
}
