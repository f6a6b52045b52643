// One client-side XMPP stream on a socket, for raw test clients (scram-client.ts): write text, read the
// server's top-level elements in order (parsed by mucmux's own StreamParser, canonical names such as
// `stream:features`), and wait for them by event, each wait bounded. A <success/> resets the parser
// (RFC 6120 §6.4.6) and a <proceed/> stops it (the next bytes are TLS: the caller makes a new connection).
import type net from "node:net";
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";
import { STANZA_LIMITS } from "./stanzas.js";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

export class XmppConnection {
  /** Every top-level element received, in order. */
  readonly received: Element[] = [];
  /** Attributes of the server's latest stream header. */
  header: Record<string, string> | undefined;
  /** Set when the server closed the stream or the socket, or sent XML the parser rejected (`parseError`). */
  closed = false;
  parseError: string | undefined;
  /** Called for every element as it arrives, before any reader sees it (stream management's acks, push-client.ts). */
  readonly listeners = new Set<(el: Element) => void>();
  private cursor = 0;
  private readonly parser: StreamParser;
  private readonly detach: () => void;
  private readonly wakers = new Set<() => void>();

  constructor(readonly socket: net.Socket, private readonly timeoutMs = 10_000) {
    this.parser = new StreamParser({
      onStreamOpen: (h) => { this.header = h.attrs; },
      onElement: (el) => this.onElement(el),
      onStreamClose: () => this.onClosed(),
      onError: (e) => { this.parseError = `${e.condition}: ${e.message}`; this.onClosed(); },
    }, STANZA_LIMITS);
    const onData = (d: Buffer) => this.parser.write(d);
    socket.on("data", onData);
    socket.on("close", () => this.onClosed());
    socket.on("error", () => this.onClosed());
    this.detach = () => socket.off("data", onData);
  }

  /** Sends a stream header (also the restart after STARTTLS or SASL). */
  open(domain = "localhost"): void {
    this.send(`<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xmlns='jabber:client' ` +
      "xmlns:stream='http://etherx.jabber.org/streams'>");
  }

  send(xml: string): void {
    if (!this.socket.destroyed) this.socket.write(xml);
  }

  /** The next unread element; rejects after the timeout or when the stream ends first. */
  async next(timeoutMs = this.timeoutMs): Promise<Element> {
    const el = await this.nextOrClosed(timeoutMs);
    if (!el) throw new Error(`stream closed${this.parseError ? ` (${this.parseError})` : ""}; received: ${this.transcript()}`);
    return el;
  }

  /** The next unread element, or undefined once the stream has ended and everything was read. */
  async nextOrClosed(timeoutMs = this.timeoutMs): Promise<Element | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.cursor >= this.received.length) {
      if (this.closed) return undefined;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for an element; received: ${this.transcript()}`);
      await this.event(left);
    }
    return this.received[this.cursor++];
  }

  /** The next unread element, which must be named `name` (e.g. "stream:features", "proceed", "iq"). */
  async expect(name: string, timeoutMs = this.timeoutMs): Promise<Element> {
    const el = await this.next(timeoutMs);
    if (el.name !== name) throw new Error(`expected <${name}>, got ${el.toString()}`);
    return el;
  }

  /** Skips unread elements until one satisfies `match`; returns it. */
  async waitFor(match: (el: Element) => boolean, timeoutMs = this.timeoutMs): Promise<Element> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const el = await this.next(Math.max(1, end - Date.now()));
      if (match(el)) return el;
    }
  }

  /** Resolves once the stream or socket has ended (rejects after the timeout). */
  async waitClosed(timeoutMs = this.timeoutMs): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`stream not closed within ${timeoutMs} ms`);
      await this.event(left);
    }
  }

  /** Closes the stream (`</stream:stream>`) and, a moment later if the server has not, the socket. */
  close(): void {
    if (this.socket.destroyed) return;
    this.socket.end("</stream:stream>");
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** What was received, serialized, for error messages. */
  transcript(): string {
    return this.received.map((e) => e.toString()).join("").slice(-2000);
  }

  private onElement(el: Element): void {
    this.received.push(el);
    for (const listener of [...this.listeners]) listener(el);
    if (el.name === "success" && el.attrs.xmlns === NS_SASL) this.parser.reset();
    if (el.name === "proceed" && el.attrs.xmlns === NS_TLS) {
      this.parser.stop();
      this.detach();
    }
    this.wakeAll();
  }

  private onClosed(): void {
    this.closed = true;
    this.wakeAll();
  }

  /** Resolves on the next element or end of stream, or after `ms`. */
  private event(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }
}
