// A scripted upstream XMPP server for transcript tests: plain TCP on 127.0.0.1:<ephemeral>, the
// legacy server mucmux relays to. It negotiates by itself (stream header and features, SASL PLAIN
// that accepts any password except "wrong", stream restart, resource binding as
// `user@domain/resource`) and answers the IQs a fresh session sends (session, roster, carbons) with
// minimal results. Everything else is up to the test script: every stanza mucmux writes is recorded
// per connection, parsed by mucmux's own StreamParser, and the script writes stanzas on a connection
// of its choice. mucmux must be configured with `upstream.tls: none` (PLAIN is allowed to loopback).
import net from "node:net";
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";

const NS = {
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  roster: "jabber:iq:roster",
  carbons: "urn:xmpp:carbons:2",
  streams: "http://etherx.jabber.org/streams",
} as const;

const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 100, maxChildren: 20_000 };
const STANZAS = new Set(["message", "presence", "iq"]);
const PING = "urn:xmpp:ping";

/**
 * IQ ids of ordering round trips (test/support/transcript.ts): a ping with such an id that a client sends
 * to the server is answered at once, and answers with such an id are counted in `barriers`; neither is
 * recorded in `received`, so that a transcript's expectations never see them.
 */
export const BARRIER_ID_PREFIX = "transcript-barrier-";

/** One c2s connection from mucmux: a session's leg or an anchor. */
export class UpstreamConnection {
  /** Account (localpart) that authenticated, once SASL succeeded. */
  user: string | undefined;
  /** Full JID bound on this connection, once bound. */
  jid: string | undefined;
  /** Every stanza mucmux wrote after authentication (the bind request included), in order. */
  readonly received: Element[] = [];
  /** Index in `received` of the first stanza after the bind request. */
  boundAt = 0;
  /** Ids of the barrier answers mucmux wrote on this connection (see BARRIER_ID_PREFIX). */
  readonly barriers = new Set<string>();
  closed = false;
  /** Every byte mucmux wrote on this connection, raw, in order (adversarial tests assert on it). */
  readonly bytes: Buffer[] = [];
  private authed = false;
  private domain = "localhost";
  private readonly parser: StreamParser;

