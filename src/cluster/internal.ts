// The internal link between replicas (SPEC H2): mutually authenticated TLS, every certificate signed by the cluster's
// own CA (cluster.ca). A replica that accepted a client whose account another replica owns hands the connection over:
// it opens a link to the owner, says in one framed JSON preamble who the client is (the account it logs in as, its
// address, its TLS server name and channel-binding data, which only the entry replica can see), and once the owner
// accepts it only carries bytes: the client's decrypted stream one way, the owner's output the other. The owner runs
// the session as if the client had connected to it (the Tigase split of connection manager and session manager).
import tls from "node:tls";
import type { Socket } from "node:net";
import type { ClientOrigin } from "../net/client-origin.js";
import type { Logger } from "../log.js";

/** What the entry replica tells the owner about a client it hands over. */
export interface HandoffPreamble {
  v: 1;
  /** The account the client logs in as (bare JID, lower case): the owner checks it owns it. */
  account: string;
  /** The listener the client connected to. */
  mode: "starttls" | "direct";
  origin: ClientOrigin;
  /** The TLS server name the client asked for, if any. */
  sni: string | undefined;
  /** SPEC A14: channel-binding data of the client's TLS connection, base64 by type (empty unless -PLUS is offered). */
  cb: Record<string, string>;
}

export interface InternalLinkMetrics {
  handoff(direction: "out" | "in", result: "ok" | "refused" | "failed"): void;
  bytes(direction: "out" | "in", n: number): void;
  pipes(delta: number): void;
}

export interface InternalLinkDeps {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
  log: Logger;
  metrics: InternalLinkMetrics;
  /** A handed-in client: undefined when taken (the socket is the session's now), else why it is refused. */
  onSession(preamble: HandoffPreamble, socket: tls.TLSSocket): string | undefined;
  /** Milliseconds to connect and get the owner's answer. */
  timeoutMs?: number;
}

/** One frame: 4-byte big-endian length, then UTF-8 JSON. */
const MAX_FRAME = 16 * 1024;

function frame(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value), "utf8");
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Reads one frame; resolves with its JSON and leaves the socket paused with the bytes after it unshifted. */
function readFrame(socket: Socket, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, value?: unknown) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("error", onError);
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME) return done(new Error(`internal link frame of ${len} bytes (at most ${MAX_FRAME})`));
      if (buf.length < 4 + len) return;
      socket.pause();
      const rest = buf.subarray(4 + len);
      if (rest.length > 0) socket.unshift(rest);
      try {
        done(undefined, JSON.parse(buf.subarray(4, 4 + len).toString("utf8")));
      } catch {
        done(new Error("internal link frame is not JSON"));
      }
    };
    const onClose = () => done(new Error("internal link closed"));
    const onError = (e: Error) => done(e);
    const timer = setTimeout(() => done(new Error("internal link timed out")), timeoutMs);
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("error", onError);
  });
}

function isEndpoint(v: unknown): v is { address: string; port: number } {
  return typeof v === "object" && v !== null && typeof (v as { address?: unknown }).address === "string" &&
    typeof (v as { port?: unknown }).port === "number";
}

/** A preamble as received: every field checked (the peer is authenticated, but a bug must not become a crash). */
export function parsePreamble(v: unknown): HandoffPreamble | string {
  if (typeof v !== "object" || v === null) return "preamble is not an object";
  const p = v as Record<string, unknown>;
  if (p.v !== 1) return "unknown preamble version";
  if (typeof p.account !== "string" || !/^[^@\s]+@[^@\s]+$/.test(p.account)) return "bad account";
  if (p.mode !== "starttls" && p.mode !== "direct") return "bad mode";
  const o = p.origin as Record<string, unknown> | undefined;
  if (!o || !isEndpoint(o.source) || !isEndpoint(o.destination) || (o.via !== undefined && typeof o.via !== "string")) return "bad origin";
  if (p.sni !== undefined && typeof p.sni !== "string") return "bad sni";
  if (typeof p.cb !== "object" || p.cb === null || Object.values(p.cb).some((x) => typeof x !== "string")) return "bad channel binding";
  const origin: ClientOrigin = o.via === undefined
    ? { source: o.source, destination: o.destination }
    : { source: o.source, destination: o.destination, via: o.via };
  return { v: 1, account: p.account, mode: p.mode, origin, sni: p.sni, cb: p.cb as Record<string, string> };
}

export class InternalLink {
  private server: tls.Server | undefined;
  private readonly pipes = new Set<Socket>();
  private readonly timeoutMs: number;

  constructor(private readonly deps: InternalLinkDeps) {
    this.timeoutMs = deps.timeoutMs ?? 3000;
  }

