// Client-side negotiation of a Link before it relays: STARTTLS, then SASL (SPEC A1–A3, A10–A14). PLAIN and SCRAM
// with a known verifier are terminated by mucmux, which then authenticates the session's upstream leg itself;
// SCRAM without a verifier is relayed to the server untouched. Ends when upstream accepted.
import { Element } from "@xmpp/xml";
import { NS } from "./ns.js";
import { starttlsFeatures, saslFeatures } from "./features.js";
import { parsePlain, authzidAllowed, mapUpstreamFailure, saslFailureXml, type SaslCondition } from "./sasl-server.js";
import { credentialAuth, type UpstreamAuth } from "./sasl-client.js";
import { SaslAborted, type UpstreamOutcome } from "./upstream.js";
import {
  checkProof, decodeBase64, decodePayload, parseAttributes, validUsername, parseClientFinal, parseClientFirst, parseMechanism, serverFirstMessage, type ClientFirst,
  type ScramHash,
} from "../sasl/scram.js";
import type { StoredVerifier } from "../store/store.js";
import { HT_MECHANISM, parseHtResponse } from "../sasl/fast.js";
import { randomBytes } from "node:crypto";
import { wrapServerTls } from "../net/server-tls.js";
import type { PacedHandshake } from "../net/handshake-pacer.js";
import type { Socket } from "node:net";
import { escapeText } from "../xml/serialize.js";
import { wireSettings, type Wire } from "./wire.js";
import type { UpstreamLeg } from "./upstream.js";
import type { LinkDeps, Credentials, Phase } from "./link-deps.js";
import type { StreamErrorCondition } from "../xml/errors.js";
import type { ClientOrigin } from "../net/client-origin.js";
import type { Logger } from "../log.js";
import type { HandedIn } from "./link-deps.js";
import type { HandoffPreamble } from "../cluster/internal.js";
import { serialize, streamHeader } from "../xml/serialize.js";
import { serverNameOf } from "../net/tls/sni.js";

/** What negotiation needs of its connection (the Link implements it; tests can use a fake). */
export interface NegotiationPort {
  readonly mode: "starttls" | "direct";
  phase: Phase;
  readonly domain: string | undefined;
  readonly client: Wire;
  readonly deps: LinkDeps;
  readonly origin: ClientOrigin;
  readonly log: Logger;
  /** A debug line in the connection's log (cheap when debug is off). */
  debug(msg: string, fields?: object): void;
  closeWithError(condition: StreamErrorCondition, origin: "mucmux", text?: string): void;
  /** Upstream accepted the credentials: the session's own leg. */
  attachLeg(leg: UpstreamLeg): void;
  readonly leg: UpstreamLeg | undefined;
  /**
   * SASL succeeded as `account` (bare JID); the credentials are held until bind, then handed to the account
   * registry (SPEC A3); undefined for a relayed login (SPEC A13).
   */
  authenticated(account: string, c: Credentials | undefined): void;
  /** Bind2 (SPEC A15): bind `resource` upstream for the client; the JID the server bound, or undefined. */
  bindInline(resource: string): Promise<string | undefined>;
  /** Bind2: the session is bound as `jid` (after the client got its SASL2 success); `carbons`: enable them inline. */
  boundInline(jid: string, carbons: boolean): void;
  /** SPEC F1: stream management enabled inline in Bind2; the `<enabled/>` for the `<bound/>` element. */
  enableSm(el: Element): string;
  /**
   * SPEC F5: resume the session `<resume/>` names on this authenticated stream; `wrap` frames `<resumed/>` (SASL2's
   * success). Undefined when handled (resumed, or this stream closed); else the `<failed/>` to send.
   */
  resume(el: Element, wrap?: (resumed: string, jid: string) => string): Promise<string | undefined>;
  /** SPEC H2: another replica handed this stream here (it did TLS; its channel-binding data comes with it). */
  readonly handedIn: HandedIn | undefined;
  /** SPEC H2: hand the client's connection to the replica owning its account; false when it could not take it. */
  handOff(address: string, preamble: HandoffPreamble, prelude: string): Promise<boolean>;
}

const MAX_AUTH_ATTEMPTS = 5;
/** How long the client's mechanism list may wait for the upstream's (SPEC A10) before offering PLAIN alone. */
const OFFER_WAIT_MS = 3000;

type Path = "plain" | "terminated" | "relayed" | "fast" | "none";

