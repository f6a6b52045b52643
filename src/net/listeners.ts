// Client listeners (SPEC A1): STARTTLS and direct TLS (XEP-0368). Both are plain TCP servers handing the raw
// socket to a Link: for direct TLS too, the Link wraps it once its ClientHello is in and the handshake pacer gives
// it a slot (SPEC E8), so both modes share one TLS path and one hot-swappable SecureContext. Behind a trusted load
// balancer the PROXY header is read first, on the raw TCP socket (client-origin.ts).
import net from "node:net";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";
import type { IpGate } from "./ip-gate.js";
import type { TrustList } from "./ip-address.js";
import { HEADER_OUTCOMES, headerOrigin, readProxyHeader, socketOrigin, type ClientOrigin } from "./client-origin.js";

export interface ListenerSpec { host: string; port: number; tls: "starttls" | "direct" }

export interface BoundListener {
  spec: ListenerSpec;
  server: net.Server;
  /** The bound port (differs from spec.port when it is 0). */
  port: number;
}

export interface ListenerDeps {
  metrics: Metrics;
  log: Logger;
  accepting(): boolean;
  /** The raw TCP socket, also for direct TLS; `origin`: the client's address (the PROXY header's when a trusted balancer sent one). */
  onSocket(socket: net.Socket, mode: ListenerSpec["tls"], origin: ClientOrigin): void;
  /** Per-IP connection and accept-rate caps, shared by all listeners (ip-gate.ts). */
  gate?: IpGate;
  /** PROXY protocol: peers that must, and alone may, send a header, and the time they have. */
  proxy?: { trusted: TrustList; timeoutMs: number };
}

export async function bindListener(spec: ListenerSpec, deps: ListenerDeps): Promise<BoundListener> {
  if (deps.proxy && deps.proxy.trusted.size > 0) {
    for (const result of HEADER_OUTCOMES) deps.metrics.proxyHeaders.inc({ result }, 0); // series exist from the start
  }
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (!deps.accepting()) { socket.destroy(); return; }
    socket.on("error", ignore); // errors are handled by the Link's Wire; never let one escape
    const proxy = deps.proxy;
    // Only a trusted peer's first bytes are read as a PROXY header (and must be one); anyone else's go to
    // the XML parser or TLS as always, so an untrusted header is just bad input.
    if (!proxy?.trusted.has(socket.remoteAddress)) { admit(socket, socketOrigin(socket), spec, deps); return; }
    void readProxyHeader(socket, proxy.timeoutMs).then((r) => {
      deps.metrics.proxyHeaders.inc({ result: r.outcome });
      if (!r.ok) {
        deps.log.debug({ via: socket.remoteAddress, result: r.outcome, reason: r.reason, listener: spec.tls }, "PROXY header refused; connection closed");
        socket.destroy();
        return;
      }
      if (socket.destroyed || !deps.accepting()) { socket.destroy(); return; }
      if (admit(socket, headerOrigin(r.header, socket), spec, deps) && spec.tls === "starttls") {
        socket.resume(); // paused by readProxyHeader; the Wire now listens (direct TLS: the pacer reads the ClientHello)
      }
    });
  });
  server.on("error", (err) => deps.log.error({ err, port: spec.port }, "listener error"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: spec.host, port: spec.port }, () => { server.off("error", reject); resolve(); });
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : spec.port;
  deps.log.info({ host: spec.host, port, tls: spec.tls }, "listening");
  return { spec, server, port };
}

/** One function for every socket (a closure each would be kept for the life of the connection). */
const ignore = (): void => {};

/** Per-IP admission on the client's address, then hand the socket on. */
function admit(socket: net.Socket, origin: ClientOrigin, spec: ListenerSpec, deps: ListenerDeps): boolean {
  const gate = deps.gate;
  if (gate?.enabled) {
    const ip = origin.source.address;
    const verdict = gate.admit(ip);
    if (verdict !== "ok") {
      deps.log.debug({ ip, via: origin.via, verdict, listener: spec.tls }, "connection refused at accept");
      socket.destroy();
      return false;
    }
    socket.once("close", () => gate.release(ip));
  }
  deps.metrics.connectionsAccepted.inc({ listener: spec.tls });
  deps.onSocket(socket, spec.tls, origin);
  return true;
}