  private tlsOptions() {
    return { cert: this.deps.cert, key: this.deps.key, ca: this.deps.ca, minVersion: "TLSv1.3" as const };
  }

  /** Listen for handed-in clients; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    const server = tls.createServer({ ...this.tlsOptions(), requestCert: true, rejectUnauthorized: true }, (socket) => {
      this.accept(socket).catch((err: unknown) => {
        this.deps.log.error({ err }, "internal link: accepting a handed-in client failed");
        socket.destroy();
      });
    });
    server.on("tlsClientError", (err) => this.deps.log.warn({ err: err.message }, "internal link: TLS handshake refused"));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        const addr = server.address();
        resolve(typeof addr === "object" && addr ? addr.port : port);
      });
    });
  }

  private async accept(socket: tls.TLSSocket): Promise<void> {
    socket.setKeepAlive(true, 30_000);
    socket.on("error", () => socket.destroy());
    let preamble: HandoffPreamble | string;
    try {
      preamble = parsePreamble(await readFrame(socket, this.timeoutMs));
    } catch (err) {
      this.deps.metrics.handoff("in", "failed");
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, "internal link: no preamble");
      return void socket.destroy();
    }
    if (typeof preamble === "string") {
      this.deps.metrics.handoff("in", "failed");
      this.deps.log.warn({ reason: preamble }, "internal link: bad preamble");
      return void socket.end(frame({ ok: false, reason: preamble }));
    }
    let refused: string | undefined;
    try {
      refused = this.deps.onSession(preamble, socket);
    } catch (err) {
      // A bug must cost this one handed-in client, never the process.
      this.deps.log.error({ err }, "internal link: a handed-in session could not start");
      refused = "internal error";
    }
    if (refused !== undefined) {
      this.deps.metrics.handoff("in", "refused");
      return void socket.end(frame({ ok: false, reason: refused }));
    }
    this.deps.metrics.handoff("in", "ok");
    socket.write(frame({ ok: true }));
    socket.resume();
  }

  /**
   * Hand `client` to the owner at `address`: true once the owner took it (the client's bytes flow to it from then
   * on, starting with `prelude`); false when it could not be reached or refused (the caller routes again).
   * `detach` is called only on success: it must give up the client socket to the pipe.
   */
  async handOff(address: string, preamble: HandoffPreamble, prelude: string, detach: () => Socket): Promise<boolean> {
    const { host, port } = splitAddress(address);
    let peer: tls.TLSSocket | undefined;
    try {
      peer = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ ...this.tlsOptions(), host, port, checkServerIdentity: () => undefined });
        const timer = setTimeout(() => { s.destroy(); reject(new Error("connect timed out")); }, this.timeoutMs);
        s.once("secureConnect", () => { clearTimeout(timer); resolve(s); });
        s.once("error", (e) => { clearTimeout(timer); reject(e); });
      });
      peer.write(frame(preamble));
      const answer = await readFrame(peer, this.timeoutMs) as { ok?: unknown; reason?: unknown };
      if (answer?.ok !== true) {
        this.deps.metrics.handoff("out", "refused");
        this.deps.log.info({ owner: address, reason: String(answer?.reason ?? "") }, "owner refused a handed-over session");
        peer.destroy();
        return false;
      }
    } catch (err) {
      this.deps.metrics.handoff("out", "failed");
      this.deps.log.warn({ owner: address, err: err instanceof Error ? err.message : String(err) }, "could not hand a session to its owner");
      peer?.destroy();
      return false;
    }
    this.deps.metrics.handoff("out", "ok");
    this.pipe(detach(), peer, prelude);
    return true;
  }

  /** Carry bytes both ways until either side ends; each side's end or error ends the other. */
  private pipe(client: Socket, peer: tls.TLSSocket, prelude: string): void {
    const m = this.deps.metrics;
    m.pipes(1);
    this.pipes.add(client);
    peer.setKeepAlive(true, 30_000);
    peer.write(prelude);
    m.bytes("out", Buffer.byteLength(prelude));
    client.on("data", (c: Buffer) => m.bytes("out", c.length));
    peer.on("data", (c: Buffer) => m.bytes("in", c.length));
    client.pipe(peer);
    peer.pipe(client);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.pipes.delete(client);
      m.pipes(-1);
      client.destroy();
      peer.destroy();
    };
    client.on("error", close);
    peer.on("error", close);
    client.on("close", close);
    peer.on("close", close);
    peer.resume();
    client.resume();
  }

  /** Stop accepting; end the pipes this replica carries (their sessions live on at the owner, hibernated with SM). */
  close(): void {
    this.server?.close();
    for (const s of this.pipes) s.end();
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(i + 1)) };
}
