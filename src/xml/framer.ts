// Byte-level framer: splits an XMPP stream into the XML declaration, the stream header, each
// top-level child (stanza or nonza) and the stream close, before any decoding or XML parsing.
// It is a state machine over bytes, so its output does not depend on how TCP segmented the input,
// it counts bytes against the cap before anything is buffered (SPEC E1), and it rejects the XML
// constructs RFC 6120 §11.1 forbids as soon as their first bytes are seen (SPEC E2).
import { STANZA_TOO_BIG, XmlStreamError } from "./errors.js";
import type { AppCondition, StreamErrorCondition } from "./errors.js";
import { ByteAccumulator } from "./accumulator.js";

// Lexical states and byte values. Module-local on purpose: the same constants imported from
// another module made the hot loop ~20x slower under tsx (measured 17 vs 0.9 µs per 1 KB stanza).
const TOP = 0; // between frames: prolog or stream level
const LT = 1; // just after '<'
const STAG = 2; // inside a start tag, outside quotes
const DQ = 3; // inside a "..." attribute value
const SQ = 4; // inside a '...' attribute value
const ETAG = 5; // inside an end tag
const TEXT = 6; // character data inside a top-level element
const BANG = 7; // after '<!': only '<![CDATA[' inside an element is allowed
const CDATA = 8;
const PI = 9; // after '<?': only the XML declaration before the header is allowed
const DECL = 10; // inside the XML declaration
const DONE = 11; // stream closed: further input is ignored

const C_LT = 0x3c;
const C_GT = 0x3e;
const C_SLASH = 0x2f;
const C_BANG = 0x21;
const C_QUEST = 0x3f;
const C_DQ = 0x22;
const C_SQ = 0x27;
const C_EQ = 0x3d;
const C_RSQB = 0x5d;
const CDATA_OPEN = Buffer.from("[CDATA[");
const XML_TARGET = Buffer.from("xml");

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

export type FrameKind = "decl" | "header" | "element" | "close";

export interface FramerLimits {
  /** SPEC E1: bytes of one frame (stanza, stream header or XML declaration). */
  maxBytes: number;
  /** Attributes in one start tag, counted here so the scanner never reads a huge attribute list. */
  maxAttributes: number;
}

export interface FrameSink {
  /** `bytes` may share memory with the pushed chunk; copy it to keep it past the callback. */
  onFrame(kind: FrameKind, bytes: Buffer): void;
  onError(err: XmlStreamError): void;
}

const EMPTY = Buffer.alloc(0);

export class Framer {
  private state = TOP;
  private depth = 0; // open elements inside the current top-level child
  private headerSeen = false;
  private declAllowed = true;
  private slash = false; // STAG: previous byte was '/'
  private match = 0; // BANG/PI: bytes of the expected keyword matched so far
  private marks = 0; // CDATA: consecutive ']'; DECL: 1 after '?'
  private count = 0; // bytes of the current frame so far
  private attrs = 0; // attribute values seen in the current start tag
  private frameStart = 0; // index in `buf` where the current frame's bytes begin
  private readonly pending = new ByteAccumulator(); // earlier chunks' bytes of the current frame
  private buf: Buffer = EMPTY;
  private pos = 0;
  private dead = false;
  private suspended = false;

  private readonly limits: FramerLimits;

  constructor(
    private readonly sink: FrameSink,
    limits: FramerLimits,
  ) {
    this.limits = { ...limits };
  }

  get failed(): boolean {
    return this.dead;
  }

  /** Some bytes of a frame have been seen and its end has not (for the stanza-completion deadline). */
  get inFrame(): boolean {
    return this.state !== TOP && this.state !== DONE && !this.dead;
  }

  /** Applies from the next byte on, including to the frame in progress. */
  setLimits(l: Partial<FramerLimits>): void {
    Object.assign(this.limits, l);
  }

  /** Stream restart: the remaining and future bytes start a new stream. Safe to call from onFrame. */
  reset(): void {
    this.state = TOP;
    this.depth = 0;
    this.headerSeen = false;
    this.declAllowed = true;
    this.pending.clear();
    this.count = 0;
  }

  /**
   * Stop consuming the current chunk right after the frame being delivered; push() then returns the
   * unread rest. Only meaningful from onFrame (the parser uses it to time-slice a large frame, SPEC E1).
   */
  suspend(): void {
    this.suspended = true;
  }

