// What a Link needs from the process (passed in by app.ts; no singletons).
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";
import type { ChainRunner } from "../chain/runner.js";
import type { UpstreamOutcome } from "./upstream.js";
import type { UpstreamAuth } from "./sasl-client.js";
import type { SaslOffer } from "../sasl/offer.js";
import type { VerifierBook } from "../sasl/verifiers.js";
import type { FastTokens } from "../sasl/fast.js";
import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import type { AuthFailureThrottle } from "../net/ip-gate.js";
import type { HandshakePacer } from "../net/handshake-pacer.js";
import type { LoginPacer } from "./login-pacer.js";
import type { ClientOrigin } from "../net/client-origin.js";
import type { ResumptionTable } from "./sm.js";
import type { WriteBatch } from "./write-batch.js";
import type { Route } from "../cluster/leases.js";
import type { HandoffPreamble } from "../cluster/internal.js";

export type { Credentials } from "../account/credentials.js";
import type { Credentials } from "../account/credentials.js";

/** `hibernated`: bound, its client connection gone, kept for a resume (SPEC F4). */
export type Phase = "tls" | "auth" | "authenticating" | "bind" | "online" | "hibernated" | "closing" | "closed";

/** `S` is the session type the process hands back in onBound/onClosed (the Link itself). */
export interface LinkDeps<S = unknown> {
  config: Config;
  metrics: Metrics;
  log: Logger;
  chain: ChainRunner;
  /** Writes toward devices leave once per socket per turn (write-batch.ts). */
  batch: WriteBatch;
  /** The current server TLS context (swapped in place when certificates are reloaded). */
  secureContext(): SecureContext;
  /** `origin`: the client's address, for the PROXY header upstream (upstream.proxyProtocol); `signal`: aborted
   * when the client goes away (a login waiting for the connect rate cap stops waiting). */
  connectUpstream(domain: string, auth: UpstreamAuth, origin?: ClientOrigin, signal?: AbortSignal): Promise<UpstreamOutcome>;
  /** SCRAM toward clients (SPEC A10–A14); absent: PLAIN only. */
  sasl?: SaslDeps;
  isDraining(): boolean;
  /**
   * The session's resource is bound: the account registry takes the credentials (SPEC A3: memory only,
   * in the account record, because the anchor needs them).
   */
  onBound(session: S, credentials: Credentials | undefined): void;
  onClosed(session: S): void;
  /** Sessions a client may resume (XEP-0198, SPEC F5); absent: no resumption. */
  resumption?: ResumptionTable<S>;
  /** A hibernated session continues on a new connection (its backlog is written). */
  onResumed?(session: S): void;
  /** A resumed session's new login brought credentials (the account's newest, as at bind). */
  onCredentials?(session: S, credentials: Credentials): void;
  /** The client said it is active or inactive (XEP-0352). */
  onCsi?(session: S, active: boolean): void;
  /** Failed SASL attempts per client address (XEP-0205); absent: no throttling. */
  authThrottle?: AuthFailureThrottle;
  /** Client TLS handshakes start at most limits.tlsHandshakesPerTurn per turn (SPEC E8); absent: at once. */
  handshakes?: HandshakePacer;
  /** The input of streams not yet online is handled at most limits.loginMsPerTurn per turn (SPEC E8); absent: at once. */
  logins?: LoginPacer;
  /** Several replicas (SPEC H2): absent with the embedded store (one replica). */
  cluster?: ClusterPort;
}

/** SPEC H2: the login of an account goes to the replica that owns it. */
export interface ClusterPort {
  /** Where the login of `account` goes; `handedIn`: it was handed to this replica already (never a second hop). */
  route(account: string, handedIn: boolean, unreachable?: string): Promise<Route>;
  /** Hand the client connection to the owner at `address`; true once it took it (`detach` gives the socket up). */
  handOff(address: string, preamble: HandoffPreamble, prelude: string, detach: () => Socket): Promise<boolean>;
}

/** A client connection another replica handed to this one (SPEC H2): what only the entry replica could see. */
export interface HandedIn {
  /** The TLS server name the client asked for. */
  sni: string | undefined;
  /** SPEC A14: the client's channel-binding data by type. */
  cb: ReadonlyMap<string, Buffer>;
}

export interface SaslDeps {
  offer: SaslOffer;
  verifiers: VerifierBook;
  /** FAST tokens (SPEC A15). */
  fast: FastTokens;
  /** Learn the upstream's mechanisms now (no upstream connect happened yet); at most one probe at a time. */
  probe(): void;
  /** SPEC A14: channel binding on the client's TLS connection. */
  channelBinding?: {
    types(socket: Socket): string[];
    data(socket: Socket, type: string): Buffer | undefined;
  };
}
