// A deliberately cheap XMPP client for load generation: direct TLS (XEP-0368), SASL PLAIN, bind, then raw
// bytes. No XML parser: after bind the scenario sees the decrypted chunks and scans them for what it counts,
// so the load generator costs far less CPU than the processes it measures. Optionally the client side of
// XEP-0198 (enableSm): received stanzas counted by a tag scanner, every <r/> answered at once.
import tls from "node:tls";

export const DOMAIN = "localhost";
export const NS_SM = "urn:xmpp:sm:3";

const streamOpen = (domain: string) =>
  `<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`;

export interface LoginOptions {
  port: number;
  user: string;
  password: string;
  resource: string;
  /** PEM of the CA that signed the server certificate (the test certificate, which is its own CA). */
  ca: string;
  domain?: string;
  timeoutMs?: number;
}

/** An authenticated, bound stream. Set `onData` to receive everything the server sends after bind. */
export class BenchSession {
  onData: (chunk: Buffer) => void = () => {};
  error: Error | undefined;
  readonly closed: Promise<void>;
  /** XEP-0198 after enableSm(): what this client counted and answered. */
  sm: SmCounter | undefined;

  constructor(readonly socket: tls.TLSSocket, readonly jid: string) {
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (d: Buffer) => {
      this.sm?.scan(d.toString("latin1"));
      this.onData(d);
    });
    socket.on("error", (e) => { this.error ??= e; });
  }

  get isClosed(): boolean { return this.socket.destroyed; }

  write(data: string): boolean { return this.socket.write(data); }

  /**
   * XEP-0198 as a real client does it, minimally: `<enable resume='true'/>`, then every stanza received from
   * `<enabled/>` on is counted and each `<r/>` is answered at once with `<a h/>`. The client never sends `<r/>` and
   * keeps nothing to resend. Resolves with the `<enabled/>` element's text; rejects on `<failed/>` or timeout.
   */
  enableSm(timeoutMs = 10_000): Promise<string> {
    if (this.sm) return Promise.reject(new Error(`${this.jid}: stream management is already enabled`));
    const app = this.onData;
    return new Promise((resolve, reject) => {
      let buf = "";
      const finish = (err: Error | undefined, enabled = "", rest = "") => {
        clearTimeout(timer);
        this.onData = app;
        if (err) return reject(err);
        this.sm = new SmCounter((h) => void this.socket.write(`<a xmlns='${NS_SM}' h='${h}'/>`));
        if (rest) {
          this.sm.scan(rest); // stanzas right behind <enabled/> count already
          app(Buffer.from(rest, "latin1"));
        }
        resolve(enabled);
      };
      const timer = setTimeout(() => finish(new Error(`${this.jid}: no <enabled/> within ${timeoutMs} ms; received: ${buf.slice(-300)}`)), timeoutMs);
      this.onData = (d) => {
        buf += d.toString("latin1");
        const at = buf.indexOf("<enabled");
        const gt = at < 0 ? -1 : buf.indexOf(">", at);
        if (gt >= 0) return finish(undefined, buf.slice(at, gt + 1), buf.slice(gt + 1));
        if (buf.includes("<failed")) finish(new Error(`${this.jid}: <enable/> refused: ${buf.slice(-300)}`));
      };
      this.socket.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
    });
  }

  /** Closes the stream politely and waits (bounded) for the socket to close. */
  async close(timeoutMs = 2000): Promise<void> {
    if (!this.socket.destroyed) {
      this.socket.write("</stream:stream>");
      this.socket.end();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.socket.destroy();
  }
}

