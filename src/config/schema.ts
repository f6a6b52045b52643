/**
 * The configuration schema: the single source of every key, its type, default and one-line
 * description. Flags, environment variable names and --help are all derived from it (see leaves.ts),
 * so they cannot drift apart. Messages are written for operators: "must be …", the key path is added
 * by issues.ts.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { crossChecks } from "./checks.js";
import { HOST_NAME, parseCidr } from "../net/ip-address.js";

// Timers take milliseconds in a signed 32-bit int (setTimeout clamps anything larger to 1 ms), so
// durations that end up in a timer are capped at that many seconds.
const MAX_TIMER_SECONDS = 2_147_483;

function integer(min: number, max?: number) {
  const message = max === undefined ? `must be an integer >= ${min}` : `must be an integer between ${min} and ${max}`;
  return z
    .number({ invalid_type_error: message, required_error: message })
    .int(message)
    .min(min, message)
    .max(max ?? Number.MAX_SAFE_INTEGER, message);
}

/** 0 asks the OS for a free port (tests use it); the bound port is then read from the socket. */
const port = () => integer(0, 65535);

function seconds(opts: { allowZero?: boolean; max?: number } = {}) {
  const max = opts.max ?? MAX_TIMER_SECONDS;
  const message = `must be a number of seconds ${opts.allowZero ? ">= 0" : "> 0"} and <= ${max}`;
  const base = z.number({ invalid_type_error: message }).finite(message).max(max, message);
  return opts.allowZero ? base.min(0, message) : base.positive(message);
}

const text = () => z.string({ invalid_type_error: "must be a string" }).min(1, "must not be empty");
const bool = () => z.boolean({ invalid_type_error: "must be true or false" });

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const message = `must be one of ${values.join(", ")}`;
  return z.enum(values, { errorMap: () => ({ message }) });
}

const domain = z
  .string({ invalid_type_error: "must be a domain name" })
  .regex(HOST_NAME, "must be a domain name (ASCII/punycode, e.g. example.org)")
  .transform((name) => name.toLowerCase());

// upstream.seeOtherHostAllow: a host as a see-other-host value names it, without the port.
const REDIRECT_HOST_MESSAGE = "must be a host name or IP address without a port (e.g. xmpp2.example.org)";
const redirectHost = z
  .string({ invalid_type_error: REDIRECT_HOST_MESSAGE })
  .transform((h) => h.replace(/^\[(.*)\]$/, "$1").toLowerCase())
  .refine((h) => HOST_NAME.test(h) || isIP(h) !== 0, REDIRECT_HOST_MESSAGE);

/** A YAML mapping; `.default({})` lets a whole section be omitted and still be fully defaulted. */
function section<T extends z.ZodRawShape>(shape: T) {
  const object = z.object(shape).strict();
  // Every key of a section has a default, so {} parses to a complete section; the generic type can't show it.
  return object.default({} as Parameters<typeof object.default>[0] & object);
}

const listener = z
  .object({
    host: text().default("0.0.0.0").describe("address to listen on"),
    port: port().describe("port to listen on"),
    tls: oneOf(["starttls", "direct"]).default("starttls").describe("starttls (RFC 6120 §5) or direct TLS (XEP-0368)"),
  })
  .strict();

