// Upstream connector: opens one authenticated c2s stream to the legacy server (a session's leg, or later
// the anchor). TCP → optional PROXY v2 header → optional TLS (direct or STARTTLS) → SASL (SPEC A2) →
// stream restart → features.
import net from "node:net";
import tls from "node:tls";
import type { Element } from "@xmpp/xml";
import { streamHeader } from "../xml/serialize.js";
import type { StreamHeader } from "../xml/parser.js";
import type { XmlStreamError } from "../xml/errors.js";
import { sharedAccounting, Wire, wireSettings, type WireHandlers } from "./wire.js";
import { ElementQueue, type NegotiationEvent } from "./element-queue.js";
import { StaleKey, type UpstreamAuth } from "./sasl-client.js";
import { NS } from "./ns.js";
import { conditionOf } from "./stream-error.js";
import { postAuthFeatures } from "./features.js";
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";
import type { ClientOrigin } from "../net/client-origin.js";
import type { LoginPacer } from "./login-pacer.js";
import { encodeProxyV2, PROXY_V2_LOCAL } from "../net/proxy-protocol.js";

export interface UpstreamDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  /** The SASL mechanisms the upstream offered before authentication, at every connect (SPEC A10 mirrors them). */
  onOffered?(mechanisms: readonly string[]): void;
  /** SPEC E8: a login's leg is paced as login work until its session is online (the Link lifts it). */
  logins?: LoginPacer;
}

/** The client gave up a relayed exchange (SPEC A13): the upstream attempt ends as `aborted`. */
export class SaslAborted extends Error {}

export type LegHandlers = Omit<WireHandlers, "onOpen">;

export type UpstreamOutcome =
  | { ok: true; leg: UpstreamLeg; mechanism: string; successData: string }
  /** `stale`: a ClientKey login found the upstream's salt changed (SPEC A11); it was never tried. */
  | { ok: false; reason: "sasl"; condition: string; text: string | undefined; mechanism: string; stale?: boolean }
  | { ok: false; reason: "connect"; detail: string };

/**
 * The server's post-authentication features, reduced to what a session needs: the features mucmux sends its
 * client after the stream restart, and the namespaces offered. Shared by every leg that got the same features
 * (interned), so a session keeps no parsed tree and no string of its own (memory per idle session).
 */
export interface LegFeatures {
  /** `<stream:features>` for the client: the server's minus what mucmux withholds, plus mucmux's limits. */
  readonly clientXml: string;
  offers(xmlns: string): boolean;
}

const INTERNED = new Map<string, LegFeatures>();
const INTERN_MAX = 64; // distinct feature sets (servers, configurations); beyond that, no sharing

export function legFeatures(features: Element, maxStanzaBytes: number, sm: boolean): LegFeatures {
  const clientXml = postAuthFeatures(features, maxStanzaBytes, sm);
  const namespaces = features.getChildElements().map((c) => c.attrs.xmlns ?? "").sort().join(" ");
  const key = `${namespaces}\n${clientXml}`;
  let f = INTERNED.get(key);
  if (!f) {
    const offered = new Set(namespaces.split(" "));
    f = { clientXml, offers: (xmlns) => offered.has(xmlns) };
    if (INTERNED.size < INTERN_MAX) INTERNED.set(key, f);
  }
  return f;
}

/** An authenticated upstream stream, restarted, with its post-authentication features. */
export class UpstreamLeg {
  constructor(
    readonly wire: Wire,
    readonly features: LegFeatures,
    private readonly dispatch: Dispatcher,
  ) {}

  /** Switch from negotiation to push handlers; events that arrived meanwhile are replayed in order. */
  setHandlers(h: LegHandlers): void {
    this.dispatch.target = h;
    for (const e of this.dispatch.queue.drain()) deliver(h, e);
  }
}