/** Connects with direct TLS, authenticates with PLAIN and binds `resource`; rejects with the server's words. */
export function login(o: LoginOptions): Promise<BenchSession> {
  const domain = o.domain ?? DOMAIN;
  const timeoutMs = o.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: o.port, servername: domain, ca: o.ca, ALPNProtocols: ["xmpp-client"] });
    let buf = "";
    let step: "tls" | "features" | "auth" | "features2" | "bind" | "done" = "tls";
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const fail = (why: string) => {
      if (step === "done") return;
      step = "done";
      cleanup();
      socket.destroy();
      reject(new Error(`login ${o.user}/${o.resource} on port ${o.port}: ${why}${buf ? `; received: ${buf.slice(-400)}` : ""}`));
    };
    const timer = setTimeout(() => fail(`no result after ${timeoutMs} ms (at step ${step})`), timeoutMs);
    const onError = (e: Error) => fail(e.message);
    const onClose = () => fail("connection closed");
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
      if (buf.includes("<stream:error") || buf.includes("<failure")) return fail("refused");
      switch (step) {
        case "features":
          if (!buf.includes("</stream:features>")) return;
          if (!buf.includes(">PLAIN<")) return fail("PLAIN not offered");
          buf = "";
          step = "auth";
          socket.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${o.user}\0${o.password}`).toString("base64")}</auth>`);
          return;
        case "auth":
          if (!buf.includes("<success")) return;
          buf = "";
          step = "features2";
          socket.write(streamOpen(domain));
          return;
        case "features2":
          if (!buf.includes("</stream:features>")) return;
          buf = "";
          step = "bind";
          socket.write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${o.resource}</resource></bind></iq>`);
          return;
        case "bind": {
          if (/type=["']error["']/.test(buf)) return fail("bind failed");
          const m = /<jid>([^<]+)<\/jid>/.exec(buf);
          if (!m?.[1]) return;
          step = "done";
          cleanup();
          resolve(new BenchSession(socket, m[1]));
          return;
        }
        default:
          return;
      }
    };
    socket.once("secureConnect", () => {
      socket.setNoDelay(true); // the generator must not add Nagle delays of its own
      step = "features";
      socket.write(streamOpen(domain));
    });
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects on the first failure (after the others settle). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
  return out;
}

/** Counts occurrences of `needle` (ASCII) in a byte stream delivered in chunks, across chunk borders. */
export class TagCounter {
  private carry = "";
  constructor(private readonly needle: string) {}

  count(chunk: Buffer): number {
    const text = this.carry + chunk.toString("latin1");
    let n = 0;
    let i = text.indexOf(this.needle);
    while (i !== -1) {
      n++;
      i = text.indexOf(this.needle, i + this.needle.length);
    }
    // Keep a tail shorter than the needle: it cannot hold a whole match, so nothing is counted twice.
    this.carry = text.slice(Math.max(0, text.length - this.needle.length + 1));
    return n;
  }
}

/**
 * The counting half of a XEP-0198 client without an XML parser: a tag scanner that follows element depth (quoted
 * attribute values may hold '>'), counts each top-level `<message/>`, `<presence/>` and `<iq/>` when it ends, and
 * calls `answer(h)` for each top-level `<r/>` with the count so far (mod 2^32). Comments, PIs and CDATA do not occur
 * in XMPP streams (RFC 6120 §11.1) and are not handled; text between tags is skipped with indexOf.
 */
export class SmCounter {
  /** Stanzas received since `<enabled/>` (the client's `h`, unwrapped). */
  handled = 0;
  /** `<r/>` received (and answered). */
  requests = 0;
  private carry = "";
  /** Depth below the stream element: 0 between top-level elements. */
  private depth = 0;

  constructor(private readonly answer: (h: number) => void) {}

  scan(chunk: string): void {
    const text = this.carry ? this.carry + chunk : chunk;
    let pos = 0;
    for (;;) {
      const lt = text.indexOf("<", pos);
      if (lt < 0) { pos = text.length; break; }
      let gt = -1;
      for (let i = lt + 1, quote = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (quote) { if (c === quote) quote = 0; }
        else if (c === 34 || c === 39) quote = c; // " '
        else if (c === 62) { gt = i; break; } // >
      }
      if (gt < 0) { pos = lt; break; } // the tag goes on in the next chunk
      pos = gt + 1;
      if (text.charCodeAt(lt + 1) === 47) { // </name>: an element ends
        if (--this.depth === 0) this.ended(text, lt + 2);
      } else if (text.charCodeAt(gt - 1) === 47) { // <name .../>
        if (this.depth === 0) this.ended(text, lt + 1);
      } else this.depth++;
    }
    this.carry = pos < text.length ? text.slice(pos) : "";
  }

  /** A top-level element whose name starts at `at` ended. */
  private ended(text: string, at: number): void {
    let end = at;
    for (let c = text.charCodeAt(end); c !== 32 && c !== 47 && c !== 62 && c !== 9 && c !== 10 && c !== 13; c = text.charCodeAt(++end));
    const name = text.slice(at, end);
    if (name === "message" || name === "presence" || name === "iq") this.handled++;
    else if (name === "r") {
      this.requests++;
      this.answer(this.handled % 2 ** 32);
    }
  }
}
