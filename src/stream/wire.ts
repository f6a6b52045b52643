// One side of a Link: a socket (plain or TLS, swappable on STARTTLS), its stream parser and its write path.
// Parsing never throws out of a socket handler (SPEC E1–E3): errors arrive as onError with a condition.
import type { Socket } from "node:net";
import type { Element } from "@xmpp/xml";
import { StreamParser, type ParserLimits, type StreamHeader } from "../xml/parser.js";
import { XmlStreamError } from "../xml/errors.js";
import { serialize } from "../xml/serialize.js";

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
}

export interface WireAccounting {
  bytesIn(n: number): void;
  bytesOut(n: number): void;
}

export class Wire {
  parser: StreamParser;
  private sock: Socket;
  private ended = false;
  private detached = false;

  constructor(
    socket: Socket,
    private readonly handlers: WireHandlers,
    private limits: ParserLimits,
    private readonly accounting: WireAccounting,
    private readonly maxBufferedBytes: number,
  ) {
    this.sock = socket;
    this.parser = this.newParser(limits);
    this.attach(socket);
  }

  private newParser(limits: ParserLimits): StreamParser {
    const h = this.handlers;
    return new StreamParser(
      {
        onStreamOpen: (header) => h.onOpen(header),
        onElement: (el, n) => h.onElement(el, n),
        onStreamClose: () => h.onStreamClose(),
        onError: (e) => h.onError(e),
      },
      limits,
    );
  }

  setLimits(l: Partial<ParserLimits>): void {
    this.limits = { ...this.limits, ...l };
    this.parser.setLimits(l);
  }

  get socket(): Socket { return this.sock; }
  get isEnded(): boolean { return this.ended; }

  /** The wire this one relays to: its writes are corked while one read is parsed, so the stanzas of one
   * read leave in one write (one TLS record, one syscall) instead of one each. */
  peer: Wire | undefined;

  private readonly onData = (chunk: Buffer) => {
    this.accounting.bytesIn(chunk.length);
    const peer = this.peer;
    peer?.sock.cork();
    this.parser.write(chunk);
    peer?.sock.uncork();
  };
  private readonly onClose = () => this.finish(undefined);
  private readonly onErr = (e: Error) => this.finish(e);
  private readonly onDrainEvt = () => this.handlers.onDrain();

  private attach(socket: Socket): void {
    this.sock = socket;
    this.detached = false;
    socket.on("data", this.onData);
    socket.on("close", this.onClose);
    socket.on("error", this.onErr);
    socket.on("drain", this.onDrainEvt);
  }

  /** Detach from the current socket (for a TLS upgrade); the caller wraps it and calls `replaceSocket`. */
  detach(): Socket {
    const s = this.sock;
    s.off("data", this.onData);
    s.off("close", this.onClose);
    s.off("error", this.onErr);
    s.off("drain", this.onDrainEvt);
    this.detached = true;
    return s;
  }

  /**
   * Continue on a new (TLS) socket with a fresh parser. The old parser is stopped, so bytes that followed
   * <starttls/> or <proceed/> in the same plaintext read are never parsed (STARTTLS command injection).
   */
  replaceSocket(socket: Socket): void {
    this.parser.stop();
    this.parser = this.newParser(this.limits);
    this.attach(socket);
  }

  private finish(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.parser.stop();
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
    return this.sock.write(data, "utf8", onFlushed);
  }

  writeElement(el: Element): boolean {
    return this.write(serialize(el));
  }

  /** Bytes queued in the socket that the peer has not read yet. */
  get buffered(): number { return this.sock.writableLength; }
  overCap(): boolean { return this.sock.writableLength > this.maxBufferedBytes; }

  pause(): void { if (!this.ended) this.sock.pause(); }
  resume(): void { if (!this.ended) this.sock.resume(); }

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
    this.sock.destroy();
  }
}