/** The leg wire's handlers: queued for negotiation until a session takes the leg (methods, no closure per event). */
class Dispatcher implements WireHandlers {
  readonly queue = new ElementQueue();
  target: LegHandlers | undefined;
  onOpen(header: StreamHeader): void { this.queue.push({ kind: "open", header }); }
  onElement(el: Element): void { if (this.target) this.target.onElement(el, 0); else this.queue.push({ kind: "element", el }); }
  onStreamClose(): void { if (this.target) this.target.onStreamClose(); else this.queue.push({ kind: "close" }); }
  onError(error: XmlStreamError): void { if (this.target) this.target.onError(error); else this.queue.push({ kind: "error", error }); }
  onSocketEnd(error: Error | undefined): void { if (this.target) this.target.onSocketEnd(error); else this.queue.push({ kind: "end", error }); }
  onDrain(): void { this.target?.onDrain(); }
}

function deliver(h: LegHandlers, e: NegotiationEvent): void {
  if (e.kind === "element") h.onElement(e.el, 0);
  else if (e.kind === "close") h.onStreamClose();
  else if (e.kind === "error") h.onError(e.error);
  else if (e.kind === "end") h.onSocketEnd(e.error);
}

class Failure extends Error {}

const isLoopback = (host: string) => host === "localhost" || host === "::1" || host.startsWith("127.");

export async function connectUpstream(
  deps: UpstreamDeps,
  domain: string,
  auth: UpstreamAuth,
  /** The client this stream is for; absent for mucmux's own streams (the anchor). */
  origin?: ClientOrigin,
): Promise<UpstreamOutcome> {
  const { config, metrics } = deps;
  const up = config.upstream;
  const timeoutMs = up.connectTimeoutSeconds * 1000;
  const started = performance.now();
  let wire: Wire | undefined;
  try {
    let socket: net.Socket = await tcpConnect(up.host, up.port, timeoutMs);
    // PROXY protocol (upstream.proxyProtocol: v2): the server sees the client's address (its per-address bans, e.g. ejabberd's
    // mod_fail2ban, then hit that client and not mucmux); mucmux's own streams say LOCAL.
    if (up.proxyProtocol === "v2") socket.write((origin && encodeProxyV2(origin)) ?? localProxyHeader(socket));
    if (up.tls === "direct") socket = await tlsWrap(socket, domain, up.verify, timeoutMs);
    const dispatch = new Dispatcher();
    const limits = config.limits;
    wire = new Wire(socket, dispatch, wireSettings(limits).upstream, sharedAccounting(metrics.bytes, "upstream"), limits.maxBufferedBytes);
    if (origin) wire.gate = deps.logins; // a client's login, not mucmux's own stream
    const q = dispatch.queue;
    const w = wire;
    const next = async (): Promise<Element> => {
      const e = await q.next(timeoutMs);
      if (e.kind === "element") {
        if (e.el.name === "stream:error") throw new Failure(`upstream stream error: ${conditionOf(e.el)}`);
        return e.el;
      }
      if (e.kind === "error") throw new Failure(`upstream sent bad XML: ${e.error.condition}`);
      if (e.kind === "open") return next();
      throw new Failure("upstream closed the stream");
    };
    const open = async (): Promise<Element> => {
      w.write(streamHeader({ to: domain, version: "1.0", "xml:lang": "en" }));
      const features = await next();
      if (features.name !== "stream:features") throw new Failure(`expected stream features, got <${features.name}>`);
      return features;
    };

    let features = await open();
    let encrypted = up.tls === "direct";
    if (up.tls === "starttls") {
      if (!features.getChild("starttls", NS.tls)) throw new Failure("upstream does not offer STARTTLS");
      w.write(`<starttls xmlns='${NS.tls}'/>`);
      const proceed = await next();
      if (proceed.name !== "proceed") throw new Failure("upstream refused STARTTLS");
      const raw = w.detach();
      w.replaceSocket(await tlsWrap(raw, domain, up.verify, timeoutMs));
      encrypted = true;
      features = await open();
    }

    const offered = (features.getChild("mechanisms", NS.sasl)?.getChildren("mechanism") ?? []).map((m) => m.getText());
    deps.onOffered?.(offered);
    if (auth.probeOnly) {
      w.destroy();
      return { ok: false, reason: "connect", detail: "probed" };
    }
    const mechanism = auth.choose(offered, encrypted || isLoopback(up.host));
    if (!mechanism) throw new Failure(`no usable SASL mechanism upstream (offered: ${offered.join(" ") || "none"})`);
    const sasl = auth.start(mechanism);
    const refused = (condition: string, text: string | undefined, stale?: boolean): UpstreamOutcome => {
      w.destroy();
      metrics.upstreamConnectDuration.observe((performance.now() - started) / 1000);
      return { ok: false, reason: "sasl", condition, text, mechanism, ...(stale ? { stale } : {}) };
    };
    w.write(`<auth xmlns='${NS.sasl}' mechanism='${mechanism}'>${b64(sasl.initial())}</auth>`);
    let successData: string;
    for (;;) {
      let el: Element;
      try {
        el = await next();
      } catch (err) {
        // A relayed exchange the server ended (stream error, close) or left unanswered: a SASL failure for the client.
        if (auth.relayed) return refused("temporary-auth-failure", "the server ended the login or did not answer");
        throw err;
      }
      if (el.name === "challenge") {
        let response: string;
        try {
          response = await sasl.step(unb64(el.getText()));
        } catch (err) {
          if (err instanceof StaleKey) return refused("not-authorized", undefined, true);
          if (err instanceof SaslAborted) return refused("aborted", undefined);
          throw err;
        }
        w.write(`<response xmlns='${NS.sasl}'>${b64(response)}</response>`);
      } else if (el.name === "success") {
        successData = unb64(el.getText());
        if (!sasl.verify(successData)) throw new Failure("upstream SCRAM server signature mismatch");
        break;
      } else if (el.name === "failure") {
        const cond = el.getChildElements().find((c) => c.name !== "text")?.name ?? "not-authorized";
        return refused(cond, el.getChildText("text") ?? undefined);
      } else {
        throw new Failure(`unexpected <${el.name}> during SASL`);
      }
    }
    w.parser.reset();
    features = await open();
    metrics.upstreamConnectDuration.observe((performance.now() - started) / 1000);
    return { ok: true, leg: new UpstreamLeg(w, legFeatures(features, limits.maxStanzaBytes, config.sm.enabled), dispatch), mechanism, successData };
  } catch (err) {
    wire?.destroy();
    const detail = err instanceof Error ? err.message : String(err);
    metrics.upstreamConnectFailures.inc({ reason: err instanceof Failure ? "protocol" : "network" });
    deps.log.warn({ detail }, "upstream connection failed");
    return { ok: false, reason: "connect", detail };
  }
}

