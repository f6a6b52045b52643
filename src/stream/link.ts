// A Link pairs one client stream with its upstream leg (DESIGN.md). It owns both sockets, the phase,
// the bound JID and a child logger. Negotiation (TLS, SASL termination) is in link-auth.ts.
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { Element } from "@xmpp/xml";
import { sharedAccounting, Wire } from "./wire.js";
import type { StreamHeader } from "../xml/parser.js";
import type { StreamErrorCondition, XmlStreamError } from "../xml/errors.js";
import { serialize, streamHeader, STREAM_CLOSE } from "../xml/serialize.js";
import { streamErrorXml, conditionOf, type AppCondition } from "./stream-error.js";
import { NS } from "./ns.js";
import type { UpstreamLeg } from "./upstream.js";
import type { DeliverOptions, Session } from "../chain/session.js";
import type { Delivery } from "../chain/runner.js";
import type { Metrics } from "../metrics/metrics.js";
import type { LinkDeps, Credentials, Phase } from "./link-deps.js";
import { ClientNegotiation, type NegotiationPort } from "./link-auth.js";
import { IqTracker } from "../protocol/iq-tracker.js";
import { lazyCounter, type LazyCounter } from "../metrics/lazy-counter.js";
import { serverNameOf } from "../net/tls/sni.js";
import { allowedRedirect, redirectXml } from "./redirect.js";
import type { ClientOrigin } from "../net/client-origin.js";

export type { Phase } from "./link-deps.js";
export type CloseReason = "client_close" | "upstream_close" | "stream_error" | "timeout" | "tls_error" | "drain" | "other";
type Origin = "client" | "upstream" | "mucmux";

const STANZAS = new Set(["message", "presence", "iq"]);

/** IQs mucmux itself sends on a session's leg (MUC service discovery) wait this long for their answer. */
const LEG_IQ_TIMEOUT_MS = 10_000;
/** Stanzas from the server kept between a Bind2 bind answer and the client's SASL2 success. */
const PRE_ONLINE_MAX = 1000;

export class Link implements Session, NegotiationPort {
  readonly slots = new Map<symbol, unknown>();
  readonly log;
  jid: string | undefined;
  phase: Phase;
  domain: string | undefined;
  leg: UpstreamLeg | undefined;
  readonly client: Wire;
  private headerSent = false;
  private closeSent = false;
  private closeReason: CloseReason = "other";
  private bindId: string | undefined;
  private readonly opened = performance.now();
  private readonly negotiation: ClientNegotiation;
  private finalized = false;
  /** Between SASL success and bind only; then handed to the account registry (SPEC A3). */
  private credentials: Credentials | undefined;
  /** IQs mucmux sends on this session's leg for itself; their answers never reach the client. */
  private legIqs: IqTracker | undefined;
  /** Bind2 (SPEC A15): the bind IQ mucmux sent for the client, and where its answer goes. */
  private inlineBind: { id: string; resolve(jid: string | undefined): void } | undefined;
  /** Bind2: stanzas from the server between the bind answer and the client's SASL2 success, replayed after it. */
  private preOnline: Element[] | undefined;
  /** Ids of IQs mucmux sent through the session's outbound path on the client's behalf (Bind2 carbons). */
  private inlineIds: Set<string> | undefined;

  constructor(
    readonly id: number,
    socket: Socket,
    readonly mode: "starttls" | "direct",
    readonly deps: LinkDeps<Link>,
    /** The client's address: the socket's peer, or the PROXY header's behind a trusted balancer. */
    readonly origin: ClientOrigin,
  ) {
    this.log = deps.log.child({ link: id });
    this.log.debug({ ip: origin.source.address, port: origin.source.port, via: origin.via, listener: mode }, "client connected");
    this.phase = mode === "starttls" ? "tls" : "auth";
    const limits = deps.config.limits;
    this.client = new Wire(
      socket,
      {
        onOpen: (h) => this.onClientOpen(h),
        onElement: (el) => this.onClientElement(el),
        onStreamClose: () => this.onClientStreamClose(),
        onError: (e) => this.onParseError(e, "client"),
        onSocketEnd: (err) => this.onClientSocketEnd(err),
        onDrain: () => this.leg?.wire.resume(),
        // Slow peers (SPEC E4): a dripped, never-finished stanza; a client that never reads.
        onTimeout: (what) => this.closeWithError("policy-violation", "mucmux",
          what === "stanza" ? "stanza not completed in time" : "client does not read its stream"),
      },
      { maxStanzaBytes: limits.maxUnauthedStanzaBytes, maxDepth: limits.maxDepth, maxAttributes: limits.maxAttributes, maxChildren: limits.maxChildren, maxElements: limits.maxElements },
      sharedAccounting(deps.metrics.bytes, "client"),
      limits.maxBufferedBytes,
      { stanzaMs: limits.stanzaSeconds * 1000, writeStallMs: limits.writeStallSeconds * 1000 },
    );
    this.negotiation = new ClientNegotiation(this);
    deps.metrics.connectionsOpen.inc({ listener: mode, side: "client" });
  }

