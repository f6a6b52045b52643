// Server-side TLS for client sockets, shared by the direct TLS listener and STARTTLS (SPEC A1).
import tls from "node:tls";
import type { Socket } from "node:net";
import type { Metrics } from "../metrics/metrics.js";

export function wrapServerTls(raw: Socket, mode: "starttls" | "direct", secureContext: tls.SecureContext, metrics: Metrics): tls.TLSSocket {
  const started = performance.now();
  const s = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext,
    ALPNProtocols: ["xmpp-client"], // XEP-0368
  });
  s.once("secure", () => {
    metrics.tlsHandshakes.inc({ mode, result: "success", version: s.getProtocol() ?? "unknown" });
    metrics.tlsHandshakeDuration.observe({ mode }, (performance.now() - started) / 1000);
  });
  s.once("error", () => {
    if (!s.encrypted || !s.getProtocol()) metrics.tlsHandshakes.inc({ mode, result: "failure", version: "none" });
  });
  return s;
}
