// Shape shared by the throwaway upstream servers (prosody.ts, ejabberd.ts).

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

export const keepTmp = (): boolean => process.env.MUCMUX_TEST_KEEP === "1";
