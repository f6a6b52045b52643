// Test clients on @xmpp/client 0.14. Over xmpp:// it upgrades with STARTTLS whenever the server offers it,
// verifying the certificate against `domain`; over xmpps://127.0.0.1 against the IP. Either way the
// test certificate must be trusted, which scripts/run-tests.mjs does through NODE_EXTRA_CA_CERTS.
import { pbkdf2Sync } from "node:crypto";
import { createRequire } from "node:module";

import { client, type Client, type JID } from "@xmpp/client";
import { xml, type Element } from "@xmpp/xml";

import { within } from "./proc.js";

// @xmpp/client's SCRAM-SHA-1 (package sasl-scram-sha-1) computes Hi() with one WebCrypto importKey+sign per
// iteration: ~400 ms per login against Prosody's 10000 iterations. Hi is PBKDF2-HMAC-SHA1 (RFC 5802 §2.2),
// so swap in node's (~5 ms). Test-process only; if the internals move, logins are just slower.
try {
  const req = createRequire(createRequire(import.meta.url).resolve("@xmpp/sasl-scram-sha-1"));
  const bitops = req("sasl-scram-sha-1/lib/bitops.js") as { Hi?: unknown };
  if (typeof bitops.Hi === "function") {
    bitops.Hi = async (text: string, salt: Uint8Array, iterations: number) =>
      new Uint8Array(pbkdf2Sync(text, salt, iterations, 20, "sha1"));
  }
} catch {
  /* keep the slow path */
}

export interface ConnectOptions {
  /** 'xmpp://127.0.0.1:PORT' or 'xmpps://127.0.0.1:PORT' */
  service: string;
  domain: string;
  username: string;
  password: string;
  resource?: string;
  /** Whole connect/auth/bind deadline (default 10 s). */
  timeoutMs?: number;
  /**
   * The SASL mechanism, as a client pinned to it would use it (default PLAIN: the login that gives mucmux the
   * account's key, SPEC A11; a first SCRAM login without a verifier is relayed and the account has no anchor).
   */
  mechanism?: "PLAIN" | "SCRAM-SHA-1";
  /**
   * XEP-0198 as xmpp.js does it: enabled with resumption after bind or inline in Bind2, resumed inline in SASL2 or
   * after authentication (default false: the features are hidden from xmpp.js, so that a dropped connection ends
   * the session at once, as most tests assume; the stream management tests turn it on).
   */
  sm?: boolean;
  /**
   * Log in with SASL2 + Bind2 (+ FAST) when the server offers it, as xmpp.js does by default (default false: the
   * SASL2 feature is hidden from xmpp.js, as for a SASL1-only client; Bind2 makes the resource `<resource>.<random>`).
   */
  sasl2?: boolean;
  /** Bind2 (SASL2 only): ask for carbons inline (XEP-0386 with XEP-0280), as Conversations and Monal do. */
  carbons?: boolean;
  /** FAST (SASL2 only): the token to try first, and where a token the server issues goes. */
  fast?: { token?: FastToken | undefined; onToken?(t: FastToken): void };
}

/** A FAST token as xmpp.js keeps it. */
export interface FastToken { mechanism: string; token: string; expiry: string }

export interface TestClient {
  readonly xmpp: Client;
  /** Full JID bound by the server. */
  readonly jid: string;
  /** Every stanza received since connect, in order. */
  readonly received: Element[];
  /** Errors @xmpp/client emitted (stream errors, socket errors). */
  readonly errors: Error[];
  /** First received (past or future) stanza matching; rejects after timeoutMs (default 5000) or on disconnect. */
  waitFor(predicate: (el: Element) => boolean, timeoutMs?: number): Promise<Element>;
  send(el: Element): Promise<void>;
  /** iq request via iqCaller; resolves with the result iq, rejects on error iq or timeout (default 10 s). */
  iq(el: Element, timeoutMs?: number): Promise<Element>;
  /** Closes the stream (bounded: destroys the socket after 5 s); idempotent. */
  stop(): Promise<void>;
}

const SM = "urn:xmpp:sm:3";

const short = (el: Element): string => {
  const s = el.toString();
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
};

function matches(pred: (el: Element) => boolean, el: Element): boolean {
  try {
    return pred(el);
  } catch {
    return false;
  }
}

/** Stream features without XEP-0198: at top level, in SASL2's inline features and in Bind2's. */
function withoutSm(features: Element): void {
  const sm = (c: Element | string) => typeof c !== "string" && (c.attrs.xmlns === SM || (c.name === "feature" && c.attrs.var === SM));
  const walk = (el: Element) => {
    el.children = el.children.filter((c) => !sm(c));
    for (const c of el.children) if (typeof c !== "string") walk(c);
  };
  walk(features);
}