  get encrypted(): boolean { return this.negotiation.encrypted; }

  /** Session port: bound and not closing. */
  get online(): boolean { return this.phase === "online"; }

  // ---- client → mucmux -------------------------------------------------------------------------

  private onClientOpen(h: StreamHeader): void {
    this.headerSent = false; // every (re)started stream gets its own header, also before an error
    const to = (h.attrs.to ?? "").toLowerCase();
    const domain = this.deps.config.domains.find((d) => d.toLowerCase() === to);
    if (this.phase === "bind" && this.domain && to !== this.domain.toLowerCase()) {
      return this.closeWithError("host-unknown", "mucmux", "the restarted stream names another domain");
    }
    if (!domain) return this.closeWithError("host-unknown", "mucmux", "this server does not serve that domain");
    // XEP-0368 §3: the client sets SNI to the JID's domain, i.e. the stream's 'to'. A server name mucmux
    // does not serve, or another of its domains than the stream's, is refused like an unknown 'to'.
    const sni = serverNameOf(this.client.socket);
    if (sni !== undefined && sni !== domain.toLowerCase()) {
      const served = this.deps.config.domains.some((d) => d.toLowerCase() === sni);
      return this.closeWithError("host-unknown", "mucmux", served ? "the stream's 'to' is not the TLS server name (SNI)" : "this server does not serve the TLS server name (SNI)");
    }
    this.domain = domain;
    this.sendHeader();
    if (h.attrs.version !== "1.0") return this.closeWithError("unsupported-version", "mucmux", "XMPP 1.0 streams only");
    if (this.phase === "bind" && this.leg) {
      this.client.write(this.leg.features.clientXml);
    } else {
      this.negotiation.sendFeatures();
    }
  }

  sendHeader(): void {
    this.client.write(streamHeader({ from: this.domain ?? this.deps.config.domains[0], id: randomBytes(8).toString("hex"), version: "1.0", "xml:lang": "en" }));
    this.headerSent = true;
  }

  private onClientElement(el: Element): void {
    if (this.phase === "closing" || this.phase === "closed") return;
    if (this.phase !== "bind" && this.phase !== "online") return this.negotiation.onElement(el);
    if (STANZAS.has(el.name) && !el.attrs.xmlns) return this.relayFromClient(el);
    if (el.name === "stream:error") {
      this.deps.metrics.streamErrors.inc({ condition: safeCondition(conditionOf(el)), origin: "client" });
      return this.onClientStreamClose();
    }
    // XEP-0352 (SPEC C15): mucmux's own CSI, for the traffic it sends; passed on too where the server offers it,
    // so the server's filtering applies to the session's direct traffic.
    if (el.attrs.xmlns === NS.csi && (el.name === "active" || el.name === "inactive")) {
      if (this.leg?.features.offers(NS.csi)) this.leg.wire.writeElement(el);
      this.deps.onCsi?.(this, el.name === "active");
      return;
    }
    this.closeWithError("unsupported-stanza-type", "mucmux", `<${el.name}/> is not supported here`);
  }

  private relayFromClient(el: Element): void {
    // SPEC A6: stamp the session's full JID before any stage sees the stanza.
    if (this.jid) el.attrs.from = this.jid;
    else {
      delete el.attrs.from; // not bound yet: the server stamps (or refuses) it, never a client-chosen from
      if (el.name === "iq" && el.attrs.type === "set" && el.getChild("bind", NS.bind)) this.bindId = el.attrs.id;
    }
    this.countStanza("c2s", el);
    this.deps.chain.run("c2s", this, el, this.c2sDelivery, "client");
  }