/** PROXY v2 LOCAL for mucmux's own connection `socket` (its endpoints as the ignored address block). */
export function localProxyHeader(socket: net.Socket): Buffer {
  const own = {
    source: { address: socket.localAddress ?? "", port: socket.localPort ?? 0 },
    destination: { address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
  };
  return encodeProxyV2(own, "local") ?? PROXY_V2_LOCAL;
}

const b64 = (s: string) => (s === "" ? "=" : Buffer.from(s, "utf8").toString("base64"));
const unb64 = (s: string) => (s === "=" ? "" : Buffer.from(s.trim(), "base64").toString("utf8"));

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    const t = setTimeout(() => { s.destroy(); reject(new Error(`connect to ${host}:${port} timed out`)); }, timeoutMs);
    s.once("connect", () => { clearTimeout(t); s.removeAllListeners("error"); resolve(s); });
    s.once("error", (e) => { clearTimeout(t); reject(e); });
  });
}

function tlsWrap(socket: net.Socket, servername: string, verify: boolean, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket, servername, rejectUnauthorized: verify, minVersion: "TLSv1.2", ALPNProtocols: ["xmpp-client"] });
    const t = setTimeout(() => { s.destroy(); reject(new Error("upstream TLS handshake timed out")); }, timeoutMs);
    s.once("secureConnect", () => { clearTimeout(t); s.removeAllListeners("error"); resolve(s); });
    s.once("error", (e) => { clearTimeout(t); reject(e); });
  });
}
