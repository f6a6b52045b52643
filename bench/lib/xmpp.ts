// A deliberately cheap XMPP client for load generation: direct TLS (XEP-0368), SASL PLAIN, bind, then raw
// bytes. No XML parser: after bind the scenario sees the decrypted chunks and scans them for what it counts,
// so the load generator costs far less CPU than the processes it measures.
import tls from "node:tls";

export const DOMAIN = "localhost";

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

  constructor(readonly socket: tls.TLSSocket, readonly jid: string) {
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("error", (e) => { this.error ??= e; });
  }

  get isClosed(): boolean { return this.socket.destroyed; }

  write(data: string): boolean { return this.socket.write(data); }

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