  private readonly c2sDelivery: Delivery = {
    onward: (el) => this.sendUpstream(el),
    back: (el) => this.deliver(el), // an answer to the client passes its outbound chain like any stanza
  };
  private readonly s2cDelivery: Delivery = {
    onward: (el, opts) => this.write(el, opts),
    back: (el) => this.sendUpstream(el),
  };

  /** Session port: toward the server on this session's own leg. */
  sendUpstream(el: Element): void {
    const leg = this.leg;
    if (!leg || this.phase === "closing" || this.phase === "closed") return;
    if (!leg.wire.writeElement(el)) this.client.pause(); // SPEC E4: resume on the leg's drain
  }

  /**
   * Session port: every stanza toward the device — relayed from the leg, fanned out from the anchor, synthesized —
   * passes this session's outbound (s2c) chain, then `write`.
   */
  deliver(el: Element, opts?: DeliverOptions): void {
    if (this.phase === "closed" || this.phase === "closing") return opts?.onWritten?.(new Error("session closed"));
    this.deps.chain.run("s2c", this, el, this.s2cDelivery, opts?.origin ?? "local", opts);
  }

  /**
   * An IQ of mucmux's own on this session's leg (MUC service discovery): resolves with the server's answer,
   * which the client never sees; undefined when there is no online leg, on timeout or when the leg closes.
   */
  queryUpstream(iq: Element): Promise<Element | undefined> {
    if (this.phase !== "online" || !this.leg) return Promise.resolve(undefined);
    this.legIqs ??= new IqTracker({ prefix: "mml", timeoutMs: LEG_IQ_TIMEOUT_MS });
    return this.legIqs.request(iq, (el) => { this.sendUpstream(el); return this.phase === "online"; }).catch(() => undefined);
  }

  private onClientStreamClose(): void {
    if (this.phase === "closing" || this.phase === "closed") return;
    this.closeReason = "client_close";
    this.phase = "closing";
    // Forward the close and wait (bounded) for upstream's close before closing the client stream.
    if (this.leg && !this.leg.wire.isEnded) {
      this.leg.wire.write(STREAM_CLOSE);
      const t = setTimeout(() => this.finishClose(), 2000);
      t.unref();
    } else {
      this.finishClose();
    }
  }

  /** Close both streams; the Link is finalized when the client socket has closed (bounded by end()). */
  private finishClose(): void {
    if (this.phase === "closed") return;
    if (!this.closeSent) this.client.write(STREAM_CLOSE);
    this.closeSent = true;
    this.client.end();
    if (this.leg && !this.leg.wire.isEnded) this.leg.wire.end();
    if (this.client.isEnded) this.finalize();
  }

  private onClientSocketEnd(err: Error | undefined): void {
    if (this.phase !== "closing") this.closeReason = err && this.phase === "tls" ? "tls_error" : "client_close";
    if (this.leg && !this.leg.wire.isEnded) {
      this.leg.wire.write(STREAM_CLOSE);
      this.leg.wire.end();
    }
    this.negotiation.abandon();
    this.finalize();
  }

  onParseError(e: XmlStreamError, side: "client" | "upstream"): void {
    this.deps.metrics.parseErrors.inc({ side, condition: e.condition });
    this.log.info({ side, condition: e.condition, reason: e.message }, "XML input rejected");
    if (side === "client") this.closeWithError(e.condition, "mucmux", e.message, e.appCondition);
    else this.closeWithError(this.deps.isDraining() ? "system-shutdown" : "reset", "mucmux", "the server connection failed");
  }

  // ---- upstream → mucmux -----------------------------------------------------------------------

  attachLeg(leg: UpstreamLeg): void {
    this.leg = leg;
    this.client.peer = leg.wire;
    leg.wire.peer = this.client;
    this.deps.metrics.connectionsOpen.inc({ listener: this.mode, side: "upstream" });
    leg.setHandlers({
      onElement: (el) => this.onUpstreamElement(el),
      onStreamClose: () => this.onLegGone(undefined),
      onError: (e) => this.onParseError(e, "upstream"),
      onSocketEnd: (err) => {
        this.deps.metrics.connectionsOpen.dec({ listener: this.mode, side: "upstream" });
        this.onLegGone(err);
      },
      onDrain: () => this.client.resume(),
    });
  }

