// Shape shared by the throwaway upstream servers (prosody.ts, ejabberd.ts).
import { randomBytes } from "node:crypto";

export const DEFAULT_USERS: Readonly<Record<string, string>> = { alice: "alicepw", bob: "bobpw", carol: "carolpw" };

export interface StartServerOptions {
  /** MUC component on conference.localhost (default true). */
  muc?: boolean;
  /** Certificate configured: STARTTLS offered (never required) on `port`, direct TLS on `directTlsPort` (default true). */
  tls?: boolean;
  /** Debug-level log in `logFile` (Prosody logs every stanza it sends as `Sending[c2s]: <message ...`). */
  debugLog?: boolean;
  /** Accounts created before the server starts (default alice/alicepw, bob/bobpw, carol/carolpw). */
  users?: Record<string, string>;
  /**
   * XEP-0198 stream management (default true: Prosody loads `smacks`, ejabberd `mod_stream_mgmt`). false removes
   * it: neither server then offers urn:xmpp:sm:3 in its post-auth stream features.
   */
  sm?: boolean;
  /**
   * How long a hibernated (resumable, connection lost) session is kept, in seconds: Prosody's
   * smacks_hibernation_time (its default 600), ejabberd's mod_stream_mgmt resume_timeout (its default 300).
   * Prosody's mod_cloud_notify stretches the hibernation of a push-enabled session to push_max_hibernation_timeout
   * (72 h) and starts this timeout only at the first push for an important stanza.
   */
  smResumeSeconds?: number;
  /**
   * XEP-0357 push: the server's push module (Prosody 0.12: mod_cloud_notify from Debian's prosody-modules;
   * ejabberd 23.01: mod_push), with module defaults, plus an external component (XEP-0114) `push.localhost`
   * listening on a free loopback port with a known secret, for a stand-in app server (push-app-server.ts).
   * The server object's `pushComponent` then says where to connect. Default off.
   */
  push?: boolean | PushServerOptions;
}

export interface PushServerOptions {
  /** The component's shared secret (default: random per server). */
  secret?: string;
}

/** The JID of the push component the servers are configured with (`push` option). */
export const PUSH_COMPONENT_JID = "push.localhost";

/** Where a stand-in XEP-0357 app server connects as an XEP-0114 component. */
export interface PushComponent {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly secret: string;
  readonly jid: typeof PUSH_COMPONENT_JID;
}

export interface XmppTestServer {
  readonly kind: "prosody" | "ejabberd";
  readonly host: "127.0.0.1";
  /** c2s port: plaintext allowed, STARTTLS offered when tls. */
  readonly port: number;
  /** Direct TLS (xmpps://) c2s port when tls, else undefined. */
  readonly directTlsPort: number | undefined;
  readonly domain: "localhost";
  readonly mucDomain: "conference.localhost";
  /** Throwaway directory (config, data, logs); removed by stop() unless MUCMUX_TEST_KEEP=1. */
  readonly dir: string;
  readonly logFile: string;
  /** OS PID of the running server process (changes on restart). */
  readonly pid: number;
  /** CA/certificate file the server presents (trusted by clients via NODE_EXTRA_CA_CERTS). */
  readonly certFile: string;
  /** With the `push` option: the XEP-0114 component port and secret for `push.localhost`; else undefined. */
  readonly pushComponent: PushComponent | undefined;
  register(user: string, password: string): Promise<void>;
  /** Give an existing account a new password (new salt and keys on the server). */
  setPassword(user: string, password: string): Promise<void>;
  /** Graceful stop (SIGTERM / ejabberdctl stop), waits for exit; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, waits for exit; keeps `dir` so restart() can follow. */
  kill(): Promise<void>;
  /** Graceful stop (if running) then start again with the same ports, config and data; also after kill(). */
  restart(): Promise<void>;
}

/** The component settings for the `push` option (a random secret unless one is given), or undefined. */
export function pushComponentFor(push: StartServerOptions["push"], port: number): PushComponent | undefined {
  if (!push) return undefined;
  const secret = (typeof push === "object" ? push.secret : undefined) ?? randomBytes(12).toString("hex");
  return { host: "127.0.0.1", port, secret, jid: PUSH_COMPONENT_JID };
}

export const keepTmp = (): boolean => process.env.MUCMUX_TEST_KEEP === "1";