  /** Ignore the rest of the current chunk and all future input. Safe to call from onFrame. */
  stop(): void {
    this.dead = true;
    this.pending.clear();
  }

  /** Consumes `chunk`; returns its unread rest when onFrame called suspend(), else an empty buffer. */
  push(chunk: Buffer): Buffer {
    if (this.dead) return EMPTY;
    this.buf = chunk;
    this.pos = 0;
    this.frameStart = 0;
    this.suspended = false;
    const n = chunk.length;
    while (this.pos < n && !this.dead && !this.suspended) this.pos = this.step(chunk[this.pos] as number, this.pos);
    this.buf = EMPTY;
    if (this.suspended && !this.dead) {
      // A frame was just emitted, so the state is TOP or DONE and nothing is pending.
      this.suspended = false;
      return chunk.subarray(this.pos);
    }
    if (!this.dead && this.state !== TOP && this.state !== DONE) {
      this.pending.append(chunk.subarray(this.frameStart)); // a copy: the chunk is not retained
    }
    return EMPTY;
  }

  /** Consumes the byte at `i` (and possibly more); returns the index of the next unread byte. */
  private step(b: number, i: number): number {
    switch (this.state) {
      case TOP:
        return this.top(b, i);
      case TEXT:
        return this.skipTo(C_LT, LT, i);
      case DQ:
        return this.skipTo(C_DQ, STAG, i);
      case SQ:
        return this.skipTo(C_SQ, STAG, i);
      case CDATA:
        return this.cdata(i);
      case STAG:
        return this.tagRun(i);
      case ETAG:
        return this.endTagRun(i);
      case DONE:
        return this.buf.length;
    }
    // Every other state consumes exactly one counted byte.
    if (++this.count > this.limits.maxBytes) return this.tooBig();
    switch (this.state) {
      case LT:
        return this.afterLt(b, i);
      case BANG:
        return this.bang(b, i);
      case PI:
        return this.pi(b, i);
      default:
        return this.decl(b, i);
    }
  }

  private top(b: number, i: number): number {
    if (isSpace(b)) return i + 1; // whitespace keepalives are dropped, never counted (SPEC E1)
    if (b !== C_LT) {
      return this.headerSeen
        ? this.fail("bad-format", "character data at stream level")
        : this.fail("not-well-formed", "character data before the stream header");
    }
    this.frameStart = i;
    this.count = 1;
    if (this.count > this.limits.maxBytes) return this.tooBig();
    this.state = LT;
    return i + 1;
  }

  /** Skips to the next `stop` byte with a native search; bytes skipped are counted, not inspected. */
  private skipTo(stop: number, next: number, i: number): number {
    const j = this.buf.indexOf(stop, i);
    const end = j === -1 ? this.buf.length : j + 1;
    this.count += end - i;
    if (this.count > this.limits.maxBytes) return this.tooBig();
    if (j !== -1) {
      this.state = next;
      this.slash = false;
    }
    return end;
  }

  private afterLt(b: number, i: number): number {
    if (b === C_QUEST) {
      if (this.headerSeen || !this.declAllowed) return this.fail("restricted-xml", "processing instruction");
      this.state = PI;
      this.match = 0;
    } else if (b === C_BANG) {
      // RFC 6120 §11.1: no comments, DTDs or other markup declarations; CDATA only inside elements.
      if (this.depth === 0) return this.fail("restricted-xml", "markup declaration or comment");
      this.state = BANG;
      this.match = 0;
    } else if (b === C_SLASH) {
      if (!this.headerSeen) return this.fail("not-well-formed", "end tag before the stream header");
      this.state = ETAG;
    } else if (isSpace(b) || b === C_GT || b === C_LT || b === C_EQ || b === C_DQ || b === C_SQ) {
      return this.fail("not-well-formed", "malformed tag");
    } else {
      this.state = STAG;
      this.slash = false;
      this.attrs = 0;
    }
    return i + 1;
  }

  /** Inside a start tag: skips to the next '>' or quote in one tight loop, then handles that byte. */
  private tagRun(i: number): number {
    const buf = this.buf;
    const n = buf.length;
    let j = i;
    while (j < n) {
      const b = buf[j] as number;
      if (b === C_GT || b === C_DQ || b === C_SQ) break;
      j++;
    }
    if (j > i) this.slash = buf[j - 1] === C_SLASH;
    this.count += j - i + (j < n ? 1 : 0);
    if (this.count > this.limits.maxBytes) return this.tooBig();
    return j < n ? this.startTag(buf[j] as number, j) : n;
  }

