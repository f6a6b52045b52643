// Client-side negotiation of a Link before it relays: STARTTLS, then SASL PLAIN terminated by mucmux
// and authenticated upstream with the same credentials (SPEC A1–A3). Ends when upstream accepted.
import type { Element } from "@xmpp/xml";
import { NS } from "./ns.js";
import { starttlsFeatures, saslFeatures } from "./features.js";
import { parsePlain, authzidAllowed, mapUpstreamFailure, saslFailureXml, type SaslCondition } from "./sasl-server.js";
import { wrapServerTls } from "../net/server-tls.js";
import type { Wire } from "./wire.js";
import type { UpstreamLeg } from "./upstream.js";
import type { LinkDeps, Credentials, Phase } from "./link-deps.js";
import type { StreamErrorCondition } from "../xml/errors.js";
import type { ClientOrigin } from "../net/client-origin.js";
import type { Logger } from "../log.js";

/** What negotiation needs of its connection (the Link implements it; tests can use a fake). */
export interface NegotiationPort {
  readonly mode: "starttls" | "direct";
  phase: Phase;
  readonly domain: string | undefined;
  readonly client: Wire;
  readonly deps: LinkDeps;
  readonly origin: ClientOrigin;
  readonly log: Logger;
  closeWithError(condition: StreamErrorCondition, origin: "mucmux", text?: string): void;
  /** Upstream accepted the credentials: the session's own leg. */
  attachLeg(leg: UpstreamLeg): void;
  /** Held until bind, then handed to the account registry (SPEC A3). */
  holdCredentials(c: Credentials): void;
}

const MAX_AUTH_ATTEMPTS = 5;