/** A SASL2 `<authenticate/>` being answered (XEP-0388, SPEC A15); what it asks for besides authentication. */
interface Sasl2Request {
  /** The client's `<user-agent id>` (a FAST token is bound to it), or "". */
  agent: string;
  /** Bind2 (XEP-0386): the client's tag, whether it enables carbons inline, and its inline `<enable/>` of XEP-0198. */
  bind: { tag: string | undefined; carbons: boolean; sm: Element | undefined } | undefined;
  /** XEP-0198 inline in SASL2: `<resume previd h/>`, tried before Bind2 (SPEC F5). */
  resume: Element | undefined;
  /** `<request-token mechanism='HT-SHA-256-NONE'/>` (XEP-0484). */
  requestToken: boolean;
  /** `<fast count>` of a FAST login. */
  count: number | undefined;
  /** `<fast invalidate='true'>`: the client is done with the token it logs in with (XEP-0484). */
  invalidate: boolean;
}

export class ClientNegotiation {
  encrypted: boolean;
  private attempts = 0;
  private abandoned = false;
  /** Counts exchanges: an outcome that arrives after its exchange was aborted or replaced is discarded. */
  private exchange = 0;
  /** The SASL2 request being answered; undefined during a SASL1 exchange. */
  private v2: Sasl2Request | undefined;
  /** Waiting for the client's `<response/>`: where its text goes, and what an `<abort/>` cancels. */
  private expect: { resolve(text: string): void; abort(): void } | undefined;
  /** Aborted when the client goes away while its login waits for a connect slot. */
  private gone: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Waiting for its ClientHello or for a handshake slot (SPEC E8). */
  private pacing: PacedHandshake | undefined;

  constructor(private readonly link: NegotiationPort) {
    this.encrypted = link.mode === "direct" || link.handedIn !== undefined;
    // SPEC E4: TLS and authentication must finish within handshakeSeconds.
    this.timer = setTimeout(
      () => link.closeWithError("connection-timeout", "mucmux", "authentication did not complete in time"),
      link.deps.config.limits.handshakeSeconds * 1000,
    );
    this.timer.unref();
    if (link.mode === "direct" && !link.handedIn) this.handshake(link.client.hold());
  }

  sendFeatures(): void {
    const link = this.link;
    const max = link.deps.config.limits.maxUnauthedStanzaBytes;
    // SPEC A1: SASL is never offered before TLS.
    if (link.phase === "tls") return void link.client.write(starttlsFeatures(max));
    const sasl = link.deps.sasl;
    const write = () => {
      if (this.abandoned || link.phase === "closing" || link.phase === "closed") return;
      const types = this.bindingTypes();
      const sasl2 = link.deps.config.sasl.sasl2 && sasl ? { fast: sasl.fast.enabled, sm: link.deps.config.sm.enabled } : undefined;
      link.client.write(saslFeatures(max, sasl?.offer.mechanisms(types) ?? ["PLAIN"], types, sasl2));
    };
    // SPEC A10: the mechanisms mirror the upstream's; until its list is known (no login yet), wait a little.
    if (!sasl || sasl.offer.known || !link.deps.config.sasl.scram) return write();
    sasl.probe();
    void sasl.offer.ready(OFFER_WAIT_MS).then(write);
  }

  onElement(el: Element): void {
    const link = this.link;
    if (link.phase === "tls") {
      if (el.name === "starttls" && el.attrs.xmlns === NS.tls) return this.startTls();
      // RFC 6120 §5.3.1: a peer that skips mandatory TLS gets policy-violation.
      return link.closeWithError("policy-violation", "mucmux", "STARTTLS is required");
    }
    const sasl2 = el.attrs.xmlns === NS.sasl2 && link.deps.config.sasl.sasl2;
    if (el.attrs.xmlns !== NS.sasl && !sasl2) return link.closeWithError("not-authorized", "mucmux", "authenticate first");
    if (el.name === "response" && this.expect) {
      const e = this.expect;
      this.expect = undefined;
      return e.resolve(el.getText());
    }
    if (el.name === "abort") {
      const e = this.expect;
      this.expect = undefined;
      if (e) return e.abort(); // the exchange answers the client
      // RFC 6120 §6.4.4: answered at once; what is still pending (the server, the store) is discarded.
      this.exchange++;
      return this.fail("aborted", "none", "none");
    }
    if (link.phase === "authenticating") return link.closeWithError("policy-violation", "mucmux", "authentication already in progress");
    if (el.name === "auth" && !sasl2) return this.whenOffered(() => this.onAuth(el));
    if (el.name === "authenticate" && sasl2) return this.whenOffered(() => this.onAuthenticate(el));
    link.closeWithError("not-authorized", "mucmux", "unexpected SASL element");
  }

