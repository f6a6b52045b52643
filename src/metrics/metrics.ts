// Every mucmux metric is declared here, on a registry owned by the app (never prom-client's global one).
// Label values are bounded: never a JID, room, nick, IP address or resource (docs/metrics.md).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface BuildInfo { version: string; commit: string }

export function createMetrics(build: BuildInfo) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const buildInfo = new Gauge({
    name: "mucmux_build_info",
    help: "Build information; always 1.",
    labelNames: ["version", "commit", "node_version"] as const,
    registers,
  });
  buildInfo.set({ version: build.version, commit: build.commit, node_version: process.version }, 1);

  return {
    registry,
    draining: new Gauge({ name: "mucmux_draining", help: "1 while mucmux drains after SIGTERM.", registers }),
    connectionsOpen: new Gauge({
      name: "mucmux_connections_open",
      help: "Open connections by side (client streams, upstream legs).",
      labelNames: ["side"] as const,
      registers,
    }),
    connectionsAccepted: new Counter({
      name: "mucmux_connections_accepted_total",
      help: "Client TCP connections accepted, by listener TLS mode.",
      labelNames: ["listener"] as const,
      registers,
    }),
    streamsAuthenticated: new Counter({
      name: "mucmux_streams_authenticated_total",
      help: "Client streams that completed authentication.",
      registers,
    }),
    connectionsClosed: new Counter({
      name: "mucmux_connections_closed_total",
      help: "Closed connections by side and reason.",
      labelNames: ["side", "reason"] as const,
      registers,
    }),
    sessionDuration: new Histogram({
      name: "mucmux_session_duration_seconds",
      help: "Lifetime of client connections.",
      buckets: [1, 10, 60, 300, 1800, 3600, 14400, 86400],
      registers,
    }),
    stanzas: new Counter({
      name: "mucmux_stanzas_total",
      help: "Stanzas relayed, by direction (c2s, s2c), kind and type.",
      labelNames: ["direction", "kind", "type"] as const,
      registers,
    }),
    bytes: new Counter({
      name: "mucmux_bytes_total",
      help: "Bytes on the wire by direction (in, out) and side (client, upstream).",
      labelNames: ["direction", "side"] as const,
      registers,
    }),
    parseErrors: new Counter({
      name: "mucmux_xml_parse_errors_total",
      help: "XML input rejected by the parser, by side and stream error condition.",
      labelNames: ["side", "condition"] as const,
      registers,
    }),
    streamErrors: new Counter({
      name: "mucmux_stream_errors_total",
      help: "Stream errors by RFC 6120 condition and origin (client, upstream, mucmux).",
      labelNames: ["condition", "origin"] as const,
      registers,
    }),
    tlsHandshakes: new Counter({
      name: "mucmux_tls_handshakes_total",
      help: "Client TLS handshakes by mode (starttls, direct), result and protocol version.",
      labelNames: ["mode", "result", "version"] as const,
      registers,
    }),
    tlsHandshakeDuration: new Histogram({
      name: "mucmux_tls_handshake_duration_seconds",
      help: "Client TLS handshake duration.",
      labelNames: ["mode"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    certExpiry: new Gauge({
      name: "mucmux_tls_certificate_expiry_timestamp_seconds",
      help: "notAfter of the served certificate, as a Unix timestamp.",
      registers,
    }),
    certReloads: new Counter({
      name: "mucmux_tls_certificate_reloads_total",
      help: "Certificate reloads by result.",
      labelNames: ["result"] as const,
      registers,
    }),
    saslOutcomes: new Counter({
      name: "mucmux_sasl_outcomes_total",
      help: "Client authentication outcomes by upstream mechanism and result (success or SASL condition).",
      labelNames: ["mechanism", "result"] as const,
      registers,
    }),
    upstreamConnectDuration: new Histogram({
      name: "mucmux_upstream_connect_duration_seconds",
      help: "Time to connect and authenticate an upstream stream.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    upstreamConnectFailures: new Counter({
      name: "mucmux_upstream_connect_failures_total",
      help: "Upstream connection attempts that failed before authentication, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