  constructor(readonly id: number, private readonly socket: net.Socket) {
    this.parser = new StreamParser(
      {
        onStreamOpen: (h) => this.onOpen(h.attrs),
        onElement: (el) => this.onElement(el),
        onStreamClose: () => this.close("stream"),
        onError: () => this.close("reset"),
      },
      LIMITS,
      { sliceChars: 8192 }, // big stanzas do not stall the test process (event-loop tests measure mucmux)
    );
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => {
      this.bytes.push(d);
      this.parser.write(d);
    });
    socket.on("close", () => { this.closed = true; });
    socket.on("error", () => { this.closed = true; });
  }

  /** The raw bytes received so far, as UTF-8 text. */
  get rawText(): string {
    return Buffer.concat(this.bytes).toString("utf8");
  }

  /** Resource of the bound JID. */
  get resource(): string | undefined {
    const slash = this.jid?.indexOf("/") ?? -1;
    return slash < 0 ? undefined : this.jid?.slice(slash + 1);
  }

  /** The anchor is the connection whose resource is `mucmux-<8 hex>` (SPEC A7). */
  get isAnchor(): boolean {
    return /^mucmux-[0-9a-f]{8}$/.test(this.resource ?? "");
  }

  /** Stop / restart reading from mucmux (a server that stops reading: backpressure tests). */
  pauseReading(): void { this.socket.pause(); }
  resumeReading(): void { this.socket.resume(); }

  /** Write raw XML (one or more stanzas) on this connection. */
  send(xmlText: string): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(xmlText);
  }

  /** Close from the server side: "stream" sends `</stream:stream>` first, "reset" just drops TCP. */
  close(how: "stream" | "reset" = "stream"): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.stop();
    if (how === "stream" && !this.socket.destroyed) {
      this.socket.end("</stream:stream>");
      setTimeout(() => this.socket.destroy(), 500).unref();
    } else {
      this.socket.destroy();
    }
  }

  private onOpen(attrs: Record<string, string>): void {
    this.domain = attrs.to ?? this.domain;
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS.streams}' ` +
      `id='${randomBytes(6).toString("hex")}' from='${this.domain}' version='1.0' xml:lang='en'>`);
    this.send(this.authed
      ? `<stream:features><bind xmlns='${NS.bind}'/><session xmlns='${NS.session}'><optional/></session></stream:features>`
      : `<stream:features><mechanisms xmlns='${NS.sasl}'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`);
  }

  private onElement(el: Element): void {
    if (!this.authed) return this.onSasl(el);
    if (!STANZAS.has(el.name)) return;
    if (el.name === "iq" && el.attrs.id?.startsWith(BARRIER_ID_PREFIX)) return this.onBarrier(el);
    this.received.push(el);
    if (el.name === "iq") this.autoAnswer(el);
  }

  private onSasl(el: Element): void {
    if (el.name !== "auth" || el.attrs.xmlns !== NS.sasl || el.attrs.mechanism !== "PLAIN") {
      this.send(`<failure xmlns='${NS.sasl}'><invalid-mechanism/></failure>`);
      return;
    }
    const [, user = "", password = ""] = Buffer.from(el.getText().trim(), "base64").toString("utf8").split("\0");
    if (password === "wrong" || user === "") {
      this.send(`<failure xmlns='${NS.sasl}'><not-authorized/></failure>`);
      return;
    }
    this.user = user;
    this.authed = true;
    this.parser.reset(); // RFC 6120 §6.4.6: the client restarts the stream after <success/>
    this.send(`<success xmlns='${NS.sasl}'/>`);
  }

  /** A barrier: a client's ping to the server is answered; mucmux's answer to one sent on this connection is noted. */
  private onBarrier(iq: Element): void {
    const id = iq.attrs.id ?? "";
    if (iq.attrs.type === "result" || iq.attrs.type === "error") {
      this.barriers.add(id);
    } else if (iq.attrs.type === "get" && iq.getChild("ping", PING)) {
      this.send(`<iq type='result' id='${id}' from='${iq.attrs.to ?? this.domain}'${this.jid ? ` to='${this.jid}'` : ""}/>`);
    }
  }

  /** The minimal answers a fresh session needs; every other IQ is left to the script. */
  private autoAnswer(iq: Element): void {
    const id = iq.attrs.id ?? "";
    if (iq.attrs.to !== undefined && iq.attrs.to !== this.domain) return;
    const bind = iq.getChild("bind", NS.bind);
    if (iq.attrs.type === "set" && bind) {
      const resource = bind.getChildText("resource") || randomBytes(4).toString("hex");
      this.jid = `${this.user ?? ""}@${this.domain}/${resource}`;
      this.boundAt = this.received.length;
      this.send(`<iq type='result' id='${id}'><bind xmlns='${NS.bind}'><jid>${this.jid}</jid></bind></iq>`);
      return;
    }
    const to = this.jid ? ` to='${this.jid}'` : "";
    if (iq.attrs.type === "set" && iq.getChild("session", NS.session)) this.send(`<iq type='result' id='${id}'${to}/>`);
    else if (iq.attrs.type === "get" && iq.getChild("query", NS.roster)) this.send(`<iq type='result' id='${id}'${to}><query xmlns='${NS.roster}'/></iq>`);
    else if (iq.attrs.type === "set" && (iq.getChild("enable", NS.carbons) || iq.getChild("disable", NS.carbons))) this.send(`<iq type='result' id='${id}'${to}/>`);
  }
}

export class FakeUpstream {
  readonly connections: UpstreamConnection[] = [];
  private nextId = 1;

  private constructor(private readonly server: net.Server, readonly port: number) {
    server.on("connection", (socket) => this.connections.push(new UpstreamConnection(this.nextId++, socket)));
  }

  static async start(): Promise<FakeUpstream> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("fake upstream: no TCP address");
    return new FakeUpstream(server, address.port);
  }

  /**
   * The newest bound connection of `user` whose resource is `resource`, or the newest anchor when
   * `resource` is "anchor" (after a reconnect the old anchor connection is still listed, closed).
   */
  find(user: string, resource: string): UpstreamConnection | undefined {
    for (let i = this.connections.length - 1; i >= 0; i--) {
      const c = this.connections[i] as UpstreamConnection;
      if (c.jid === undefined || c.user !== user) continue;
      if (resource === "anchor" ? c.isAnchor : c.resource === resource) return c;
    }
    return undefined;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.close("reset");
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