  /**
   * SPEC H2: a handed-in stream got its mechanisms from the entry replica; until this replica has seen the upstream's
   * own list (SPEC A10), its request waits for it, so that a mechanism offered there is known here.
   */
  private whenOffered(fn: () => void): void {
    const link = this.link;
    const sasl = link.deps.sasl;
    if (!link.handedIn || !sasl || sasl.offer.known || !link.deps.config.sasl.scram) return fn();
    sasl.probe();
    void sasl.offer.ready(OFFER_WAIT_MS).then(() => {
      if (!this.abandoned && link.phase === "auth") fn();
    });
  }

  private startTls(): void {
    const link = this.link;
    link.client.write(`<proceed xmlns='${NS.tls}'/>`);
    // A fresh parser on the TLS socket: bytes after <starttls/> in the same plaintext read are dropped
    // (the STARTTLS command-injection class of bugs).
    const raw = link.client.hold();
    link.phase = "auth";
    this.handshake(raw);
  }

  /** SPEC E8: the client's TLS handshake starts when the pacer gives it a slot, once its ClientHello is in. */
  private handshake(raw: Socket): void {
    const link = this.link;
    const since = performance.now();
    const start = (): boolean => {
      this.pacing = undefined;
      if (this.abandoned || link.phase === "closing" || link.phase === "closed") return false;
      const secure = wrapServerTls(raw, link.mode, link.deps.secureContext(), link.deps.metrics, since);
      secure.once("secure", () => { this.encrypted = true; });
      link.client.replaceSocket(secure);
      return true;
    };
    const pacer = link.deps.handshakes;
    if (pacer) this.pacing = pacer.submit(raw, link.mode, start);
    else start();
  }

  /** Channel binding types this connection can give (SPEC A14); none asked of the TLS layer unless -PLUS is on. */
  private bindingTypes(): string[] {
    const cb = this.link.deps.sasl?.channelBinding;
    if (!cb || !this.link.deps.config.sasl.channelBinding) return [];
    return this.link.handedIn ? [...this.link.handedIn.cb.keys()] : cb.types(this.link.client.socket);
  }

  /** The client's next `<response/>` (decoded by the caller); rejects with SaslAborted on `<abort/>`. */
  private response(): Promise<string> {
    const phase = this.link.phase;
    if (this.abandoned || phase === "closing" || phase === "closed") return Promise.reject(new SaslAborted());
    this.link.phase = "authenticating";
    return new Promise((resolve, reject) => { this.expect = { resolve, abort: () => reject(new SaslAborted()) }; });
  }

  /** The exchange `mine` is still the current one, and the client is still there. */
  private current(mine: number): boolean {
    return !this.abandoned && mine === this.exchange && this.link.phase === "authenticating";
  }

  private onAuth(el: Element): void {
    this.exchange++;
    this.v2 = undefined;
    this.authEl = el;
    this.begin(el.attrs.mechanism ?? "", el.getText().trim());
  }

  /** SPEC A15: SASL2, with Bind2 and FAST inline. */
  private onAuthenticate(el: Element): void {
    this.exchange++;
    this.authEl = el;
    const bind = el.getChild("bind", NS.bind2);
    const fast = el.getChild("fast", NS.fast);
    const count = fast?.attrs.count;
    this.v2 = {
      agent: (el.getChild("user-agent")?.attrs.id ?? "").slice(0, 128),
      bind: bind
        ? { tag: bind.getChildText("tag") ?? undefined, carbons: !!bind.getChild("enable", NS.carbons), sm: bind.getChild("enable", NS.sm) ?? undefined }
        : undefined,
      requestToken: el.getChild("request-token", NS.fast)?.attrs.mechanism === HT_MECHANISM,
      invalidate: fast?.attrs.invalidate === "true" || fast?.attrs.invalidate === "1",
      resume: this.link.deps.config.sm.enabled ? el.getChild("resume", NS.sm) ?? undefined : undefined,
      count: count !== undefined && /^\d{1,15}$/.test(count) ? Number(count) : undefined,
    };
    const mechanism = el.attrs.mechanism ?? "";
    const initial = (el.getChildText("initial-response") ?? "").trim();
    if (mechanism === HT_MECHANISM && fast && this.link.deps.sasl?.fast.enabled) {
      this.link.phase = "authenticating";
      return void this.routeAway(mechanism, initial)
        .then((away) => (away ? undefined : this.fastLogin(initial)))
        .catch((err: unknown) => this.unexpected(err));
    }
    this.begin(mechanism, initial);
  }