export class ClientNegotiation {
  encrypted: boolean;
  private attempts = 0;
  private awaitingResponse = false;
  private abandoned = false;
  /** Aborted when the client goes away during a login. */
  private gone: AbortController | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly link: NegotiationPort) {
    this.encrypted = link.mode === "direct";
    // SPEC E4: TLS and authentication must finish within handshakeSeconds.
    this.timer = setTimeout(
      () => link.closeWithError("connection-timeout", "mucmux", "authentication did not complete in time"),
      link.deps.config.limits.handshakeSeconds * 1000,
    );
    this.timer.unref();
  }

  sendFeatures(): void {
    const max = this.link.deps.config.limits.maxUnauthedStanzaBytes;
    // SPEC A1: SASL is never offered before TLS.
    this.link.client.write(this.link.phase === "tls" ? starttlsFeatures(max) : saslFeatures(max));
  }

  onElement(el: Element): void {
    const link = this.link;
    if (link.phase === "tls") {
      if (el.name === "starttls" && el.attrs.xmlns === NS.tls) return this.startTls();
      // RFC 6120 §5.3.1: a peer that skips mandatory TLS gets policy-violation.
      return link.closeWithError("policy-violation", "mucmux", "STARTTLS is required");
    }
    if (link.phase === "authenticating") {
      if (el.name === "abort" && el.attrs.xmlns === NS.sasl) return; // the pending outcome is answered anyway
      return link.closeWithError("policy-violation", "mucmux", "authentication already in progress");
    }
    if (el.attrs.xmlns !== NS.sasl) return link.closeWithError("not-authorized", "mucmux", "authenticate first");
    if (el.name === "auth") return this.onAuth(el);
    if (el.name === "response" && this.awaitingResponse) {
      this.awaitingResponse = false;
      return this.authenticate(el.getText());
    }
    if (el.name === "abort") {
      this.awaitingResponse = false;
      return this.fail("aborted");
    }
    link.closeWithError("not-authorized", "mucmux", "unexpected SASL element");
  }

  private startTls(): void {
    const link = this.link;
    link.client.write(`<proceed xmlns='${NS.tls}'/>`);
    // A fresh parser on the TLS socket: bytes after <starttls/> in the same plaintext read are dropped
    // (the STARTTLS command-injection class of bugs).
    const raw = link.client.detach();
    const secure = wrapServerTls(raw, "starttls", link.deps.secureContext(), link.deps.metrics);
    secure.once("secure", () => { this.encrypted = true; });
    link.phase = "auth";
    link.client.replaceSocket(secure);
  }

  private onAuth(el: Element): void {
    if (el.attrs.mechanism !== "PLAIN") return this.fail("invalid-mechanism");
    const text = el.getText().trim();
    if (text === "") {
      // RFC 6120 §6.4.2: no initial response, so send an empty challenge.
      this.awaitingResponse = true;
      this.link.client.write(`<challenge xmlns='${NS.sasl}'/>`);
      return;
    }
    this.authenticate(text);
  }

  private authenticate(b64: string): void {
    const link = this.link;
    const creds = parsePlain(b64);
    if (typeof creds === "string") return this.fail(creds);
    const domain = link.domain ?? link.deps.config.domains[0] ?? "";
    if (!authzidAllowed(creds.authzid, creds.username, domain)) return this.fail("invalid-authzid");
    // XEP-0205: an address that failed too often is refused without asking the server (whose own
    // per-address ban, e.g. ejabberd's mod_fail2ban, would otherwise hit mucmux's address for everyone).
    const throttle = link.deps.authThrottle;
    const ip = link.origin.source.address; // behind a trusted balancer: the PROXY header's
    if (throttle?.blocked(ip)) {
      return this.fail("temporary-auth-failure", "too many failed attempts from this address; try later");
    }
    link.phase = "authenticating";
    const started = performance.now();
    this.gone = new AbortController();
    link.deps.connectUpstream(domain, creds.username, creds.password, link.origin, this.gone.signal).then(
      (outcome) => {
        if (this.abandoned || link.phase !== "authenticating") {
          if (outcome.ok) outcome.leg.wire.destroy();
          return;
        }
        const metrics = link.deps.metrics;
        if (!outcome.ok && outcome.reason === "connect") {
          metrics.saslOutcomes.inc({ mechanism: "none", result: "upstream_unreachable" });
          // SPEC E5: a new client whose server cannot be reached.
          return link.closeWithError("remote-connection-failed", "mucmux", "the XMPP server is unreachable");
        }
        if (!outcome.ok) {
          metrics.saslOutcomes.inc({ mechanism: outcome.mechanism, result: mapUpstreamFailure(outcome.condition) });
          if (mapUpstreamFailure(outcome.condition) === "not-authorized") throttle?.recordFailure(ip);
          link.phase = "auth";
          return this.fail(mapUpstreamFailure(outcome.condition), outcome.text);
        }
        metrics.saslOutcomes.inc({ mechanism: outcome.mechanism, result: "success" });
        metrics.streamsAuthenticated.inc();
        clearTimeout(this.timer);
        link.attachLeg(outcome.leg);
        link.phase = "bind";
        link.client.setLimits({ maxStanzaBytes: link.deps.config.limits.maxStanzaBytes });
        link.client.parser.reset();
        link.client.write(`<success xmlns='${NS.sasl}'/>`);
        link.log.debug({ ms: Math.round(performance.now() - started) }, "authenticated");
        link.holdCredentials({ username: creds.username, password: creds.password });
      },
      (err: unknown) => {
        link.log.error({ err }, "authentication failed unexpectedly");
        link.closeWithError("internal-server-error", "mucmux");
      },
    );
  }

  private fail(condition: SaslCondition, text?: string): void {
    this.link.client.write(saslFailureXml(condition, text));
    if (++this.attempts >= MAX_AUTH_ATTEMPTS) {
      this.link.closeWithError("policy-violation", "mucmux", "too many failed authentication attempts");
    }
  }

  abandon(): void {
    this.abandoned = true;
    clearTimeout(this.timer);
    this.gone?.abort(); // a login still waiting for a connect slot gives it up
  }
}
