// Client listeners (SPEC A1): STARTTLS and direct TLS (XEP-0368). Both are plain TCP servers; direct TLS
// wraps each socket at once, so both modes share one TLS path and one hot-swappable SecureContext.
import net from "node:net";
import type { SecureContext } from "node:tls";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";
import { wrapServerTls } from "./server-tls.js";
import type { IpGate } from "./ip-gate.js";

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
  secureContext(): SecureContext;
  accepting(): boolean;
  onSocket(socket: net.Socket, mode: ListenerSpec["tls"]): void;
  /** Per-IP connection and accept-rate caps, shared by all listeners (issue 6 item 10). */
  gate?: IpGate;
}

export async function bindListener(spec: ListenerSpec, deps: ListenerDeps): Promise<BoundListener> {
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (!deps.accepting()) { socket.destroy(); return; }
    const gate = deps.gate;
    if (gate?.enabled) {
      const ip = socket.remoteAddress ?? "";
      const verdict = gate.admit(ip);
      if (verdict !== "ok") {
        deps.log.debug({ ip, verdict, listener: spec.tls }, "connection refused at accept");
        socket.destroy();
        return;
      }
      socket.once("close", () => gate.release(ip));
    }
    deps.metrics.connectionsAccepted.inc({ listener: spec.tls });
    socket.on("error", () => {}); // errors are handled by the Link's Wire; never let one escape
    const s = spec.tls === "direct" ? wrapServerTls(socket, "direct", deps.secureContext(), deps.metrics) : socket;
    deps.onSocket(s, spec.tls);
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