  private unexpected(err: unknown): void {
    this.link.log.error({ err }, "authentication failed unexpectedly");
    this.link.closeWithError("internal-server-error", "mucmux");
  }

  /** The `<auth/>` or `<authenticate/>` being answered (handed to the owner as it is, SPEC H2). */
  private authEl: Element | undefined;
  /** The client's xml:lang on its stream header. */
  clientLang: string | undefined;

  private get saslNs(): string {
    return this.v2 ? NS.sasl2 : NS.sasl;
  }

  private challenge(data: string): void {
    this.link.client.write(data === ""
      ? `<challenge xmlns='${this.saslNs}'/>`
      : `<challenge xmlns='${this.saslNs}'>${Buffer.from(data).toString("base64")}</challenge>`);
  }

  private begin(mechanism: string, text: string): void {
    const offered = this.link.deps.sasl?.offer.mechanisms(this.bindingTypes()) ?? ["PLAIN"];
    if (!offered.includes(mechanism)) return this.fail("invalid-mechanism", "other", "none");
    this.link.phase = "authenticating";
    // RFC 6120 §6.4.2: no initial response, so send an empty challenge.
    const initial = text !== "" ? Promise.resolve(text) : (this.challenge(""), this.response());
    initial.then(
      async (t) => {
        if (await this.routeAway(mechanism, t)) return;
        return mechanism === "PLAIN" ? this.plain(t) : this.scram(mechanism, t);
      },
      () => this.fail("aborted", mechanism, "none"),
    ).catch((err: unknown) => this.unexpected(err));
  }