/** An IPv4/IPv6 CIDR or single address (the PROXY protocol's trusted peers: those allowed, and required, to send a header). */
const cidr = z.string({ invalid_type_error: "must be a CIDR string" }).superRefine((text, ctx) => {
  const c = parseCidr(text);
  if (typeof c === "string") ctx.addIssue({ code: z.ZodIssueCode.custom, message: c });
});

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** The schema before cross-field checks; checks.ts is typed on its output. */
export const configShape = z
  .object({
    domains: z
      .array(domain, { invalid_type_error: "must be a list of domain names", required_error: "is required" })
      .min(1, "must list at least one domain")
      .describe("domains mucmux serves (the 'to' of client streams)"),
    listeners: z
      .array(listener, { invalid_type_error: "must be a list of listeners" })
      .min(1, "must list at least one listener")
      .default([
        { host: "0.0.0.0", port: 5222, tls: "starttls" },
        { host: "0.0.0.0", port: 5223, tls: "direct" },
      ])
      .describe("client listeners: a list of {host, port, tls: starttls|direct}"),
    proxyProtocol: section({
      trusted: z
        .array(cidr, { invalid_type_error: "must be a list of CIDRs" })
        .optional()
        .describe("load balancers (CIDRs) that must send a PROXY protocol v1/v2 header; nobody else may (unset: off)"),
    }),
    tls: section({
      cert: text().optional().describe("PEM certificate chain file, leaf first (unset: self-signed in memory)"),
      key: text().optional().describe("PEM private key file for tls.cert"),
      reloadSeconds: seconds().default(10).describe("how often to check the cert/key files for changes"),
    }),
    upstream: section({
      host: text().default("127.0.0.1").describe("XMPP server to relay to"),
      port: port().default(15222).describe("XMPP server client port"),
      tls: oneOf(["none", "starttls", "direct"]).default("none").describe("TLS towards the XMPP server"),
      verify: bool().default(true).describe("verify the server's certificate when upstream.tls is not none"),
      connectTimeoutSeconds: seconds().default(10).describe("give up connecting to the server after this long"),
      connectsPerSecond: z.number({ invalid_type_error: "must be a number >= 0" }).finite("must be a number >= 0").min(0, "must be a number >= 0")
        .default(100).describe("new server connections per second, logins and anchors together (0: no cap)"),
      connectBurst: integer(1).default(200).describe("server connections allowed at once before upstream.connectsPerSecond applies"),
      connectWaitSeconds: seconds({ allowZero: true }).default(5)
        .describe("how long a login waits for a connection slot before temporary-auth-failure"),
      seeOtherHostAllow: z
        .array(redirectHost, { invalid_type_error: "must be a list of host names or IP addresses" })
        .optional()
        .describe("hosts a server's see-other-host redirect may name to be relayed to clients (unset: never relayed)"),
      proxyProtocol: oneOf(["off", "v2"]).default("off").describe("v2: send a PROXY protocol v2 header with the client's address first on every server connection"),
    }),
    // SASL toward clients (SPEC A10–A14).
    sasl: section({
      scram: bool().default(true).describe("offer the SCRAM mechanisms the server offers (false: PLAIN only)"),
      iterations: integer(4096, 1_000_000).default(10000).describe("PBKDF2 iterations of verifiers mucmux derives itself"),
      channelBinding: bool().default(false)
        .describe("offer SCRAM-*-PLUS (tls-exporter, tls-server-end-point); only when every SCRAM user has a verifier (imported)"),
      sasl2: bool().default(true).describe("offer SASL2 (XEP-0388) with Bind2 (XEP-0386) and FAST (XEP-0484) besides SASL1"),
      fastTokenDays: integer(0, 365).default(14).describe("lifetime of FAST tokens in days (0: no FAST)"),
    }),
    // XEP-0198 stream management toward clients, per hop (SPEC F1–F8).
    sm: section({
      enabled: bool().default(true).describe("offer stream management (XEP-0198) to clients after bind and inline in Bind2"),
      resumeSeconds: seconds({ allowZero: true, max: 3600 }).default(300)
        .describe("keep a session whose connection died this long for a resume (0: no resumption)"),
      maxQueueStanzas: integer(1, 1_000_000).default(5000)
        .describe("unacknowledged stanzas kept per session (limits.maxBufferedBytes bounds their bytes); beyond, the session ends"),
      ackTimeoutSeconds: seconds().default(60).describe("a client that leaves mucmux's <r/> unanswered this long is treated as disconnected"),
      location: text().optional().describe("host or host:port where clients resume (XEP-0198 location), for an instance with a public name of its own"),
    }),
    // Kept anchors (SPEC G6): an operator opt-in.
    anchors: section({
      keepKeyFile: text().optional()
        .describe("file with a 32-byte key (e.g. a Kubernetes Secret): keep anchors of accounts with offline delivery across restarts, their credentials sealed under it"),
    }),
    // Room push through the server's push module (SPEC G1–G5).
    wakeup: section({
      enabled: bool().default(true).describe("ask the server to push (a wake-up stanza on the anchor) for room messages while the account's devices are away"),
      intervalSeconds: seconds({ allowZero: true }).default(60).describe("while a wake-up is unanswered, at most one per account per this many seconds (mentions excepted)"),
      maxPending: integer(1, 1000).default(1).describe("unanswered wake-ups per account (mentions excepted); each waits in the server's offline store"),
      includeBody: bool().default(false).describe("put the room message's text in the wake-up (else the sender's nick and the room only)"),
    }),
    admin: section({
      host: text().default("127.0.0.1").describe("address of the admin HTTP server (/metrics, /healthz, /readyz)"),
      port: port().default(9464).describe("port of the admin HTTP server (0: any free port)"),
    }),
    store: section({
      path: text().default("./mucmux.sqlite").describe("SQLite database file (':memory:' keeps nothing); unused when store.url is set"),
      url: text().optional()
        .describe("postgres://user:password@host:port/database: PostgreSQL shared by several replicas (unset: the SQLite file)"),
      poolSize: integer(1, 1000).default(10).describe("PostgreSQL connections per replica at most"),
      timeoutSeconds: seconds().default(5).describe("a PostgreSQL connect or statement taking longer fails (the caller answers with an error)"),
    }),
    // Several replicas (SPEC H): on when store.url is set. Account leases in PostgreSQL; sessions that land on a
    // replica not owning their account are handed to its owner over an internal mTLS link.
    cluster: section({
      replicaId: text().optional().describe("this replica's name in leases (unset: host name and a random suffix, new at every start)"),
      host: text().default("0.0.0.0").describe("address of the internal mTLS listener other replicas hand sessions to"),
      port: port().default(5270).describe("port of the internal mTLS listener"),
      advertise: text().optional().describe("host:port the other replicas reach this one at (unset: this host's first non-loopback address and cluster.port)"),
      cert: text().optional().describe("PEM certificate of this replica for the internal link (required with store.url)"),
      key: text().optional().describe("PEM private key for cluster.cert"),
      ca: text().optional().describe("PEM CA that signed every replica's cluster.cert; only its certificates are accepted on the internal link"),
      leaseSeconds: seconds({ max: 3600 }).default(10).describe("an account's lease lasts this long unless renewed; a dead replica's accounts move after it"),
    }),
    limits: section({
      maxStanzaBytes: integer(1).default(262144).describe("largest stanza accepted after authentication"),
      maxUnauthedStanzaBytes: integer(1).default(10000).describe("largest stanza accepted before authentication"),
      handshakeSeconds: seconds().default(30).describe("time allowed from connect to a bound resource"),
      maxDepth: integer(1).default(64).describe("deepest element nesting accepted in a stanza"),
      maxAttributes: integer(1).default(100).describe("most attributes accepted on one element"),
      maxChildren: integer(1).default(20000).describe("most child nodes accepted in one stanza"),
      maxElements: integer(1).default(10000).describe("most elements in one stanza from a client (bounds the work one stanza causes)"),
      maxBufferedBytes: integer(1).default(4194304).describe("bytes queued towards a slow peer before disconnecting it"),
      stanzaSeconds: seconds().default(30).describe("time a client may take to finish one started stanza"),
      writeStallSeconds: seconds().default(60).describe("time a client may leave mucmux's writes to it unread"),
      maxConnectionsPerIp: integer(0).default(0).describe("concurrent client connections per remote address (0: no cap)"),
      connectsPerIpPerSecond: integer(0).default(0).describe("new client connections per second per remote address (0: no cap)"),
      authFailuresPerIp: integer(0).default(0).describe("failed logins per remote address per window before refusing (0: off)"),
      authFailureWindowSeconds: seconds().default(300).describe("window for limits.authFailuresPerIp"),
      tlsHandshakesPerTurn: integer(1, 1000).default(8).describe("client TLS handshakes started per event-loop turn at most; the rest wait their turn"),
      tlsHandshakeQueue: integer(1).default(4096).describe("client TLS handshakes waiting for their turn at most; beyond it a connection is closed"),
      loginMsPerTurn: integer(1, 1000).default(5).describe("milliseconds per event-loop turn spent on the input of streams not yet online; the rest waits its turn"),
    }),
    log: section({
      level: oneOf(LOG_LEVELS).default("info").describe(`log level: ${LOG_LEVELS.join("|")}`),
    }),
    drain: section({
      timeoutSeconds: seconds({ allowZero: false }).default(10).describe("on SIGTERM, wait this long for sessions to end"),
    }),
    // Account-level MUC (SPEC B8, C5) and MUC offline delivery (SPEC D3, D6b).
    muc: section({
      historySize: integer(0).default(50).describe("room messages kept for history replay"),
      lingerSeconds: seconds({ allowZero: true }).default(86400).describe("keep room state this long after an account's last session"),
      services: z
        .array(domain, { invalid_type_error: "must be a list of domain names" })
        .optional()
        .describe("MUC service domains, e.g. conference.example.org (unset or empty: discovered from the server, XEP-0030)"),
    }),
    offline: section({
      localRegistration: bool().default(true).describe("let users turn offline delivery on through room registration"),
      maxPerAccount: integer(0).default(1000).describe("offline messages kept per account"),
      maxPerRoom: integer(0).default(200).describe("offline messages kept per account and room"),
      ttlSeconds: seconds({ max: 10 * 365 * 86400 }).default(604800).describe("drop offline messages older than this"),
    }),
  })
  .strict();

export const configSchema = configShape.superRefine(crossChecks);

/** The validated, fully defaulted configuration. loadConfig returns it deeply frozen. */
export type Config = z.infer<typeof configSchema>;
