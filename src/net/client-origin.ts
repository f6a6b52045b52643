// Where a client connection comes from. Normally the socket's peer; behind a trusted
// load balancer, the endpoints of the PROXY protocol header it sent. That address is the client's
// address everywhere: per-IP admission, auth-failure throttling, logs, and the header sent upstream.
import type net from "node:net";
import { ProxyHeaderDecoder, type Endpoint, type ProxyHeader } from "./proxy-protocol.js";

export interface ClientOrigin {
  /** The client: the socket's peer, or the source of the PROXY header. */
  readonly source: Endpoint;
  /** What the client connected to: the listener's local address, or the destination of the PROXY header. */
  readonly destination: Endpoint;
  /** The load balancer's own address when a PROXY header named the client, else undefined. */
  readonly via?: string;
}

export function socketOrigin(socket: net.Socket): ClientOrigin {
  return {
    source: { address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
    destination: { address: socket.localAddress ?? "", port: socket.localPort ?? 0 },
  };
}

/** The origin a header establishes: its endpoints for PROXY, the socket's own for LOCAL/UNKNOWN. */
export function headerOrigin(header: ProxyHeader, socket: net.Socket): ClientOrigin {
  if (header.command === "local") return socketOrigin(socket);
  return { source: header.source, destination: header.destination, via: socket.remoteAddress ?? "" };
}

/** How reading the header of a trusted peer ended; also the `result` label of mucmux_proxy_headers_total. */
export const HEADER_OUTCOMES = ["proxy_v1", "proxy_v2", "local", "missing", "invalid", "timeout", "closed"] as const;
export type HeaderOutcome = (typeof HEADER_OUTCOMES)[number];

export type HeaderRead =
  | { ok: true; header: ProxyHeader; outcome: HeaderOutcome }
  | { ok: false; outcome: HeaderOutcome; reason: string };

/**
 * Reads a PROXY header from the start of `socket` (plain TCP, nothing else listening). On success the
 * socket is left paused with the bytes after the header unshifted, so whoever takes it next (the XML
 * stream, or a TLS wrap, which consumes buffered bytes first) sees the client's first byte first.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<HeaderRead> {
  return new Promise((resolve) => {
    const decoder = new ProxyHeaderDecoder();
    const finish = (r: HeaderRead) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onClosed);
      socket.off("close", onClosed);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      const r = decoder.push(chunk);
      if (r.kind === "incomplete") return;
      if (r.kind === "invalid") return finish({ ok: false, outcome: r.signature ? "invalid" : "missing", reason: r.reason });
      socket.pause();
      if (r.rest.length > 0) socket.unshift(r.rest);
      const outcome = r.header.command === "local" ? "local" : r.header.version === 1 ? "proxy_v1" : "proxy_v2";
      finish({ ok: true, header: r.header, outcome });
    };
    const onClosed = () => finish({ ok: false, outcome: "closed", reason: "connection closed before a complete header" });
    const timer = setTimeout(() => finish({ ok: false, outcome: "timeout", reason: "no complete header in time" }), timeoutMs);
    timer.unref();
    socket.on("data", onData);
    socket.once("end", onClosed);
    socket.once("close", onClosed);
  });
}