  /**
   * SPEC H2: with several replicas, the replica owning the account serves the login. True when this stream was
   * handed to the owner (or answered already): nothing more happens here. False: this replica is the owner.
   */
  private async routeAway(mechanism: string, b64: string): Promise<boolean> {
    const link = this.link;
    const cluster = link.deps.cluster;
    if (!cluster) return false;
    const username = loginName(mechanism, b64);
    // A login that names nobody valid fails here, as it would at the owner.
    if (username === undefined || !validUsername(username)) return false;
    const account = this.account(username);
    const mine = this.exchange;
    let unreachable: string | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const route = await cluster.route(account, link.handedIn !== undefined, unreachable);
      if (!this.current(mine)) return true;
      if (route.kind === "local") return false;
      if (route.kind === "unavailable") {
        this.fail("temporary-auth-failure", mechanism, "none", route.reason);
        return true;
      }
      if (await link.handOff(route.address, this.preamble(account), this.prelude(b64))) return true;
      if (!this.current(mine)) return true;
      unreachable = route.owner;
    }
    this.fail("temporary-auth-failure", mechanism, "none", "the account's replica could not be reached; try again");
    return true;
  }

  private preamble(account: string): HandoffPreamble {
    const link = this.link;
    const cb: Record<string, string> = {};
    for (const type of this.bindingTypes()) {
      const data = link.deps.sasl?.channelBinding?.data(link.client.socket, type);
      if (data) cb[type] = data.toString("base64");
    }
    return { v: 1, account, mode: link.mode, origin: link.origin, sni: serverNameOf(link.client.socket), cb };
  }

  /** What the owner reads first: the stream header as the client opened it, then its authentication request. */
  private prelude(b64: string): string {
    const header = streamHeader({ to: this.domain, version: "1.0", "xml:lang": this.clientLang ?? "en" });
    const el = this.authEl;
    if (!el) return header;
    const copy = copyElement(el);
    if (this.v2) {
      // A response given after an empty challenge becomes the initial response (the owner sends no challenge).
      const ir = copy.getChild("initial-response");
      if (ir) ir.children = [b64];
      else copy.append(new Element("initial-response").t(b64));
    } else {
      copy.children = [b64 === "" ? "=" : b64];
    }
    return header + serialize(copy);
  }

  /** XEP-0205: an address that failed too often is refused without asking the server (SPEC E4). */
  private throttled(mechanism: string): boolean {
    const throttle = this.link.deps.authThrottle;
    if (!throttle?.blocked(this.link.origin.source.address)) return false;
    this.fail("temporary-auth-failure", mechanism, "none", "too many failed attempts from this address; try later");
    return true;
  }

  private get domain(): string {
    return this.link.domain ?? this.link.deps.config.domains[0] ?? "";
  }

  private async plain(b64: string): Promise<void> {
    const creds = parsePlain(b64);
    if (typeof creds === "string") return this.fail(creds, "PLAIN", "plain");
    if (!authzidAllowed(creds.authzid, creds.username, this.domain)) return this.fail("invalid-authzid", "PLAIN", "plain");
    if (this.throttled("PLAIN")) return;
    const credentials: Credentials = { username: creds.username, secret: { kind: "password", password: creds.password } };
    const auth = credentialAuth(credentials);
    const outcome = await this.upstream(auth, "PLAIN", "plain");
    if (!outcome) return;
    await this.succeed(outcome, credentials, creds.username, "PLAIN", "plain", undefined);
    // SPEC A11: the upstream accepted the password, so the account's verifiers can be made to match it.
    const sasl = this.link.deps.sasl;
    // In a later turn: a burst of logins completing together must not also learn in the same turn (SPEC E1).
    if (sasl) {
      const account = this.account(creds.username);
      const learned = auth.learned();
      setImmediate(() => void sasl.verifiers.learn(account, creds.password, learned, sasl.offer.hashes()));
    }
  }

  private account(username: string): string {
    return `${username}@${this.domain}`.toLowerCase();
  }

  private async scram(mechanism: string, b64: string): Promise<void> {
    const link = this.link;
    const sasl = link.deps.sasl;
    const mech = parseMechanism(mechanism);
    const decoded = decodePayload(b64);
    if (!sasl || !mech) return this.fail("invalid-mechanism", mechanism, "none");
    if ("error" in decoded) return this.fail(decoded.error, mechanism, "none");
    const text = decoded.text;
    const first = parseClientFirst(text);
    if (typeof first === "string") return this.fail(first, mechanism, "none");
    // RFC 5802 §6: -PLUS needs p=, and a non-PLUS mechanism with p= is an error; 'y' while this server offers
    // -PLUS on this connection means a downgrade happened on the way.
    const types = this.bindingTypes();
    if (mech.plus !== (typeof first.binding === "object") || (first.binding === "y" && types.length > 0)) {
      return this.fail("malformed-request", mechanism, "none", "channel binding flag does not match the mechanism");
    }
    if (typeof first.binding === "object" && !types.includes(first.binding.type)) {
      return this.fail("malformed-request", mechanism, "none", "unsupported channel binding type");
    }
    if (!validUsername(first.username)) return this.fail("not-authorized", mechanism, "none");
    if (first.authzid !== undefined && !authzidAllowed(first.authzid, first.username, this.domain)) {
      return this.fail("invalid-authzid", mechanism, "none");
    }
    if (this.throttled(mechanism)) return;
    const account = this.account(first.username);
    const mine = this.exchange;
    // -PLUS cannot be relayed: it is checked against the stored verifier even while that is suspect (SPEC A14).
    const verifier = mech.plus ? await sasl.verifiers.peek(account, mech.hash) : await sasl.verifiers.find(account, mech.hash);
    if (!this.current(mine)) return;
    if (verifier) return this.terminate(mechanism, first, verifier, account);
    // SPEC A13: no verifier, so the server checks the client itself; -PLUS binds to mucmux's TLS and cannot pass.
    if (mech.plus) return this.fail("not-authorized", mechanism, "none", "no verifier for this account; log in without channel binding once");
    return this.relay(mechanism, text, first, account, mech.hash);
  }

  /** SPEC A10: mucmux is the SCRAM server; the recovered ClientKey authenticates upstream (SPEC A11, A12). */
  private async terminate(mechanism: string, first: ClientFirst, v: StoredVerifier, account: string): Promise<void> {
    const link = this.link;
    const sasl = link.deps.sasl!;
    const nonce = first.nonce + randomBytes(18).toString("base64");
    const serverFirst = serverFirstMessage(nonce, v);
    this.challenge(serverFirst);
    let reply: string;
    try {
      reply = await this.response();
    } catch {
      return this.fail("aborted", mechanism, "terminated");
    }
    const decoded = decodePayload(reply);
    if ("error" in decoded) return this.fail(decoded.error, mechanism, "terminated");
    const final = parseClientFinal(decoded.text);
    if (typeof final === "string") return this.fail(final, mechanism, "terminated");
    if (final.nonce !== nonce) return this.fail("malformed-request", mechanism, "terminated", "nonce mismatch");
    const binding = typeof first.binding !== "object" ? Buffer.alloc(0)
      : link.handedIn ? link.handedIn.cb.get(first.binding.type) : sasl.channelBinding?.data(link.client.socket, first.binding.type);
    if (!binding || !final.binding.equals(Buffer.concat([Buffer.from(first.gs2Header), binding]))) {
      this.link.deps.authThrottle?.recordFailure(link.origin.source.address);
      return this.fail("not-authorized", mechanism, "terminated", "channel binding mismatch");
    }
    const proven = checkProof(v, `${first.bare},${serverFirst},${final.withoutProof}`, final.proof);
    if (!proven) {
      // A wrong password, or the right new one after a change on the server: the next attempt is relayed (SPEC A11).
      sasl.verifiers.suspect(account, v.hash);
      link.deps.authThrottle?.recordFailure(link.origin.source.address);
      return this.fail("not-authorized", mechanism, "terminated");
    }
    const secret = sasl.verifiers.secretFor(v, proven.clientKey);
    if (!secret) {
      await sasl.verifiers.drop(account, v.hash);
      return this.fail("temporary-auth-failure", mechanism, "terminated", "the stored verifier cannot log in upstream; try again");
    }
    const credentials: Credentials = { username: first.username, secret };
    const outcome = await this.upstream(credentialAuth(credentials), mechanism, "terminated", async (o) => {
      if (o.condition === "not-authorized") await sasl.verifiers.drop(account, v.hash); // SPEC A11: stale
      return undefined;
    });
    if (!outcome) return;
    await this.succeed(outcome, credentials, first.username, mechanism, "terminated", Buffer.from(`v=${proven.serverSignature.toString("base64")}`));
  }

  /** SPEC A13: the client's exchange goes to the server untouched; the session has a leg but the account no key. */
  private async relay(mechanism: string, initial: string, first: ClientFirst, account: string, hash: ScramHash): Promise<void> {
    let undecodable: SaslCondition | undefined;
    let serverFirst: string | undefined;
    let clientFinal: string | undefined;
    const auth: UpstreamAuth = {
      username: first.username,
      relayed: true,
      choose: (offered) => (offered.includes(mechanism) ? mechanism : undefined),
      start: () => ({
        initial: () => initial,
        step: async (challenge) => {
          if (this.abandoned) throw new SaslAborted(); // the client left while the server was connecting
          this.challenge(challenge);
          const text = await this.response();
          // RFC 6120 §6.4.3: an empty response (to a server's last challenge) passes as it is.
          if (text.trim() === "" || text.trim() === "=") return "";
          const reply = decodePayload(text);
          if ("error" in reply) {
            undecodable = reply.error;
            throw new SaslAborted(); // not relayed: the client is told what was wrong with it
          }
          serverFirst ??= challenge;
          clientFinal ??= reply.text;
          return reply.text;
        },
        verify: () => true, // the client checks the server's signature itself
      }),
    };
    const outcome = await this.upstream(auth, mechanism, "relayed", async () => undecodable);
    if (!outcome) return;
    const credentials = await this.judgeRelayed(account, hash, first, serverFirst, clientFinal);
    if (!this.current(this.exchange)) return void outcome.leg.wire.destroy();
    await this.succeed(outcome, credentials, first.username, mechanism, "relayed", outcome.successData === "" ? undefined : Buffer.from(outcome.successData));
  }

  /**
   * SPEC A11: the server accepted a relayed login. If a verifier is stored (the login was relayed because a proof
   * failed against it), the relayed proof tells whether it is still right: checked against it when the server used
   * the verifier's salt and count, it either matches (the verifier stays, and the account has its key) or not (the
   * verifier is stale and dropped). A verifier with a salt of mucmux's own cannot be judged this way and stays.
   */
  private async judgeRelayed(
    account: string, hash: ScramHash, first: ClientFirst, serverFirst: string | undefined, clientFinal: string | undefined,
  ): Promise<Credentials | undefined> {
    const sasl = this.link.deps.sasl;
    const v = sasl ? await sasl.verifiers.peek(account, hash) : undefined;
    if (!sasl || !v || serverFirst === undefined || clientFinal === undefined) return undefined;
    const attrs = parseAttributes(serverFirst);
    const sameSalt = attrs?.get("s") === v.salt.toString("base64") && attrs?.get("i") === String(v.iterations);
    if (!sameSalt) {
      if (v.upstream) await sasl.verifiers.drop(account, hash); // the server's salt moved on: a new password
      return undefined;
    }
    const final = parseClientFinal(clientFinal);
    const proven = typeof final === "object" ? checkProof(v, `${first.bare},${serverFirst},${final.withoutProof}`, final.proof) : undefined;
    if (!proven) {
      await sasl.verifiers.drop(account, hash);
      return undefined;
    }
    sasl.verifiers.trust(account, hash);
    const secret = sasl.verifiers.secretFor(v, proven.clientKey);
    return secret ? { username: first.username, secret } : undefined;
  }

  /** Authenticate the session's leg; undefined (the client answered) unless the server accepted. */
  private async upstream(
    auth: UpstreamAuth, mechanism: string, path: Path,
    /** Told of the server's refusal before the client is; may name the condition the client gets instead. */
    onRefused?: (o: { condition: string }) => Promise<SaslCondition | undefined | void>,
  ): Promise<Extract<UpstreamOutcome, { ok: true }> | undefined> {
    const link = this.link;
    link.phase = "authenticating";
    const gone = (this.gone = new AbortController());
    const mine = this.exchange;
    const outcome = await link.deps.connectUpstream(this.domain, auth, link.origin, gone.signal);
    if (this.gone === gone) this.gone = undefined; // the wait for a connect slot is over
    if (!this.current(mine)) {
      if (outcome.ok) outcome.leg.wire.destroy();
      return undefined;
    }
    const metrics = link.deps.metrics;
    if (!outcome.ok && outcome.reason === "connect") {
      metrics.saslOutcomes.inc({ mechanism: "none", result: "upstream_unreachable" });
      metrics.clientAuth.inc({ mechanism: label(mechanism), path, result: "upstream_unreachable" });
      // SPEC E5: a new client whose server cannot be reached.
      link.closeWithError("remote-connection-failed", "mucmux", "the XMPP server is unreachable");
      return undefined;
    }
    if (!outcome.ok) {
      const condition = mapUpstreamFailure(outcome.condition, auth.relayed === true);
      metrics.saslOutcomes.inc({ mechanism: outcome.mechanism, result: condition });
      if (condition === "not-authorized") link.deps.authThrottle?.recordFailure(link.origin.source.address);
      const instead = await onRefused?.(outcome);
      this.fail(instead ?? condition, mechanism, path, instead ? undefined : outcome.text);
      return undefined;
    }
    metrics.saslOutcomes.inc({ mechanism: outcome.mechanism, result: "success" });
    return outcome;
  }

  /** SPEC A15: a FAST login proves a token mucmux issued; the secret it unlocks logs the leg in. */
  private async fastLogin(b64: string): Promise<void> {
    const sasl = this.link.deps.sasl!;
    const decoded = decodeBase64(b64);
    if (!decoded) return this.fail("incorrect-encoding", HT_MECHANISM, "fast");
    const ht = parseHtResponse(decoded);
    if (!ht) return this.fail("malformed-request", HT_MECHANISM, "fast");
    if (!validUsername(ht.username)) return this.fail("not-authorized", HT_MECHANISM, "fast");
    if (this.throttled(HT_MECHANISM)) return;
    const account = this.account(ht.username);
    const mine = this.exchange;
    const found = await sasl.fast.check(account, ht.initiator, this.v2?.count);
    if (!this.current(mine)) return;
    if (!found) {
      this.link.deps.authThrottle?.recordFailure(this.link.origin.source.address);
      return this.fail("not-authorized", HT_MECHANISM, "fast");
    }
    const credentials: Credentials = { username: ht.username, secret: found.secret };
    const outcome = await this.upstream(credentialAuth(credentials), HT_MECHANISM, "fast", async (o) => {
      if (o.condition === "not-authorized") await sasl.fast.revoke(account, ht.initiator); // the password changed upstream
      return undefined;
    });
    if (!outcome) return;
    if (this.v2?.invalidate) await sasl.fast.revoke(account, ht.initiator); // XEP-0484: the client is done with it
    await this.succeed(outcome, credentials, ht.username, HT_MECHANISM, "fast", found.responder);
  }

  private async succeed(
    outcome: Extract<UpstreamOutcome, { ok: true }>, credentials: Credentials | undefined, username: string, mechanism: string, path: Path,
    data: Buffer | undefined,
  ): Promise<void> {
    const link = this.link;
    link.deps.metrics.clientAuth.inc({ mechanism: label(mechanism), path, result: "success" });
    link.deps.metrics.streamsAuthenticated.inc();
    clearTimeout(this.timer);
    this.timer = undefined;
    link.attachLeg(outcome.leg);
    link.phase = "bind";
    link.client.setLimits(wireSettings(link.deps.config.limits).clientAuthed);
    link.debug("authenticated", { mechanism, path });
    link.authenticated(this.account(username), credentials);
    const req = this.v2;
    if (!req) {
      link.client.parser.reset(); // RFC 6120 §6.4.6: the client restarts the stream
      link.client.write(data ? `<success xmlns='${NS.sasl}'>${data.toString("base64")}</success>` : `<success xmlns='${NS.sasl}'/>`);
      return;
    }
    // SASL2: no stream restart. A resume inline comes first (SPEC F5): the success names the resumed session and
    // carries <resumed/>; refused, the success carries <failed/> and Bind2 (if asked) binds a new session.
    const additional = data ? `<additional-data>${data.toString("base64")}</additional-data>` : "";
    let smFailed = "";
    if (req.resume) {
      const refused = await link.resume(req.resume, (resumed, jid) => `<success xmlns='${NS.sasl2}'>${additional}` +
        `<authorization-identifier>${escapeText(jid)}</authorization-identifier>${resumed}</success>`);
      if (refused === undefined || link.phase !== "bind") return;
      smFailed = refused;
    }
    // Bind2 binds upstream first, so the success names the full JID (XEP-0386).
    let aid = `${username}@${this.domain}`;
    let jid: string | undefined;
    if (req.bind) {
      jid = await link.bindInline(bind2Resource(req.bind.tag));
      if (link.phase !== "bind") return;
      if (!jid) return link.closeWithError("internal-server-error", "mucmux", "the server did not bind a resource");
      aid = jid;
    }
    const sasl = link.deps.sasl;
    const token = req.requestToken && credentials && sasl ? await sasl.fast.issue(this.account(username), req.agent, credentials.secret) : undefined;
    if (link.phase !== "bind") return;
    link.client.write(`<success xmlns='${NS.sasl2}'>${additional}` +
      `<authorization-identifier>${escapeText(aid)}</authorization-identifier>${smFailed}` +
      (jid ? `<bound xmlns='${NS.bind2}'>${req.bind?.sm && link.deps.config.sm.enabled ? link.enableSm(req.bind.sm) : ""}</bound>` : "") +
      (token ? `<token xmlns='${NS.fast}' expiry='${token.expiry.toISOString()}' token='${token.token}'/>` : "") +
      "</success>");
    if (jid) return link.boundInline(jid, req.bind?.carbons === true);
    // Without Bind2 the client binds as after SASL1, on the same stream: the server's features follow at once.
    if (link.leg) link.client.write(link.leg.features.clientXml);
  }

  private fail(condition: SaslCondition, mechanism: string, path: Path, text?: string): void {
    const link = this.link;
    if (link.phase === "closing" || link.phase === "closed") return;
    link.phase = "auth";
    this.expect = undefined;
    link.deps.metrics.clientAuth.inc({ mechanism: label(mechanism), path, result: condition });
    link.client.write(saslFailureXml(condition, text, this.v2 !== undefined));
    if (++this.attempts >= MAX_AUTH_ATTEMPTS) {
      link.closeWithError("policy-violation", "mucmux", "too many failed authentication attempts");
    }
  }

  /** The session is bound: what only its login needed is let go (memory per idle session). */
  done(): void {
    this.authEl = undefined;
    this.clientLang = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.v2 = undefined;
    this.gone = undefined;
  }

  abandon(): void {
    this.abandoned = true;
    this.pacing?.cancel();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.expect?.abort();
    this.expect = undefined;
    this.gone?.abort(); // a login still waiting for a connect slot gives it up
  }
}