export async function connectClient(opts: ConnectOptions): Promise<TestClient> {
  const { service, domain, username, password } = opts;
  const who = `${username}@${domain}${opts.resource ? `/${opts.resource}` : ""} via ${service}`;
  const mechanism = opts.mechanism ?? "PLAIN";
  const xmpp = client({
    service, domain, username, password, resource: opts.resource,
    credentials: async (authenticate: (c: object, m: string) => Promise<void>, mechanisms: string[]) => {
      if (!mechanisms.includes(mechanism)) throw new Error(`${mechanism} is not offered (offered: ${mechanisms.join(" ")})`);
      await authenticate({ username, password, ...(opts.fast?.token ? { token: opts.fast.token } : {}) }, mechanism);
    },
  });
  if (opts.carbons) {
    const bind2 = (xmpp as unknown as { bind2: { use(ns: string, req: () => Element): void } }).bind2;
    bind2.use("urn:xmpp:carbons:2", () => xml("enable", { xmlns: "urn:xmpp:carbons:2" }));
  }
  if (opts.fast) {
    const fast = (xmpp as unknown as { fast: { saveToken(t: FastToken): Promise<void> } }).fast;
    fast.saveToken = async (t) => { opts.fast?.onToken?.(t); };
  }
  if (!opts.sasl2 || !opts.sm) {
    // A SASL1-only client: xmpp.js takes SASL2 whenever <authentication xmlns='urn:xmpp:sasl:2'> is offered. A client
    // without stream management: xmpp.js enables it (with resumption) whenever it is offered, also inline.
    const conn = xmpp as unknown as { _onElement(el: Element): void };
    const onElement = conn._onElement.bind(xmpp);
    conn._onElement = (el: Element) => {
      if (el.name === "stream:features") {
        if (!opts.sasl2) el.children = el.children.filter((c) => typeof c === "string" || c.attrs.xmlns !== "urn:xmpp:sasl:2");
        if (!opts.sm) withoutSm(el);
      }
      onElement(el);
    };
  }
  if (opts.sm) {
    // xmpp.js 0.14 reconnecting (SM resumption) can get a read on its new socket while its parser is detached, and
    // throws out of the socket's data handler; such a read (there is no stream for it) is dropped instead.
    const conn = xmpp as unknown as { _onData(data: Buffer): void; parser: unknown };
    const onData = conn._onData.bind(xmpp);
    conn._onData = (data: Buffer) => { if (conn.parser) onData(data); };
  }
  xmpp.reconnect.stop();
  const received: Element[] = [];
  const errors: Error[] = [];
  const waiters = new Set<{ pred: (el: Element) => boolean; done: (el: Element | Error) => void }>();
  xmpp.on("error", (e) => void errors.push(e));
  xmpp.on("stanza", (el) => {
    received.push(el);
    for (const w of waiters) if (matches(w.pred, el)) w.done(el);
  });
  xmpp.on("disconnect", () => {
    for (const w of waiters) w.done(new Error("disconnected"));
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // @xmpp detaches (without destroying) a socket whose peer does not close in time: keep a handle to it
    const s = xmpp.socket;
    const raw = s?.socket ?? s;
    await within(xmpp.stop().catch(() => undefined), 5000);
    raw?.destroy?.();
  };

  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  try {
    // xmpp.js subscribes to the server's stream header only after its own header's write completed; a server that
    // answers faster makes start() time out in open(). A SASL1 login hides this (the restarted stream's header
    // settles it); SASL2 has no restart, so "online" is what counts.
    const online = new Promise<JID>((resolve) => xmpp.once("online", resolve));
    const starting = xmpp.start().catch((e: Error) => (e.name === "TimeoutError" ? online : Promise.reject(e)));
    starting.catch(() => undefined); // the timeout may win the race; no unhandled rejection later
    const jid = await Promise.race([
      starting,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no session after ${timeoutMs} ms`)), timeoutMs))),
    ]);
    return {
      xmpp, jid: jid.toString(), received, errors, stop,
      send: (el) => xmpp.send(el),
      iq: (el, ms = 10_000) => xmpp.iqCaller.request(el, ms),
      waitFor(pred, ms = 5000) {
        const past = received.find((el) => matches(pred, el));
        if (past) return Promise.resolve(past);
        return new Promise((resolve, reject) => {
          const w = {
            pred,
            done: (r: Element | Error) => {
              clearTimeout(t);
              waiters.delete(w);
              if (!(r instanceof Error)) return resolve(r);
              const got = received.slice(-20).map((el) => `  ${short(el)}`).join("\n");
              const errs = errors.map((e) => `  error: ${e.message}`).join("\n");
              reject(new Error(`waitFor(${jid.toString()}): ${r.message}; predicate ${pred.toString().slice(0, 200)}\n` +
                `received ${received.length} stanza(s)${received.length > 20 ? ", last 20" : ""}:\n${got || "  (none)"}${errs ? `\n${errs}` : ""}`));
            },
          };
          const t = setTimeout(() => w.done(new Error(`nothing matched within ${ms} ms`)), ms);
          waiters.add(w);
        });
      },
    };
  } catch (e) {
    await stop();
    const hint = /certificate|self.signed|verify/i.test(String(e))
      ? " (test CA not trusted? `npm test` puts test/.tmp/certs/cert.pem into NODE_EXTRA_CA_CERTS)" : "";
    throw new Error(`connectClient ${who}: ${(e as Error).message || (e as Error).name}${hint}${errors.length ? `; errors: ${errors.map((x) => x.message).join("; ")}` : ""}`);
  } finally {
    clearTimeout(timer);
  }
}