  private onUpstreamElement(el: Element): void {
    if (this.phase === "closed") return;
    if (STANZAS.has(el.name) && !el.attrs.xmlns) {
      if (el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error")) {
        const inline = this.inlineBind;
        if (inline && el.attrs.id === inline.id) {
          return inline.resolve(el.attrs.type === "result" ? el.getChild("bind", NS.bind)?.getChildText("jid") ?? undefined : undefined);
        }
        if (this.inlineIds?.delete(el.attrs.id ?? "")) {
          if (this.inlineIds.size === 0) this.inlineIds = undefined;
          return; // the answer to an IQ the client never sent
        }
      }
      if (this.preOnline) {
        // Nothing may reach the client before its SASL2 success (bounded: the bind answer comes within seconds).
        if (this.preOnline.push(el) > PRE_ONLINE_MAX) this.closeWithError("resource-constraint", "mucmux", "too much before the login completed");
        return;
      }
      if (this.bindId !== undefined && el.name === "iq" && el.attrs.id === this.bindId) this.onBindResult(el);
      if (this.legIqs?.take(el)) return; // the answer to an IQ of mucmux's own
      this.countStanza("s2c", el);
      this.deps.chain.run("s2c", this, el, this.s2cDelivery, "upstream");
      return;
    }
    if (el.name === "stream:error") {
      let condition = safeCondition(conditionOf(el));
      this.deps.metrics.streamErrors.inc({ condition, origin: "upstream" });
      const text = el.getChildText("text", NS.streams) ?? undefined;
      if (condition === "see-other-host") {
        // Relayed only to allow-listed hosts; any other target may be upstream-internal (upstream.seeOtherHostAllow).
        const target = allowedRedirect(el, this.deps.config.upstream.seeOtherHostAllow);
        if (target !== undefined) return this.closeWithError(condition, "upstream", text, undefined, redirectXml(target, text));
        condition = "reset";
      }
      // Relay the server's verdict (e.g. conflict when the resource is taken over) unchanged.
      return this.closeWithError(condition, "upstream", text);
    }
    this.log.debug({ element: el.name }, "dropped stream-level element from upstream");
  }

  holdCredentials(c: Credentials | undefined): void {
    this.credentials = c;
  }