/** XEP-0386: a resource the server generates, from the client's tag when it gave a usable one. */
function bind2Resource(tag: string | undefined): string {
  const random = randomBytes(6).toString("base64url");
  const clean = tag?.replace(/[^A-Za-z0-9._-]/g, "").slice(0, 32);
  return clean ? `${clean}.${random}` : random;
}

const KNOWN_MECHANISMS = new Set([HT_MECHANISM, "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS"]);
/** A bounded label value: the client's mechanism if mucmux knows it. */
const label = (mechanism: string): string => (KNOWN_MECHANISMS.has(mechanism) ? mechanism : mechanism === "none" ? "none" : "other");

/** The account name a login's initial response carries (PLAIN's authcid, SCRAM's n=, FAST's username), if readable. */
function loginName(mechanism: string, b64: string): string | undefined {
  if (mechanism === "PLAIN") {
    const creds = parsePlain(b64);
    return typeof creds === "string" ? undefined : creds.username;
  }
  const raw = decodeBase64(b64);
  if (!raw) return undefined;
  if (mechanism === HT_MECHANISM) return parseHtResponse(raw)?.username;
  if (!mechanism.startsWith("SCRAM-")) return undefined;
  const first = parseClientFirst(raw.toString("utf8"));
  return typeof first === "string" ? undefined : first.username;
}

function copyElement(el: Element): Element {
  const copy = new Element(el.name, { ...el.attrs });
  for (const child of el.children) copy.append(typeof child === "string" ? child : copyElement(child));
  return copy;
}