  /** Inside an end tag: jumps to its '>' with a native search. */
  private endTagRun(i: number): number {
    const j = this.buf.indexOf(C_GT, i);
    const end = j === -1 ? this.buf.length : j + 1;
    this.count += end - i;
    if (this.count > this.limits.maxBytes) return this.tooBig();
    return j === -1 ? end : this.endTag(j);
  }

  private startTag(b: number, i: number): number {
    if (b === C_GT) return this.startTagEnd(i);
    if (b === C_DQ || b === C_SQ) {
      // One quoted value per attribute in a well-formed tag; the scanner checks the rest.
      if (++this.attrs > this.limits.maxAttributes) {
        return this.fail("policy-violation", `more than ${this.limits.maxAttributes} attributes`);
      }
      this.state = b === C_DQ ? DQ : SQ;
    }
    this.slash = b === C_SLASH;
    return i + 1;
  }

  private startTagEnd(i: number): number {
    if (!this.headerSeen) {
      this.headerSeen = true;
      this.declAllowed = false;
      this.state = this.slash ? DONE : TOP; // `<stream:stream/>` opens and closes the stream
      return this.emit("header", i + 1);
    }
    if (!this.slash) {
      this.depth++;
      this.state = TEXT;
      return i + 1;
    }
    if (this.depth > 0) {
      this.state = TEXT;
      return i + 1;
    }
    this.state = TOP;
    return this.emit("element", i + 1);
  }

  private endTag(i: number): number {
    if (this.depth === 0) {
      this.state = DONE;
      return this.emit("close", i + 1);
    }
    this.depth--;
    if (this.depth > 0) {
      this.state = TEXT;
      return i + 1;
    }
    this.state = TOP;
    return this.emit("element", i + 1);
  }

  private bang(b: number, i: number): number {
    if (b !== CDATA_OPEN[this.match]) return this.fail("restricted-xml", "comment or markup declaration");
    if (++this.match === CDATA_OPEN.length) {
      this.state = CDATA;
      this.marks = 0;
    }
    return i + 1;
  }

  /** Jumps to the next '>' and ends the section if "]]" precedes it, possibly across reads. */
  private cdata(i: number): number {
    const j = this.buf.indexOf(C_GT, i);
    const stop = j === -1 ? this.buf.length : j;
    this.count += stop - i + (j === -1 ? 0 : 1);
    if (this.count > this.limits.maxBytes) return this.tooBig();
    let k = stop;
    while (k > i && stop - k < 2 && this.buf[k - 1] === C_RSQB) k--;
    this.marks = k === i ? this.marks + (stop - k) : stop - k; // trailing ']' run, continued if unbroken
    if (j === -1) return stop;
    if (this.marks >= 2) this.state = TEXT;
    this.marks = 0;
    return j + 1;
  }

  private pi(b: number, i: number): number {
    if (this.match < XML_TARGET.length) {
      if (b !== XML_TARGET[this.match]) return this.fail("restricted-xml", "processing instruction");
      this.match++;
      return i + 1;
    }
    if (!isSpace(b)) return this.fail("restricted-xml", "processing instruction");
    this.state = DECL;
    this.marks = 0;
    return i + 1;
  }

  private decl(b: number, i: number): number {
    if (b === C_GT && this.marks === 1) {
      this.declAllowed = false; // one XML declaration, before the header only (SPEC E2)
      this.state = TOP;
      return this.emit("decl", i + 1);
    }
    this.marks = b === C_QUEST ? 1 : 0;
    return i + 1;
  }

  private emit(kind: FrameKind, end: number): number {
    const bytes = this.pending.take(this.buf.subarray(this.frameStart, end));
    this.count = 0;
    this.pos = end;
    this.sink.onFrame(kind, bytes);
    // The sink may have called reset() (continue at `end` under the new state) or stop().
    return this.dead ? this.buf.length : end;
  }

  private tooBig(): number {
    // SPEC E1: refuse before buffering past the cap; a header or declaration gets no stanza condition.
    const app = this.headerSeen ? STANZA_TOO_BIG : undefined;
    return this.fail("policy-violation", `frame larger than ${this.limits.maxBytes} bytes`, app);
  }

  private fail(condition: StreamErrorCondition, message: string, app?: AppCondition): number {
    this.dead = true;
    this.pending.clear();
    this.sink.onError(new XmlStreamError(condition, message, app));
    return this.buf.length;
  }
}