  /** Bind2 (SPEC A15): mucmux binds the client's resource upstream itself; resolves with the bound JID. */
  bindInline(resource: string): Promise<string | undefined> {
    const leg = this.leg;
    if (!leg || this.phase !== "bind") return Promise.resolve(undefined);
    const id = `mmbind-${randomBytes(6).toString("hex")}`;
    this.preOnline = [];
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.inlineBind?.resolve(undefined), LEG_IQ_TIMEOUT_MS);
      timer.unref();
      this.inlineBind = { id, resolve: (jid) => { clearTimeout(timer); this.inlineBind = undefined; resolve(jid); } };
      leg.wire.write(`<iq type='set' id='${id}'><bind xmlns='${NS.bind}'><resource>${resource}</resource></bind></iq>`);
    });
  }

  /** Bind2: the client has its SASL2 success naming `jid`; the session goes online, carbons enabled as asked. */
  boundInline(jid: string, carbons: boolean): void {
    this.goOnline(jid);
    const early = this.preOnline ?? [];
    this.preOnline = undefined;
    for (const el of early) this.onUpstreamElement(el);
    if (!carbons || this.phase !== "online") return;
    const id = `mmcarbons-${randomBytes(6).toString("hex")}`;
    (this.inlineIds ??= new Set()).add(id);
    // Through the outbound path like the client's own enable, so stages see carbons turned on.
    this.relayFromClient(new Element("iq", { type: "set", id }).c("enable", { xmlns: NS.carbons }).up());
  }

  private onBindResult(el: Element): void {
    this.bindId = undefined;
    const jid = el.attrs.type === "result" ? el.getChild("bind", NS.bind)?.getChildText("jid") : undefined;
    if (jid) this.goOnline(jid);
  }

  private goOnline(jid: string): void {
    this.jid = jid; // SPEC A4: the client gets exactly the JID upstream bound
    this.phase = "online";
    this.log.debug("resource bound");
    const creds = this.credentials;
    this.credentials = undefined;
    this.deps.onBound(this, creds);
  }

  /**
   * The one writer toward the client, at the end of the outbound chain: the shared serialization of a fanned-out
   * stanza when no stage changed it, else mucmux's own serialization. `onWritten` learns when the bytes were
   * handed to the kernel, or that they never will be.
   */
  private write(el: Element, opts: DeliverOptions | undefined): void {
    const onWritten = opts?.onWritten;
    if (this.phase === "closed" || this.phase === "closing") return onWritten?.(new Error("session closed"));
    const text = opts?.prepared && this.jid !== undefined ? opts.prepared.render(this.jid) : serialize(el);
    if (!this.client.write(text, onWritten)) {
      if (this.client.overCap()) return this.closeWithError("policy-violation", "mucmux", "client does not read its stream");
      this.leg?.wire.pause();
    }
  }

  private onLegGone(_err: Error | undefined): void {
    if (this.phase === "closing") return this.finishClose();
    if (this.phase === "closed") return;
    this.closeReason = "upstream_close";
    // SPEC E5: the session cannot continue without its leg; tell the client to reconnect.
    this.closeWithError(this.deps.isDraining() ? "system-shutdown" : "reset", "mucmux", "the server connection closed");
  }

  // ---- closing ---------------------------------------------------------------------------------

  /** `errorXml` replaces the generated `<stream:error>` (a relayed see-other-host carries its target). */
  closeWithError(condition: StreamErrorCondition, origin: Origin, text?: string, app?: AppCondition, errorXml?: string): void {
    if (this.phase === "closing" || this.phase === "closed") return;
    if (origin !== "upstream") this.deps.metrics.streamErrors.inc({ condition, origin });
    if (this.closeReason === "other") {
      this.closeReason = origin === "upstream" ? "upstream_close" : condition === "system-shutdown" ? "drain" : condition === "connection-timeout" ? "timeout" : "stream_error";
    }
    if (!this.headerSent) this.sendHeader();
    this.phase = "closing";
    this.client.write(errorXml ?? streamErrorXml(condition, text, app)); // includes </stream:stream>
    this.closeSent = true;
    this.finishClose();
  }

  /** SIGTERM drain (SPEC E6). */
  shutdown(): void {
    this.closeReason = "drain";
    this.closeWithError("system-shutdown", "mucmux", "mucmux is restarting");
  }

  private finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.phase = "closed";
    this.negotiation.abandon();
    this.credentials = undefined;
    this.inlineBind?.resolve(undefined);
    this.preOnline = undefined;
    this.legIqs?.cancelAll();
    const m = this.deps.metrics;
    m.connectionsOpen.dec({ listener: this.mode, side: "client" });
    m.connectionsClosed.inc({ listener: this.mode, side: "client", reason: this.closeReason });
    m.sessionDuration.observe((performance.now() - this.opened) / 1000);
    this.deps.onClosed(this);
  }

  private countStanza(direction: "c2s" | "s2c", el: Element): void {
    // Cached LazyCounters: resolving labels on every stanza was ~5 % of the relay's CPU, and
    // prom-client still hashes them on every inc(); no key string is built per stanza either.
    let cache = STANZA_COUNTERS.get(this.deps.metrics);
    if (!cache) STANZA_COUNTERS.set(this.deps.metrics, (cache = { c2s: new Map(), s2c: new Map() }));
    const byName = cache[direction];
    let byType = byName.get(el.name);
    if (!byType) byName.set(el.name, (byType = new Map()));
    const type = stanzaType(el);
    let counter = byType.get(type);
    if (!counter) byType.set(type, (counter = lazyCounter(this.deps.metrics.stanzas, direction, el.name, type)));
    counter.inc();
  }
}

/** Per metrics registry (not per process): label values are bounded (kind is message|presence|iq). */
const STANZA_COUNTERS = new WeakMap<Metrics, Record<"c2s" | "s2c", Map<string, Map<string, LazyCounter>>>>();

const TYPES: Record<string, Set<string>> = {
  message: new Set(["chat", "groupchat", "headline", "normal", "error"]),
  presence: new Set(["unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"]),
  iq: new Set(["get", "set", "result", "error"]),
};

/** A bounded label value for the stanza's type attribute. */
function stanzaType(el: Element): string {
  const t = el.attrs.type;
  if (t === undefined) return el.name === "message" ? "normal" : el.name === "presence" ? "available" : "none";
  return TYPES[el.name]?.has(t) ? t : "other";
}

const CONDITIONS = new Set<string>([
  "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown",
  "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml",
  "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
  "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
  "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version",
]);

/** Known RFC 6120 condition or undefined-condition (a bounded label value, and nothing else is relayed). */
export function safeCondition(c: string): StreamErrorCondition {
  return (CONDITIONS.has(c) ? c : "undefined-condition") as StreamErrorCondition;
}
