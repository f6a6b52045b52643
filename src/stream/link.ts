// A Link pairs one client stream with its upstream leg (DESIGN.md). It owns both sockets, the phase,
// the bound JID and a child logger. Negotiation (TLS, SASL termination) is in link-auth.ts.
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { Element } from "@xmpp/xml";
import { sharedAccounting, Wire, wireSettings } from "./wire.js";
import type { StreamHeader } from "../xml/parser.js";
import type { StreamErrorCondition, XmlStreamError } from "../xml/errors.js";
import { escapeAttr, escapeText, serialize, streamHeader, STREAM_CLOSE } from "../xml/serialize.js";
import { streamErrorXml, conditionOf, type AppCondition } from "./stream-error.js";
import { NS } from "./ns.js";
import type { LegHandlers, UpstreamLeg } from "./upstream.js";
import type { DeliverOptions, Session } from "../chain/session.js";
import type { Delivery } from "../chain/runner.js";
import type { Metrics } from "../metrics/metrics.js";
import type { LinkDeps, Credentials, Phase, HandedIn } from "./link-deps.js";
import type { HandoffPreamble } from "../cluster/internal.js";
import { ClientNegotiation, type NegotiationPort } from "./link-auth.js";
import { IqTracker } from "../protocol/iq-tracker.js";
import { lazyCounter, type LazyCounter } from "../metrics/lazy-counter.js";
import { serverNameOf } from "../net/tls/sni.js";
import { allowedRedirect, redirectXml } from "./redirect.js";
import type { ClientOrigin } from "../net/client-origin.js";
import type { Logger } from "../log.js";
import { ClientSm, LegSm, NS_SM, parseH, wrapH } from "./sm.js";
import type { WireHandlers } from "./wire.js";
import { bareKey, resourceOf } from "../account/jid.js";

export type { Phase } from "./link-deps.js";
export type CloseReason = "client_close" | "upstream_close" | "stream_error" | "timeout" | "tls_error" | "drain" | "handoff" | "other";
/** How a hibernated session ended (mucmux_sm_hibernation_ends_total). */
type HibernationEnd = "resumed" | "expired" | "overflow" | "drain" | "failed";
type Origin = "client" | "upstream" | "mucmux";

const STANZAS = new Set(["message", "presence", "iq"]);

/** IQs mucmux itself sends on a session's leg (MUC service discovery) wait this long for their answer. */
const LEG_IQ_TIMEOUT_MS = 10_000;
/** Stanzas from the server kept between a Bind2 bind answer and the client's SASL2 success. */
const PRE_ONLINE_MAX = 1000;
/** Client elements that arrive while a `<resume/>` is being answered, replayed after `<resumed/>`. */
const RESUME_HELD_MAX = 100;

const smFailed = (condition: string, h?: number) =>
  `<failed xmlns='${NS_SM}'${h === undefined ? "" : ` h='${h}'`}><${condition} xmlns='${NS.stanzas}'/></failed>`;
const INERT_LEG = { onElement() {}, onStreamClose() {}, onError() {}, onSocketEnd() {}, onDrain() {} };
const INERT_CLIENT: WireHandlers = { ...INERT_LEG, onOpen() {} };

export class Link implements Session, NegotiationPort {
  // The wires' handlers and the chain's deliveries are small objects whose methods call this Link (classes nested
  // here may use its private methods), not a closure per event: a closure costs 56 bytes, and these are per session.
  private static readonly ClientEvents = class implements WireHandlers {
    constructor(private readonly link: Link) {}
    onOpen(h: StreamHeader): void { this.link.onClientOpen(h); }
    onElement(el: Element): void { this.link.onClientElement(el); }
    onStreamClose(): void { this.link.onClientStreamClose(); }
    onError(e: XmlStreamError): void { this.link.onParseError(e, "client"); }
    onSocketEnd(err: Error | undefined): void { this.link.onClientSocketEnd(err); }
    onDrain(): void { this.link.leg?.wire.resume(); }
    onTimeout(what: "stanza" | "write-stall"): void { this.link.onClientTimeout(what); }
  };

  private static readonly LegEvents = class implements LegHandlers {
    constructor(private readonly link: Link) {}
    onElement(el: Element): void { this.link.onUpstreamElement(el); }
    onStreamClose(): void { this.link.onLegGone(undefined); }
    onError(e: XmlStreamError): void { this.link.onParseError(e, "upstream"); }
    onSocketEnd(err: Error | undefined): void {
      this.link.deps.metrics.connectionsOpen.dec({ listener: this.link.mode, side: "upstream" });
      this.link.onLegGone(err);
    }
    onDrain(): void { this.link.client.resume(); }
  };

  /** c2s: onward to the server on the session's leg; an answer to the client passes its outbound chain like any stanza. */
  private static readonly C2sDelivery = class implements Delivery {
    constructor(private readonly link: Link) {}
    onward(el: Element): void { this.link.sendUpstream(el); }
    back(el: Element): void { this.link.deliver(el); }
  };

