// The saxes-based stream parser that mucmux used before its own strict scanner (src/xml/scanner.ts),
// kept as a test oracle: differential tests feed the same bytes to both and require the same decisions,
// trees and conditions. Same framer, then strict UTF-8 decoding of each frame, one namespace-aware saxes
// parser per stream, and a bounded tree builder (tree.ts) that produces the canonical Elements.
import type { ParserHandlers, ParserLimits, ParserOptions, StreamHeader } from "../../../src/xml/parser.js";
import { SaxesParser } from "saxes";
import type { SaxesTagNS } from "saxes";
import { XmlStreamError } from "../../../src/xml/errors.js";
import type { StreamErrorCondition } from "../../../src/xml/errors.js";
import { Framer } from "../../../src/xml/framer.js";
import type { FrameKind } from "../../../src/xml/framer.js";
import { NS_STREAMS } from "../../../src/xml/ns.js";
import { TreeBuilder } from "./tree.js";

/** A frame being parsed in slices. */
interface SliceJob {
  kind: FrameKind;
  text: string;
  offset: number;
  byteLength: number;
  ev: FrameEvents;
}

// XML 1.0 only (RFC 6120 §11): a declaration saying 1.1 must not relax the character rules.
type SaxOptions = { xmlns: true; position: false; forceXMLVersion: true; defaultXMLVersion: "1.0" };
type Sax = SaxesParser<SaxOptions>;

/** Thrown through saxes to stop it at the first error (SPEC E1: no wasted work on a bad frame). */
const ABORT = new Error("parse aborted");

/** What saxes reported while one frame was written into it. */
interface FrameEvents {
  error: XmlStreamError | null;
  header: StreamHeader | null;
  closed: boolean;
}

export class SaxesStreamParser {
  private readonly framer: Framer;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private readonly contentNs: string;
  private limits: ParserLimits;
  private sax: Sax;
  private tree: TreeBuilder;
  private saxDepth = 0; // open saxes elements, the stream root included
  private ev: FrameEvents = { error: null, header: null, closed: false };
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
    this.contentNs = opts?.contentNamespace ?? "jabber:client";
    this.framer = new Framer(
      { onFrame: (kind, bytes) => this.onFrame(kind, bytes), onError: (err) => this.fail(err) },
      { maxBytes: limits.maxStanzaBytes, maxAttributes: limits.maxAttributes },
    );
    this.tree = new TreeBuilder(this.limits, this.contentNs);
    this.sax = this.newSax();
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
      this.fail(new XmlStreamError("internal-server-error", `parser failure: ${String(err)}`));
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
    const len = job.text.length;
    let end = Math.min(len, job.offset + this.sliceChars);
    // Never split a surrogate pair between two saxes writes.
    const last = job.text.charCodeAt(end - 1);
    if (end < len && last >= 0xd800 && last <= 0xdbff) end++;
    this.ev = job.ev;
    this.writing = true;
    try {
      try {
        this.sax.write(job.text.slice(job.offset, end));
      } catch (err) {
        if (err !== ABORT) throw err;
      }
      job.offset = end;
      if (job.ev.error === null && end < len) {
        this.defer(this.sliceStep);
        return;
      }
      this.job = null;
      this.finishFrame(job.kind, job.byteLength, job.ev);
    } catch (err) {
      this.job = null;
      this.fail(new XmlStreamError("internal-server-error", `parser failure: ${String(err)}`));
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
    this.sax = this.newSax();
    this.tree = new TreeBuilder(this.limits, this.contentNs);
    this.saxDepth = 0;
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
    const ev: FrameEvents = { error: null, header: null, closed: false };
    if (text.length > this.sliceChars) {
      // SPEC E1: a dense maximum-size frame costs tens of ms in saxes; parse it in slices, yielding to
      // the event loop between them, and hold later input (the framer stops right after this frame).
      this.framer.suspend();
      this.job = { kind, text, offset: 0, byteLength: bytes.length, ev };
      if (!this.busyReported) {
        this.busyReported = true;
        this.onBusy?.(true);
      }
      this.defer(this.sliceStep);
      return;
    }
    this.ev = ev;
    try {
      this.sax.write(text);
    } catch (err) {
      if (err !== ABORT) throw err;
    }
    this.finishFrame(kind, bytes.length, ev);
  }

