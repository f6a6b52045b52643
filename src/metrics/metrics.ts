// Every mucmux metric is declared here, on a registry owned by the app (never prom-client's global one).
// Label values are bounded: never a JID, room, nick, IP address or resource (docs/metrics.md).
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface BuildInfo { version: string; commit: string }

/**
 * prom-client's default metrics include these three gauges, whose `_total` suffix Prometheus reserves for
 * counters: `promtool check metrics` rejects them. They are left out. The numbers they carry remain as
 * the per-type gauges nodejs_active_handles, nodejs_active_requests and nodejs_active_resources
 * (`sum without (type) (nodejs_active_handles)` is the total).
 */
export const OMITTED_DEFAULT_METRICS: readonly string[] = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

export function createMetrics(build: BuildInfo) {
  const registry = new Registry();
  // Sources read at scrape time (set by the parts that own the state).
  let roomStates: () => Iterable<[string, number]> = () => [];
  let offlineQueueDepth: () => Promise<number | undefined> = async () => undefined;
  let upstreamReachable: () => Promise<boolean | undefined> = async () => undefined;
  let smUnacked: () => number = () => 0;
  collectDefaultMetrics({ register: registry });
  for (const name of OMITTED_DEFAULT_METRICS) registry.removeSingleMetric(name);
  const registers = [registry];

  const buildInfo = new Gauge({
    name: "mucmux_build_info",
    help: "Build information; always 1.",
    labelNames: ["version", "commit", "node_version"] as const,
    registers,
  });
  buildInfo.set({ version: build.version, commit: build.commit, node_version: process.version }, 1);

  const eventLoopLag = new Histogram({
    name: "mucmux_event_loop_lag_seconds",
    help: "Largest event-loop delay in each one-second window (perf_hooks.monitorEventLoopDelay, 10 ms sampling interval subtracted).",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });

  return {
    registry,
    eventLoopLag,
    /** Starts sampling event-loop lag into mucmux_event_loop_lag_seconds; returns the function that stops it. */
    monitorEventLoop: (): (() => void) => sampleEventLoopLag(eventLoopLag),
    draining: new Gauge({ name: "mucmux_draining", help: "1 while mucmux drains after SIGTERM.", registers }),
    connectionsOpen: new Gauge({
      name: "mucmux_connections_open",
      help: "Open connections by listener TLS mode (starttls, direct) and side (client streams, upstream legs).",
      labelNames: ["listener", "side"] as const,
      registers,
    }),
    connectionsAccepted: new Counter({
      name: "mucmux_connections_accepted_total",
      help: "Client TCP connections accepted, by listener TLS mode.",
      labelNames: ["listener"] as const,
      registers,
    }),
    proxyHeaders: new Counter({
      name: "mucmux_proxy_headers_total",
      help: "PROXY protocol headers read from trusted peers, by result (proxy_v1, proxy_v2, local; missing, invalid, timeout, closed: connection closed).",
      labelNames: ["result"] as const,
      registers,
    }),
    streamsAuthenticated: new Counter({
      name: "mucmux_streams_authenticated_total",
      help: "Client streams that completed authentication.",
      registers,
    }),
    connectionsClosed: new Counter({
      name: "mucmux_connections_closed_total",
      help: "Closed client connections by listener TLS mode, side and reason.",
      labelNames: ["listener", "side", "reason"] as const,
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
    tlsHandshakesPaced: new Counter({
      name: "mucmux_tls_handshakes_paced_total",
      help: "Client TLS handshakes that had to wait for a later event-loop turn (limits.tlsHandshakesPerTurn), by mode and outcome (started, closed, refused: queue full, drain).",
      labelNames: ["mode", "outcome"] as const,
      registers,
    }),
    loginReadsHeld: new Counter({
      name: "mucmux_login_reads_held_total",
      help: "Reads of streams not yet online (logins) held for a later event-loop turn (limits.loginMsPerTurn).",
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
    csiStanzas: new Counter({
      name: "mucmux_csi_stanzas_total",
      help: "Stanzas toward inactive devices (XEP-0352): held, superseded by a later presence of the same sender, flushed.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    // XEP-0198 (SPEC F1–F8).
    smEnabled: new Counter({
      name: "mucmux_sm_enabled_total",
      help: "Client streams that enabled stream management (XEP-0198), by whether resumption was granted.",
      labelNames: ["resume"] as const,
      registers,
    }),
    smHibernated: new Gauge({
      name: "mucmux_sm_hibernated_sessions",
      help: "Sessions whose client connection died, kept for a resume.",
      registers,
    }),
    smHibernationEnds: new Counter({
      name: "mucmux_sm_hibernation_ends_total",
      help: "How hibernated sessions ended: resumed, expired, overflow (queue over its bound), drain, failed (the server side could not be restored).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    smResumeFailures: new Counter({
      name: "mucmux_sm_resume_failures_total",
      help: "Refused resume attempts, by reason: unauthenticated, unknown (no such session for this account: wrong, expired or foreign previd), busy (resumed concurrently), bad_request.",
      labelNames: ["reason"] as const,
      registers,
    }),
    smUpstreamRestores: new Counter({
      name: "mucmux_sm_upstream_restores_total",
      help: "How a resumed session got its server side back: resumed (the server's own XEP-0198 session), rebound (logged in and bound again), live (it never went away), failed.",
      labelNames: ["how"] as const,
      registers,
    }),
    smAcks: new Counter({
      name: "mucmux_sm_acks_total",
      help: "Stream management acknowledgements (<a/>) received, from clients and from the server.",
      labelNames: ["from"] as const,
      registers,
    }),
    smUnacked: new Gauge({
      name: "mucmux_sm_unacked_stanzas",
      help: "Stanzas toward devices waiting for the client's acknowledgement (or for its resume), all sessions.",
      registers,
      collect() {
        this.set(smUnacked());
      },
    }),
    /** The source of mucmux_sm_unacked_stanzas, read at scrape time (no gauge update per stanza). */
    setSmUnacked(fn: () => number): void {
      smUnacked = fn;
    },
    // Room push (SPEC G1–G5).
    wakeups: new Counter({
      name: "mucmux_wakeups_total",
      help: "Room messages that could wake an away account, by outcome: sent (a wake-up on the anchor), coalesced (one was sent lately and is unanswered), capped (wakeup.maxPending unanswered), no_push (no push registration seen through mucmux), no_anchor.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    wakeupsStripped: new Counter({
      name: "mucmux_wakeups_stripped_total",
      help: "Wake-up stanzas taken out before a device saw them, by where: direct (offline flood, resumed stream), carbon, archive (MAM result).",
      labelNames: ["where"] as const,
      registers,
    }),
    wakeupsRefused: new Counter({
      name: "mucmux_wakeups_refused_total",
      help: "Wake-up stanzas the server bounced back to the anchor with an error (its offline store full, say).",
      registers,
    }),
    clientAuth: new Counter({
      name: "mucmux_client_auth_total",
      help: "Client SASL attempts by the client's mechanism, how mucmux handled it, and the result the client got.",
      labelNames: ["mechanism", "path", "result"] as const,
      registers,
    }),
    verifierChanges: new Counter({
      name: "mucmux_scram_verifier_changes_total",
      help: "SCRAM verifiers learned (new or replacing) and dropped as stale, by hash.",
      labelNames: ["change", "hash"] as const,
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
    upstreamConnectsLimited: new Counter({
      name: "mucmux_upstream_connects_limited_total",
      help: "Upstream connects held back by upstream.connectsPerSecond, by kind (login, anchor) and outcome (waited: connected after a wait; refused: a login's wait passed upstream.connectWaitSeconds).",
      labelNames: ["kind", "outcome"] as const,
      registers,
    }),
    upstreamReachable: new Gauge({
      name: "mucmux_upstream_reachable",
      help: "1 when upstream.host:upstream.port accepts a TCP connection (checked at scrape time, cached 2 s), else 0.",
      registers,
      async collect() {
        const ok = await upstreamReachable().catch(() => undefined);
        if (ok !== undefined) this.set(ok ? 1 : 0);
      },
    }),
    setUpstreamProbe(fn: () => Promise<boolean | undefined>): void {
      upstreamReachable = fn;
    },
    anchorsOpen: new Gauge({ name: "mucmux_anchors_open", help: "Open anchor streams (one per account in a room).", registers }),
    roomsManaged: new Gauge({
      name: "mucmux_rooms_managed",
      help: "Managed (account, room) pairs by state: joining, joined (with joined sessions), kept (none joined), leaving.",
      labelNames: ["state"] as const,
      registers,
      collect() {
        this.reset();
        for (const state of ["joining", "joined", "kept", "leaving"]) this.set({ state }, 0);
        for (const [state, n] of roomStates()) this.set({ state }, n);
      },
    }),
    setRoomStateSource(fn: () => Iterable<[string, number]>): void {
      roomStates = fn;
    },
    synthesizedJoins: new Counter({
      name: "mucmux_muc_synthesized_joins_total",
      help: "Joins answered from mucmux's cache without upstream traffic (SPEC B4/B5).",
      registers,
    }),
    upstreamJoinsSaved: new Counter({
      name: "mucmux_muc_upstream_joins_saved_total",
      help: "Session joins that caused no upstream join (answered from cache or folded into a pending join).",
      registers,
    }),
    upstreamJoins: new Counter({ name: "mucmux_muc_upstream_joins_total", help: "Joins the anchors sent upstream.", registers }),
    fanoutRecipients: new Histogram({
      name: "mucmux_muc_fanout_recipients",
      help: "Sessions that received one room stanza fanned out from an anchor.",
      buckets: [0, 1, 2, 3, 5, 10, 20, 50],
      registers,
    }),
    fanoutDeliveries: new Counter({
      name: "mucmux_muc_fanout_deliveries_total",
      help: "Copies of room stanzas written to sessions by fan-out.",
      registers,
    }),
    upstreamCopiesSaved: new Counter({
      name: "mucmux_muc_upstream_copies_saved_total",
      help: "Room stanzas delivered to more than one session from one upstream copy (copies the server did not send).",
      registers,
    }),
    offlineFlagChanges: new Counter({
      name: "mucmux_offline_flag_changes_total",
      help: "Offline-delivery flags stored (SPEC D3/D4, C7), by the value stored (on, off).",
      labelNames: ["value"] as const,
      registers,
    }),
    offlineQueued: new Counter({
      name: "mucmux_offline_messages_queued_total",
      help: "Room messages stored for accounts with no online session (SPEC D6b).",
      registers,
    }),
    offlineDelivered: new Counter({
      name: "mucmux_offline_messages_delivered_total",
      help: "Offline room messages written to sessions, by mode: live (an online session not in the room) or queued.",
      labelNames: ["mode"] as const,
      registers,
    }),
    offlineDropped: new Counter({
      name: "mucmux_offline_messages_dropped_total",
      help: "Offline room messages dropped, by reason: cap_account, cap_room, ttl, store_error, duplicate.",
      labelNames: ["reason"] as const,
      registers,
    }),
    offlineQueueDepth: new Gauge({
      name: "mucmux_offline_queue_depth",
      help: "Unexpired messages in the offline queue, all accounts (read from the store at scrape time).",
      registers,
      async collect() {
        const n = await offlineQueueDepth().catch(() => undefined);
        if (n !== undefined) this.set(n);
      },
    }),
    setOfflineQueueSource(fn: () => Promise<number | undefined>): void {
      offlineQueueDepth = fn;
    },
    storeOperationDuration: new Histogram({
      name: "mucmux_store_operation_duration_seconds",
      help: "Duration of store operations, by operation.",
      labelNames: ["op"] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
      registers,
    }),
    storeErrors: new Counter({
      name: "mucmux_store_errors_total",
      help: "Store operations that failed (unavailable, read-only, full, ...), by operation.",
      labelNames: ["op"] as const,
      registers,
    }),
    // Several replicas (SPEC H).
    clusterLeasesHeld: new Gauge({ name: "mucmux_cluster_leases_held", help: "Account leases this replica holds (accounts it owns).", registers }),
    clusterLeaseChanges: new Counter({
      name: "mucmux_cluster_lease_changes_total",
      help: "Account leases taken (acquired: free or expired; adopted: a kept anchor nobody owned), lost to another replica, or released.",
      labelNames: ["change"] as const,
      registers,
    }),
    clusterHandoffs: new Counter({
      name: "mucmux_cluster_handoffs_total",
      help: "Client connections handed to the replica owning their account (out) or taken from another replica (in), by result.",
      labelNames: ["direction", "result"] as const,
      registers,
    }),
    clusterBytes: new Counter({
      name: "mucmux_cluster_bytes_total",
      help: "Bytes carried on the internal link for handed-over clients: out toward the owner, in from it.",
      labelNames: ["direction"] as const,
      registers,
    }),
    clusterPipesOpen: new Gauge({ name: "mucmux_cluster_pipes_open", help: "Client connections this replica carries to their owner.", registers }),
    selfPings: new Counter({
      name: "mucmux_muc_self_pings_total",
      help: "XEP-0410 self-pings answered by mucmux, by result.",
      labelNames: ["result"] as const,
      registers,
    }),
    stageErrors: new Counter({
      name: "mucmux_stage_errors_total",
      help: "Exceptions in a stage, each costing one stanza (never a stream), by stage and path (c2s, s2c, anchor); stage event-bus with the event's name for a failed event handler.",
      labelNames: ["stage", "path"] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Once a second, observes the largest event-loop delay of that second. monitorEventLoopDelay samples with a
 * libuv timer every `resolution` ms and reports the time between samples, so the interval is subtracted.
 */
function sampleEventLoopLag(histogram: Histogram): () => void {
  const resolutionMs = 10;
  const eld = monitorEventLoopDelay({ resolution: resolutionMs });
  eld.enable();
  const timer = setInterval(() => {
    if (eld.count > 0) histogram.observe(Math.max(0, eld.max / 1e9 - resolutionMs / 1000));
    eld.reset();
  }, 1000);
  timer.unref();
  return () => {
    clearInterval(timer);
    eld.disable();
  };
}