  /** s2c: onward to the device through the one writer; back to the server on the session's leg. */
  private static readonly S2cDelivery = class implements Delivery {
    constructor(private readonly link: Link) {}
    onward(el: Element, opts: DeliverOptions | undefined): void { this.link.write(el, opts); }
    back(el: Element): void { this.link.sendUpstream(el); }
  };

  readonly slots = new Map<symbol, unknown>();
  /** Made at the first line this session logs (a child logger is ~300 bytes, and most sessions log nothing). */
  private childLog: Logger | undefined;
  jid: string | undefined;
  phase: Phase;
  domain: string | undefined;
  leg: UpstreamLeg | undefined;
  /** The client's connection; a resumed session adopts the one it was resumed on (SPEC F5). */
  client: Wire;
  /** XEP-0198 toward the client (SPEC F1), from the client's `<enable/>` on. */
  sm: ClientSm | undefined;
  /** A `<resume/>` naming this session is being answered: a second one is refused. */
  resuming = false;
  /** The account this stream authenticated as (bare, lower case), once SASL succeeded. */
  private authenticatedAs: string | undefined;
  /** XEP-0198 on the leg (SPEC F6): enabled when the client enabled resumption and the server offers it. */
  private legSm: LegSm | undefined;
  /** The leg's stanza being relayed right now and its number there (SPEC F6: acknowledged once the device has it). */
  private legRun: { el: Element; seq: number } | undefined;
  /** Waiting for the leg's answer to a `<resume/>` mucmux sent on it. */
  private legSmWait: ((el: Element | undefined) => void) | undefined;
  private hibernation: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  /** What re-establishing the server side restores (SPEC F7): the last broadcast presence, carbons, CSI. */
  private lastPresence: Element | undefined;
  private carbons = false;
  private inactive = false;
  /** This Link's client socket is counted in mucmux_connections_open (a resumed one hands its socket over). */
  private clientCounted = true;
  /** This Link's connection went on as another session's (SPEC F5): it never was a session of its own. */
  private handedOver = false;
  /** Client elements that arrived while this stream's `<resume/>` was answered. */
  private heldForResume: Element[] | undefined;
  private headerSent = false;
  /** A handed-in stream's first header was read (the entry replica answered it). */
  private handedInOpened = false;
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
    /** The listener of the client's connection (changes when a session is resumed on another one). */
    public mode: "starttls" | "direct",
    readonly deps: LinkDeps<Link>,
    /** The client's address: the socket's peer, or the PROXY header's behind a trusted balancer. */
    public origin: ClientOrigin,
    /** SPEC H2: another replica took this client's TLS and handed its stream here, before SASL. */
    readonly handedIn: HandedIn | undefined = undefined,
  ) {
    this.debug("client connected", { ip: origin.source.address, port: origin.source.port, via: origin.via, listener: mode });
    this.phase = mode === "starttls" && !handedIn ? "tls" : "auth";
    const limits = deps.config.limits;
    const settings = wireSettings(limits);
    this.client = new Wire(
      socket,
      this.clientHandlers(),
      settings.clientUnauthed,
      sharedAccounting(deps.metrics.bytes, "client"),
      limits.maxBufferedBytes,
      settings.clientTimeouts,
    );
    this.client.gate = deps.logins; // SPEC E8: until online
    this.negotiation = new ClientNegotiation(this);
    deps.metrics.connectionsOpen.inc({ listener: mode, side: "client" });
  }

  get encrypted(): boolean { return this.negotiation.encrypted; }

  /** This session's logger: the process's, bound to the link id. */
  get log(): Logger {
    return (this.childLog ??= this.deps.log.child({ link: this.id }));
  }

  /** A debug line, without making the child logger when debug is off. */
  debug(msg: string, fields?: object): void {
    if (this.deps.log.isLevelEnabled("debug")) this.log.debug(fields ?? {}, msg);
  }

  /** Session port: bound and not closing; a hibernated session's stanzas wait for its resume (SPEC F4). */
  get online(): boolean { return this.phase === "online" || this.phase === "hibernated"; }
  get hibernated(): boolean { return this.phase === "hibernated"; }

  private clientHandlers(): WireHandlers {
    return new Link.ClientEvents(this);
  }

  /**
   * Slow peers (SPEC E4): a dripped, never-finished stanza; a client that never reads (with resumption, a
   * connection that is gone as far as mucmux can tell: the session hibernates, SPEC F4).
   */
  private onClientTimeout(what: "stanza" | "write-stall"): void {
    if (what === "write-stall" && this.resumable) return this.client.destroy();
    this.closeWithError("policy-violation", "mucmux", what === "stanza" ? "stanza not completed in time" : "client does not read its stream");
  }

  /** Bound, with resumption granted: a lost connection hibernates the session instead of ending it. */
  private get resumable(): boolean {
    return this.phase === "online" && this.sm?.id !== undefined && !this.deps.isDraining();
  }

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
    const sni = this.handedIn ? this.handedIn.sni : serverNameOf(this.client.socket);
    if (sni !== undefined && sni !== domain.toLowerCase()) {
      const served = this.deps.config.domains.some((d) => d.toLowerCase() === sni);
      return this.closeWithError("host-unknown", "mucmux", served ? "the stream's 'to' is not the TLS server name (SNI)" : "this server does not serve the TLS server name (SNI)");
    }
    this.domain = domain;
    this.negotiation.clientLang = h.attrs["xml:lang"];
    if (this.handedIn && !this.headerSent && this.phase === "auth" && !this.handedInOpened) {
      // SPEC H2: the entry replica answered this header and sent the features already; the client's <auth/> is next.
      this.handedInOpened = true;
      this.headerSent = true;
      return;
    }
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
    if (this.phase === "closing" || this.phase === "closed" || this.phase === "hibernated") return;
    if (this.heldForResume) {
      if (this.heldForResume.push(el) > RESUME_HELD_MAX) this.closeWithError("policy-violation", "mucmux", "too much sent before <resumed/>");
      return;
    }
    if (el.attrs.xmlns === NS_SM && (this.phase === "auth" || this.phase === "authenticating")) {
      // SPEC F5: nothing of stream management before authentication; the client may still log in.
      if (el.name === "resume") this.deps.metrics.smResumeFailures.inc({ reason: "unauthenticated" });
      return void this.client.write(smFailed("unexpected-request"));
    }
    if (this.phase !== "bind" && this.phase !== "online") return this.negotiation.onElement(el);
    if (STANZAS.has(el.name) && !el.attrs.xmlns) {
      if (this.sm) this.sm.inbound++; // SPEC F2: every stanza read counts, whatever becomes of it
      this.remember(el);
      return this.relayFromClient(el);
    }
    if (el.attrs.xmlns === NS_SM) return this.onSmNonza(el);
    if (el.name === "stream:error") {
      this.deps.metrics.streamErrors.inc({ condition: safeCondition(conditionOf(el)), origin: "client" });
      return this.onClientStreamClose();
    }
    // XEP-0352 (SPEC C15): mucmux's own CSI, for the traffic it sends; passed on too where the server offers it,
    // so the server's filtering applies to the session's direct traffic.
    if (el.attrs.xmlns === NS.csi && (el.name === "active" || el.name === "inactive")) {
      this.inactive = el.name === "inactive";
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

  private readonly c2sDelivery: Delivery = new Link.C2sDelivery(this);
  private readonly s2cDelivery: Delivery = new Link.S2cDelivery(this);

  /** Session port: toward the server on this session's own leg. */
  sendUpstream(el: Element): void {
    const leg = this.leg;
    if (!leg || this.phase === "closing" || this.phase === "closed") return;
    const text = serialize(el);
    const legSm = this.legSm;
    if (legSm) {
      legSm.push(text); // SPEC F6: kept until the server acknowledges it, resent after an upstream resume
      this.requestLegAck(legSm);
    }
    if (!leg.wire.write(text)) this.client.pause(); // SPEC E4: resume on the leg's drain
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
    if (this.resumable) return this.hibernate(); // SPEC F4: no stream close, so the client may come back
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

  /** `counted`: the leg is already in mucmux_connections_open (a leg handed over for a resume). */
  attachLeg(leg: UpstreamLeg, counted = false): void {
    this.leg = leg;
    // The client's reads cork the leg (stanzas of one read leave in one write); toward the client the one writer
    // batches per turn (write-batch.ts).
    this.client.peer = leg.wire;
    if (this.online) leg.wire.gate = undefined; // a leg restored under a resumed session (SPEC E8)
    if (!counted) this.deps.metrics.connectionsOpen.inc({ listener: this.mode, side: "upstream" });
    leg.setHandlers(new Link.LegEvents(this));
  }

  private onUpstreamElement(el: Element): void {
    if (this.phase === "closed") return;
    if (STANZAS.has(el.name) && !el.attrs.xmlns) {
      if (this.legSm?.enabled) this.legSm.inbound++;
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
      const legSm = this.legSm;
      if (!legSm?.enabled || !this.sm) return this.deps.chain.run("s2c", this, el, this.s2cDelivery, "upstream");
      this.legRun = { el, seq: legSm.inbound };
      try {
        this.deps.chain.run("s2c", this, el, this.s2cDelivery, "upstream");
      } finally {
        this.legRun = undefined;
      }
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
    if (el.attrs.xmlns === NS_SM) return this.onLegSm(el);
    this.debug("dropped stream-level element from upstream", { element: el.name });
  }

  /** SASL succeeded as `account` (bare); `c`: held until bind, then handed to the account registry (SPEC A3). */
  authenticated(account: string, c: Credentials | undefined): void {
    this.authenticatedAs = bareKey(account);
    this.credentials = c;
  }

  /** Bind2 (SPEC A15): mucmux binds the client's resource upstream itself; resolves with the bound JID. */
  bindInline(resource: string): Promise<string | undefined> {
    if (this.phase !== "bind") return Promise.resolve(undefined);
    this.preOnline = [];
    return this.bindUpstream(resource);
  }

  /** Binds `resource` on the leg; the bound JID, or undefined (refused, no answer in time, no leg). */
  private bindUpstream(resource: string): Promise<string | undefined> {
    const leg = this.leg;
    if (!leg) return Promise.resolve(undefined);
    const id = `mmbind-${randomBytes(6).toString("hex")}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.inlineBind?.resolve(undefined), LEG_IQ_TIMEOUT_MS);
      timer.unref();
      this.inlineBind = { id, resolve: (jid) => { clearTimeout(timer); this.inlineBind = undefined; resolve(jid); } };
      leg.wire.write(`<iq type='set' id='${id}'><bind xmlns='${NS.bind}'><resource>${escapeText(resource)}</resource></bind></iq>`);
    });
  }

  /** Bind2: the client has its SASL2 success naming `jid`; the session goes online, carbons enabled as asked. */
  boundInline(jid: string, carbons: boolean): void {
    this.goOnline(jid);
    const early = this.preOnline ?? [];
    this.preOnline = undefined;
    for (const el of early) this.onUpstreamElement(el);
    if (!carbons || this.phase !== "online") return;
    this.carbons = true;
    this.enableCarbonsUpstream();
  }

  /** Carbons on for the client without it asking on this stream (Bind2, a re-established leg); the answer is swallowed. */
  private enableCarbonsUpstream(): void {
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
    this.negotiation.done();
    this.loggedIn();
    this.debug("resource bound");
    const creds = this.credentials;
    this.credentials = undefined;
    this.deps.onBound(this, creds);
  }

  /** SPEC E8: an online session's input is no longer paced as login work, on either side. */
  private loggedIn(): void {
    this.client.gate = undefined;
    if (this.leg) this.leg.wire.gate = undefined;
  }

  /**
   * The one writer toward the client, at the end of the outbound chain: the shared serialization of a fanned-out
   * stanza when no stage changed it, else mucmux's own serialization. What one turn writes leaves together at its
   * end (write-batch.ts). `onWritten` learns when the bytes were handed to the kernel, or that they never will be.
   */
  private write(el: Element, opts: DeliverOptions | undefined): void {
    const onWritten = opts?.onWritten;
    if (this.phase === "closed" || this.phase === "closing") return onWritten?.(new Error("session closed"));
    const text = opts?.prepared && this.jid !== undefined ? opts.prepared.render(this.jid) : serialize(el);
    const sm = this.sm;
    if (sm) {
      // SPEC F3: kept until the client acknowledges it; `onWritten` then means acknowledged (SPEC D6b).
      const live = this.phase !== "hibernated";
      // The leg's own stanza, written as it came (not a stage's replacement, not one flushed with it): the server
      // keeps it until the device has acknowledged it (SPEC F6).
      sm.push(text, onWritten, live, this.legRun?.el === el ? this.legRun.seq : undefined);
      if (sm.unacked > this.deps.config.sm.maxQueueStanzas || sm.bytes > this.deps.config.limits.maxBufferedBytes) {
        return live ? this.closeWithError("resource-constraint", "mucmux", "too many unacknowledged stanzas") : this.endHibernation("overflow");
      }
      if (!live) return;
      this.deps.batch.hold(this.client);
      this.requestAck(sm);
      if (!this.client.write(text)) this.backpressure();
      return;
    }
    this.deps.batch.hold(this.client);
    if (!this.client.write(text, onWritten)) this.backpressure();
  }

  private backpressure(): void {
    if (!this.client.overCap()) return void this.leg?.wire.pause();
    // A connection that stopped reading is gone as far as mucmux can tell: with resumption it hibernates.
    if (this.resumable) return this.client.destroy();
    this.closeWithError("policy-violation", "mucmux", "client does not read its stream");
  }

  // ---- stream management (XEP-0198, SPEC F1–F8) --------------------------------------------------

  /** What a resume restores on a re-established leg: the last broadcast presence, carbons. */
  private remember(el: Element): void {
    if (el.name === "presence") {
      if (el.attrs.to === undefined) this.lastPresence = el.attrs.type === undefined ? el : undefined;
    } else if (el.name === "iq" && el.attrs.type === "set") {
      if (el.getChild("enable", NS.carbons)) this.carbons = true;
      else if (el.getChild("disable", NS.carbons)) this.carbons = false;
    }
  }

  private onSmNonza(el: Element): void {
    const sm = this.sm;
    switch (el.name) {
      case "enable":
        // After bind, once (XEP-0198 §3).
        if (this.phase !== "online" || sm || !this.deps.config.sm.enabled) return void this.client.write(smFailed("unexpected-request"));
        return void this.client.write(this.enableSm(el));
      case "resume":
        if (this.phase !== "bind" || !this.deps.resumption || !this.deps.config.sm.enabled) {
          this.deps.metrics.smResumeFailures.inc({ reason: "bad_request" });
          return void this.client.write(smFailed("unexpected-request"));
        }
        return void this.resume(el).then((refused) => { if (refused !== undefined) this.client.write(refused); });
      case "r":
        if (!sm) return this.closeWithError("unsupported-stanza-type", "mucmux", "stream management is not enabled");
        return void this.client.write(`<a xmlns='${NS_SM}' h='${wrapH(sm.inbound)}'/>`);
      case "a": {
        if (!sm) return this.closeWithError("unsupported-stanza-type", "mucmux", "stream management is not enabled");
        const h = parseH(el.attrs.h);
        if (h === undefined) return this.closeWithError("undefined-condition", "mucmux", "'h' is not an unsigned 32-bit integer");
        return this.onClientAck(sm, h);
      }
      default:
        return this.closeWithError("unsupported-stanza-type", "mucmux", `<${el.name}/> is not supported here`);
    }
  }

  /**
   * SPEC F1, F4: stream management for this stream, from `<enable/>` or inline in Bind2; the `<enabled/>` answer.
   * Resumption when asked for and configured: `max` is the client's wish, bounded by sm.resumeSeconds.
   */
  enableSm(el: Element): string {
    const cfg = this.deps.config.sm;
    const asked = el.attrs.resume === "true" || el.attrs.resume === "1";
    const table = this.deps.resumption;
    const resume = asked && cfg.resumeSeconds > 0 && table !== undefined;
    const wish = Number(el.attrs.max);
    const max = Math.ceil(Number.isInteger(wish) && wish > 0 ? Math.min(wish, cfg.resumeSeconds) : cfg.resumeSeconds);
    const id = resume ? randomBytes(18).toString("base64url") : undefined;
    this.sm = new ClientSm(id, max);
    this.deps.metrics.smEnabled.inc({ resume: String(resume) });
    if (!id || !table) return `<enabled xmlns='${NS_SM}'/>`;
    table.add(id, this);
    this.enableLegSm(); // SPEC F6: so the server keeps its side when the client's connection dies
    const location = cfg.location ? ` location='${escapeAttr(cfg.location)}'` : "";
    return `<enabled xmlns='${NS_SM}' id='${id}' resume='true' max='${max}'${location}/>`;
  }

  /**
   * One `<r/>` per burst, after the turn that wrote it: in the same flush as the burst when its writes are batched
   * (one TLS record for both), else after the loop turn. An unanswered one means the connection is gone.
   */
  private requestAck(sm: ClientSm): void {
    if (sm.requested) return;
    sm.requested = true;
    const request = () => {
      if (this.sm !== sm || this.phase !== "online" || !sm.requested) return;
      this.client.write(`<r xmlns='${NS_SM}'/>`);
      clearTimeout(this.ackTimer);
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined;
        if (this.sm !== sm || this.phase !== "online" || !sm.requested) return;
        this.debug("no acknowledgement in time: connection treated as lost");
        if (this.resumable) return this.client.destroy(); // SPEC F4: hibernates
        this.closeWithError("connection-timeout", "mucmux", "no stream management acknowledgement in time");
      }, this.deps.config.sm.ackTimeoutSeconds * 1000);
      this.ackTimer.unref();
    };
    if (!this.deps.batch.last(this.client, request)) setImmediate(request);
  }

  private onClientAck(sm: ClientSm, h: number): void {
    this.deps.metrics.smAcks.inc({ from: "client" });
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    sm.requested = false;
    const r = sm.ack(h);
    // XEP-0198 §6: acknowledging more than was sent is a protocol error.
    if (!r.ok) return this.handledTooHigh(h, r.sent);
    if (sm.unacked > 0 && this.phase === "online") this.requestAck(sm);
    const legSm = this.legSm;
    // SPEC F6: what the device now has, the server may forget (unasked: its <r/> came before the device's ack).
    if (legSm?.enabled && this.leg && this.legHandled(legSm) !== legSm.reported) this.ackLeg(legSm);
  }

  /** SPEC F6: of the leg's stanzas, those not waiting for the device's acknowledgement. */
  private legHandled(legSm: LegSm): number {
    return this.sm ? this.sm.legHandled(legSm.inbound) : legSm.inbound;
  }

  private ackLeg(legSm: LegSm, leg = this.leg): void {
    legSm.reported = this.legHandled(legSm);
    leg?.wire.write(`<a xmlns='${NS_SM}' h='${wrapH(legSm.reported)}'/>`);
  }

  private handledTooHigh(h: number, sent: number): void {
    this.closeWithError("undefined-condition", "mucmux", "acknowledged more stanzas than were sent", {
      name: "handled-count-too-high", xmlns: NS_SM, attrs: { h: String(h), "send-count": String(sent) },
    });
  }

  /** SPEC F6: stream management on the leg, with resumption, where the server offers it. */
  private enableLegSm(): void {
    const leg = this.leg;
    if (!leg || !leg.features.offers(NS_SM)) return;
    this.legSm = new LegSm(this.deps.config.sm.maxQueueStanzas, this.deps.config.limits.maxBufferedBytes);
    leg.wire.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
  }

  private requestLegAck(legSm: LegSm): void {
    if (legSm.requested) return;
    legSm.requested = true;
    setImmediate(() => {
      if (this.legSm === legSm && this.leg && legSm.requested) this.leg.wire.write(`<r xmlns='${NS_SM}'/>`);
    });
  }

  /** The server's stream management elements on the leg. */
  private onLegSm(el: Element): void {
    const legSm = this.legSm;
    if (el.name === "resumed" || (el.name === "failed" && this.legSmWait)) {
      const wait = this.legSmWait;
      this.legSmWait = undefined;
      return wait?.(el);
    }
    if (!legSm) return;
    switch (el.name) {
      case "enabled":
        legSm.enabled = true;
        if (el.attrs.resume === "true" || el.attrs.resume === "1") legSm.id = el.attrs.id;
        if (legSm.id === undefined) legSm.stopKeeping();
        return;
      case "failed": // the server refused <enable/>: the leg runs without
        this.legSm = undefined;
        return;
      case "r":
        if (legSm.enabled) this.ackLeg(legSm);
        return;
      case "a": {
        this.deps.metrics.smAcks.inc({ from: "upstream" });
        legSm.requested = false;
        const h = parseH(el.attrs.h);
        if (h === undefined || !legSm.ack(h)) {
          this.log.warn({ h: el.attrs.h }, "server acknowledged an impossible count; the leg is not resumable");
          legSm.stopKeeping();
        }
        if (legSm.unacked > 0) this.requestLegAck(legSm);
        return;
      }
    }
  }

  /** SPEC F4: the client's connection died without a stream close; the session waits for a resume. */
  private hibernate(): void {
    const sm = this.sm as ClientSm;
    this.phase = "hibernated";
    this.countClientClosed("client_close");
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    sm.requested = false;
    const leg = this.leg;
    this.leg = undefined;
    if (leg) this.parkLeg(leg);
    this.legIqs?.cancelAll();
    this.legIqs = undefined;
    this.hibernation = setTimeout(() => this.endHibernation("expired"), sm.max * 1000);
    this.hibernation.unref();
    this.deps.metrics.smHibernated.inc();
    this.debug("connection lost; session hibernated", { unacked: sm.unacked, upstream: this.legSm?.id !== undefined ? "hibernated" : "closed" });
  }

  /**
   * SPEC F6: the server side of a hibernated session. With the server's own resumption the TCP connection is
   * dropped without a stream close, so the server hibernates its session (and pushes as it would for the
   * device); without it the stream is closed (messages go to the server's offline storage).
   */
  private parkLeg(leg: UpstreamLeg, close = false): void {
    leg.setHandlers(INERT_LEG);
    if (this.client.peer === leg.wire) this.client.peer = undefined;
    this.deps.metrics.connectionsOpen.dec({ listener: this.mode, side: "upstream" });
    const legSm = this.legSm;
    if (!close && legSm?.id !== undefined && legSm.enabled) {
      // What the device has (or mucmux consumed) is acknowledged first; what it has not stays the server's, so
      // the server counts it as undelivered and pushes for it as it would for the phone itself.
      this.ackLeg(legSm, leg);
      return leg.wire.end(); // after that <a/>, a TCP close without a stream close
    }
    this.legSm = undefined;
    if (!leg.wire.isEnded) {
      leg.wire.write(STREAM_CLOSE);
      leg.wire.end();
    }
  }

  /** Leaves the hibernated phase: resumed (the caller goes online), or the session ends now. */
  private endHibernation(outcome: HibernationEnd): void {
    if (this.phase !== "hibernated") return;
    clearTimeout(this.hibernation);
    this.hibernation = undefined;
    this.deps.metrics.smHibernated.dec();
    this.deps.metrics.smHibernationEnds.inc({ outcome });
    this.debug("hibernated session ended", { outcome });
    if (outcome === "resumed") return;
    this.phase = "closing";
    const leg = this.leg; // one taken for a resume that did not complete
    this.leg = undefined;
    if (leg) this.parkLeg(leg, true);
    this.finalize();
  }

  /**
   * SPEC F5: `<resume/>` on this authenticated, unbound stream; the session it names continues here. `wrap` frames
   * `<resumed/>` (SASL2's success). Undefined when handled; else the `<failed/>` to send.
   */
  async resume(el: Element, wrap?: (resumed: string, jid: string) => string): Promise<string | undefined> {
    const table = this.deps.resumption;
    const h = parseH(el.attrs.h);
    const previd = el.attrs.previd;
    const refuse = (condition: string, reason: string) => {
      this.deps.metrics.smResumeFailures.inc({ reason });
      return smFailed(condition);
    };
    if (!table || h === undefined || !previd) return refuse("bad-request", "bad_request");
    const old = table.get(previd);
    // Another account's previd is as unknown as an expired one: nothing tells them apart.
    if (!old || old === this || old.jid === undefined || bareKey(old.jid) !== this.authenticatedAs) return refuse("item-not-found", "unknown");
    if (old.resuming) return refuse("unexpected-request", "busy");
    this.heldForResume = [];
    await old.takeOver(this, h, wrap);
    return undefined;
  }

  /**
   * SPEC F5: this session continues on `next`'s connection. Its server side comes back first (still live,
   * resumed, or bound again on `next`'s leg); then `<resumed/>`, the unacknowledged stanzas, the queued ones.
   */
  private async takeOver(next: Link, h: number, wrap?: (resumed: string, jid: string) => string): Promise<void> {
    const sm = this.sm;
    if (!sm) return;
    // The client's count first: what it has, the server may forget before its own session is resumed (SPEC F6).
    const acked = sm.ack(h);
    if (!acked.ok) return next.handledTooHigh(h, acked.sent);
    this.resuming = true;
    const wasHibernated = this.phase === "hibernated";
    clearTimeout(this.hibernation); // the session does not expire while its resume is under way
    let how: "live" | "resumed" | "rebound" | undefined = "live";
    try {
      if (wasHibernated) how = await this.restoreServerSide(next);
    } finally {
      this.resuming = false;
    }
    const m = this.deps.metrics;
    m.smUpstreamRestores.inc({ how: how ?? "failed" });
    if (next.phase === "closed" || next.phase === "closing") {
      // The new connection went away meanwhile: back to waiting (its server side parked again).
      if (this.phase === "hibernated") {
        if (this.leg) { const leg = this.leg; this.leg = undefined; this.parkLeg(leg); }
        this.hibernation = setTimeout(() => this.endHibernation("expired"), sm.max * 1000);
        this.hibernation.unref();
      }
      return;
    }
    if (!how || (this.phase !== "hibernated" && this.phase !== "online")) {
      this.endHibernation("failed");
      return next.closeWithError("reset", "mucmux", "the session could not be resumed; log in again");
    }
    if (this.phase === "online") {
      // The old connection is still open (its death not noticed yet): it is closed, the session keeps its leg.
      const old = this.client;
      old.setHandlers(INERT_CLIENT);
      old.write(streamErrorXml("conflict", "the session was resumed on another connection"));
      old.end();
      this.countClientClosed("client_close");
      const spare = next.leg;
      next.leg = undefined;
      if (spare) {
        spare.setHandlers(INERT_LEG);
        spare.wire.write(STREAM_CLOSE);
        spare.wire.end();
        m.connectionsOpen.dec({ listener: next.mode, side: "upstream" });
      }
    }
    // The connection changes owner: its socket stays counted, now as this session's.
    const held = next.heldForResume ?? [];
    next.heldForResume = undefined;
    next.handOver();
    this.client = next.client;
    this.client.setHandlers(this.clientHandlers());
    this.mode = next.mode;
    this.origin = next.origin;
    this.clientCounted = true;
    if (next.credentials) this.deps.onCredentials?.(this, next.credentials);
    if (this.leg) this.client.peer = this.leg.wire;
    if (wasHibernated) this.endHibernation("resumed");
    this.phase = "online";
    this.loggedIn();
    this.debug("session resumed", { upstream: how, resent: sm.unacked });
    const sock = this.client.socket;
    sock.cork();
    const resumed = `<resumed xmlns='${NS_SM}' previd='${sm.id ?? ""}' h='${wrapH(sm.inbound)}'/>`;
    this.client.write(wrap && this.jid !== undefined ? wrap(resumed, this.jid) : resumed);
    for (const text of sm.resend()) this.client.write(text);
    sock.uncork();
    if (sm.unacked > 0) this.requestAck(sm);
    this.client.resume();
    if (wasHibernated) this.deps.onResumed?.(this);
    for (const el of held) this.onClientElement(el);
  }

  /** The server side of a hibernated session, on `next`'s authenticated leg; how it came back, or undefined. */
  private async restoreServerSide(next: Link): Promise<"resumed" | "rebound" | undefined> {
    const leg = next.leg;
    if (!leg || this.jid === undefined) return undefined;
    next.leg = undefined;
    this.mode = next.mode; // the leg is counted under the new connection's listener
    this.attachLeg(leg, true);
    const legSm = this.legSm;
    if (legSm?.id !== undefined) {
      const handled = this.legHandled(legSm);
      const resumed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => { this.legSmWait = undefined; resolve(false); }, LEG_IQ_TIMEOUT_MS);
        timer.unref();
        // Synchronous with the answer: the stanzas the server sends again follow it in the same read.
        this.legSmWait = (el) => {
          clearTimeout(timer);
          const h = el?.name === "resumed" ? parseH(el.attrs.h) : undefined;
          if (h === undefined || this.leg !== leg || !legSm.ack(h)) return resolve(false);
          // SPEC F6: the server numbers from mucmux's count and sends again what the device had not acknowledged:
          // those copies here are dropped; what the server never got from mucmux is sent again, in order.
          legSm.inbound = handled;
          legSm.reported = handled;
          this.sm?.dropLegAfter(handled);
          for (const text of legSm.unsent()) leg.wire.write(text);
          if (legSm.unacked > 0) this.requestLegAck(legSm);
          resolve(true);
        };
        leg.wire.write(`<resume xmlns='${NS_SM}' previd='${escapeAttr(legSm.id ?? "")}' h='${wrapH(handled)}'/>`);
      });
      if (resumed) return "resumed";
      // The server let its session go (its own timeout, a restart): log in again below.
      this.legSm = undefined;
      if (this.leg !== leg) return undefined;
    }
    const resource = resourceOf(this.jid);
    if (resource === undefined || (await this.bindUpstream(resource)) !== this.jid || this.leg !== leg) return undefined;
    // SPEC F7: what the server knew of the session: carbons, CSI, the last broadcast presence (which also
    // brings what the server stored offline meanwhile into the resumed stream).
    this.enableLegSm();
    if (this.carbons) this.enableCarbonsUpstream();
    if (this.inactive && leg.features.offers(NS.csi)) leg.wire.write(`<inactive xmlns='${NS.csi}'/>`);
    if (this.lastPresence) this.sendUpstream(this.lastPresence);
    return "rebound";
  }

  /**
   * SPEC H2: another replica owns this account: the client's connection is handed to it, and this Link ends without
   * closing it (the internal link carries its bytes from now on). False when the owner could not take it.
   */
  async handOff(address: string, preamble: HandoffPreamble, prelude: string): Promise<boolean> {
    const cluster = this.deps.cluster;
    if (!cluster || this.phase === "closing" || this.phase === "closed") return false;
    const ok = await cluster.handOff(address, preamble, prelude, () => {
      this.closeReason = "handoff";
      this.countClientClosed("handoff");
      this.handedOver = true;
      const socket = this.client.detach();
      this.finalize();
      return socket;
    });
    return ok;
  }

  /** This connection now belongs to the session it resumed: this Link ends without closing it. */
  private handOver(): void {
    this.clientCounted = false;
    this.handedOver = true;
    this.finalize();
  }

  private countClientClosed(reason: CloseReason): void {
    if (!this.clientCounted) return;
    this.clientCounted = false;
    this.deps.metrics.connectionsOpen.dec({ listener: this.mode, side: "client" });
    this.deps.metrics.connectionsClosed.inc({ listener: this.mode, side: "client", reason });
  }

  private onLegGone(_err: Error | undefined): void {
    if (this.phase === "closing") return this.finishClose();
    if (this.phase === "closed") return;
    if (this.phase === "hibernated") {
      // A leg taken for a resume died under it: the resume fails (its waits end now, not at their timeouts).
      this.deps.metrics.connectionsOpen.dec({ listener: this.mode, side: "upstream" });
      this.leg = undefined;
      const wait = this.legSmWait;
      this.legSmWait = undefined;
      wait?.(undefined);
      return this.inlineBind?.resolve(undefined);
    }
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
    if (this.phase === "hibernated") return this.endHibernation("drain");
    this.closeReason = "drain";
    this.closeWithError("system-shutdown", "mucmux", "mucmux is restarting");
  }

  private finalize(): void {
    if (this.finalized) return;
    if (this.phase === "hibernated") return this.endHibernation("failed"); // counted, then back here
    this.finalized = true;
    this.phase = "closed";
    this.negotiation.abandon();
    this.credentials = undefined;
    this.lastPresence = undefined;
    this.inlineBind?.resolve(undefined);
    this.preOnline = undefined;
    this.heldForResume = undefined;
    this.legIqs?.cancelAll();
    clearTimeout(this.ackTimer);
    const wait = this.legSmWait;
    this.legSmWait = undefined;
    wait?.(undefined);
    const sm = this.sm;
    if (sm) {
      if (sm.id !== undefined) this.deps.resumption?.forget(sm.id, this);
      sm.fail(new Error("not acknowledged before the session ended")); // SPEC F8: queued offline messages stay queued
    }
    this.countClientClosed(this.closeReason);
    if (!this.handedOver) this.deps.metrics.sessionDuration.observe((performance.now() - this.opened) / 1000);
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
