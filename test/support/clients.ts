// Test clients on @xmpp/client 0.14. Over xmpp:// it upgrades with STARTTLS whenever the server offers it,
// verifying the certificate against `domain`; over xmpps://127.0.0.1 against the IP. Either way the
// test certificate must be trusted, which scripts/run-tests.mjs does through NODE_EXTRA_CA_CERTS.
import { pbkdf2Sync } from "node:crypto";
import { createRequire } from "node:module";

import { client, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";

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
}

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

export async function connectClient(opts: ConnectOptions): Promise<TestClient> {
  const { service, domain, username, password } = opts;
  const who = `${username}@${domain}${opts.resource ? `/${opts.resource}` : ""} via ${service}`;
  const mechanism = opts.mechanism ?? "PLAIN";
  const xmpp = client({
    service, domain, username, password, resource: opts.resource,
    credentials: async (authenticate: (c: object, m: string) => Promise<void>, mechanisms: string[]) => {
      if (!mechanisms.includes(mechanism)) throw new Error(`${mechanism} is not offered (offered: ${mechanisms.join(" ")})`);
      await authenticate({ username, password }, mechanism);
    },
  });
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
    const starting = xmpp.start();
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
    throw new Error(`connectClient ${who}: ${(e as Error).message}${hint}${errors.length ? `; errors: ${errors.map((x) => x.message).join("; ")}` : ""}`);
  } finally {
    clearTimeout(timer);
  }
}