  private finishFrame(kind: FrameKind, byteLength: number, ev: FrameEvents): void {
    if (ev.error !== null) return this.fail(ev.error);
    if (kind === "element") return this.deliverElement(byteLength);
    if (kind === "decl") return this.checkXmlDecl();
    if (kind === "header") {
      if (ev.header === null) return this.malformed("stream header");
      this.handlers.onStreamOpen(ev.header);
    } else if (kind === "close" && !ev.closed) {
      return this.malformed("stream close");
    }
    if (ev.closed && !this.dead) this.handlers.onStreamClose();
  }

  private deliverElement(byteLength: number): void {
    // Framer and saxes must agree that the frame was exactly one complete child of the stream.
    const el = this.tree.completed === 1 && this.tree.depth === 0 && this.saxDepth === 1 ? this.tree.take() : null;
    if (el === null) return this.malformed("stanza");
    this.handlers.onElement(el, byteLength);
  }

  private newSax(): Sax {
    const sax: Sax = new SaxesParser<SaxOptions>({
      xmlns: true,
      position: false,
      forceXMLVersion: true,
      defaultXMLVersion: "1.0",
    });
    // Only six handlers, on purpose: saxes stores handlers as keyed properties, and a seventh pushes
    // the instance into V8 dictionary mode: parsing a 1.2 KB message went from ~15 to ~55 µs.
    // (test/unit/xml/parser.test.ts guards this.)
    // So the XML declaration is read from sax.xmlDecl, and comments and processing instructions are
    // left to the framer, which rejects them at byte level before saxes sees them (SPEC E2).
    sax.on("error", (err) => this.saxError(classify(err.message), err.message));
    sax.on("opentag", (tag) => this.openTag(tag));
    sax.on("closetag", () => this.closeTag());
    sax.on("text", (t) => this.tree.text(t));
    sax.on("cdata", (t) => this.tree.text(t)); // never drop CDATA: that would be a parser differential
    sax.on("doctype", () => this.saxError("restricted-xml", "DTD")); // belt and braces (RFC 6120 §11.1)
    return sax;
  }

  /** Records the first error and aborts saxes, which would otherwise keep parsing the frame. */
  private saxError(condition: StreamErrorCondition, message: string): never {
    return this.abort(new XmlStreamError(condition, message));
  }

  private abort(err: XmlStreamError): never {
    this.ev.error ??= err;
    throw ABORT;
  }

  private checkXmlDecl(): void {
    // RFC 6120 §11.6: UTF-8 only.
    const encoding = this.sax.xmlDecl.encoding;
    if (encoding !== undefined && encoding.toLowerCase() !== "utf-8") {
      this.fail(new XmlStreamError("unsupported-encoding", `encoding ${encoding}`));
    }
  }

  private openTag(tag: SaxesTagNS): void {
    this.saxDepth++;
    if (this.saxDepth > 1) {
      const err = this.tree.open(tag);
      if (err !== null) this.abort(err);
      return;
    }
    const err = checkHeader(tag, this.contentNs);
    if (err !== null) return this.saxError(err, `stream header: ${err}`);
    const attrs: Record<string, string> = {};
    for (const a of Object.values(tag.attributes)) {
      if (a.name !== "xmlns" && a.prefix !== "xmlns") attrs[a.name] = a.value;
    }
    this.ev.header = { attrs };
  }

  private closeTag(): void {
    this.saxDepth--;
    if (this.saxDepth === 0) this.ev.closed = true;
    else this.tree.close();
  }

  private malformed(what: string): void {
    this.fail(new XmlStreamError("not-well-formed", `malformed ${what}`));
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

/** RFC 6120 §4.8.1-4.8.5 and §4.9.3.2/§4.9.3.10: stream namespace, content namespace, `stream` prefix. */
function checkHeader(tag: SaxesTagNS, contentNs: string): StreamErrorCondition | null {
  if (tag.local !== "stream" || tag.uri !== NS_STREAMS) return "invalid-namespace";
  if (tag.ns[""] !== contentNs) return "invalid-namespace";
  if (tag.prefix !== "stream") return "bad-namespace-prefix";
  return null;
}

function classify(message: string): StreamErrorCondition {
  // Prefix misuse is its own RFC 6120 condition (§4.9.3.2); everything else saxes reports is XML
  // well-formedness (undefined entities, bad character references, mismatched tags, ...).
  if (/namespace prefix|as prefix|prefix must be bound|assign .*prefix|undefine prefix/.test(message)) {
    return "bad-namespace-prefix";
  }
  return "not-well-formed";
}
