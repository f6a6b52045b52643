// Server-side TLS for client sockets, shared by the direct TLS listener and STARTTLS (SPEC A1).
import tls from "node:tls";
import type { Socket } from "node:net";
import type { Metrics } from "../metrics/metrics.js";

/** `since` (performance.now()): accept (direct) or `<proceed/>` (STARTTLS); the duration includes any wait for a handshake slot (SPEC E8). */
export function wrapServerTls(raw: Socket, mode: "starttls" | "direct", secureContext: tls.SecureContext, metrics: Metrics, since = performance.now()): tls.TLSSocket {
  const s = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext,
    ALPNProtocols: ["xmpp-client"], // XEP-0368
  });
  s.once("secure", () => {
    metrics.tlsHandshakes.inc({ mode, result: "success", version: s.getProtocol() ?? "unknown" });
    metrics.tlsHandshakeDuration.observe({ mode }, (performance.now() - since) / 1000);
  });
  s.once("error", () => {
    if (!s.encrypted || !s.getProtocol()) metrics.tlsHandshakes.inc({ mode, result: "failure", version: "none" });
  });
  return s;
}
