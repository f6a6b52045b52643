// The composition root: the only place that wires mucmux's parts together (STYLE.md).
import net from "node:net";
import type http from "node:http";
import type { Config } from "./config/index.js";
import type { Logger } from "./log.js";
import { createMetrics, type BuildInfo, type Metrics } from "./metrics/metrics.js";
import { startAdmin, type Readiness } from "./metrics/admin.js";
import { createTlsMaterial, type TlsMaterial } from "./net/tls/index.js";
import { warmUpXml } from "./xml/warmup.js";
import { PARSE_SLICE_CHARS } from "./stream/wire.js";
import { bindListener, type BoundListener } from "./net/listeners.js";
import { AuthFailureThrottle, IpGate } from "./net/ip-gate.js";
import { HandshakePacer, PACED_OUTCOMES } from "./net/handshake-pacer.js";
import { LoginPacer } from "./stream/login-pacer.js";
import { TrustList } from "./net/ip-address.js";
import type { ClientOrigin } from "./net/client-origin.js";
import { createChainRunner } from "./chain/runner.js";
import { createStages, type StageDeps } from "./stages/index.js";
import { Link } from "./stream/link.js";
import { connectUpstream, localProxyHeader } from "./stream/upstream.js";
import { ConnectLimiter, limitConnects } from "./stream/connect-limiter.js";
import { openStore, endStore, type OpenedStore } from "./store/open.js";
import { instrumentLeases, instrumentStore } from "./store/instrumented.js";
import type { Store } from "./store/store.js";
import { AccountRegistry } from "./account/registry.js";
import type { Credentials } from "./account/credentials.js";
import { credentialAuth, PROBE, type UpstreamAuth } from "./stream/sasl-client.js";
import { SaslOffer } from "./sasl/offer.js";
import { VerifierBook } from "./sasl/verifiers.js";
import { FastTokens } from "./sasl/fast.js";
import { channelBindingData, channelBindingTypes, type ChannelBindingType } from "./sasl/channel-binding.js";
import tls from "node:tls";
import { EventBus } from "./chain/events.js";
import { emptyViews, type Views } from "./chain/views.js";
import type { Stage } from "./chain/stage.js";
import { createMucServices } from "./discovery/muc-services.js";
import { ResumptionTable } from "./stream/sm.js";
import { WriteBatch } from "./stream/write-batch.js";
import { KeptAnchors, readKeepKey } from "./account/kept.js";
import { Cluster } from "./cluster/cluster.js";
import type { HandoffPreamble } from "./cluster/internal.js";
import type { ClusterPort } from "./stream/link-deps.js";
import { bareKey } from "./account/jid.js";

export interface App {
  start(): Promise<void>;
  /** SPEC E6: stop accepting, close client streams with system-shutdown, flush the store. */
  drain(): Promise<void>;
  /** SIGHUP: re-read the certificate files now (they are also watched and polled). */
  reload(): Promise<void>;
  readonly listeners: readonly BoundListener[];
  readonly adminPort: number | undefined;
  /** SPEC H2: the internal listener's port (several replicas only). */
  readonly clusterPort: number | undefined;
  readonly links: ReadonlySet<Link>;
  /** Client TLS handshakes, started at most limits.tlsHandshakesPerTurn per turn (SPEC E8). */
  readonly handshakes: HandshakePacer;
  readonly metrics: Metrics;
  readonly accounts: AccountRegistry;
  /** Read-only views of stage state (the rooms each account manages) and of the MUC services. */
  readonly views: Views;
  /** The durable store once started (tests reach it to simulate failures). */
  readonly store: Store | undefined;
}

export interface AppOptions {
  config: Config;
  log: Logger;
  build: BuildInfo;
  /** The stage list from the configured one (tests: a probe stage placed where it must see what passes). */
  stages?: (deps: StageDeps, configured: Stage[]) => Stage[];
}

export function createApp(opts: AppOptions): App {
  const { config, log } = opts;
  const metrics = createMetrics(opts.build);
  const links = new Set<Link>();
  const listeners: BoundListener[] = [];
  let admin: { server: http.Server; port: number } | undefined;
  let tlsMaterial: TlsMaterial | undefined;
  let store: Store | undefined;
  /** The store as opened (uninstrumented), with the leases and the fence hook of a PostgreSQL store (SPEC H). */
  let opened: OpenedStore | undefined;
  let draining = false;
  let nextId = 1;
  let stopEventLoopMonitor: (() => void) | undefined;
  /** SPEC H: several replicas sharing PostgreSQL (store.url); undefined with the embedded store. */
  let cluster: Cluster | undefined;
  let kept: KeptAnchors | undefined;

  // SPEC E8: a burst of logins is handled a little per event-loop turn: TLS handshakes, then every later step.
  const handshakes = new HandshakePacer({
    perTurn: config.limits.tlsHandshakesPerTurn,
    maxQueued: config.limits.tlsHandshakeQueue,
    onPaced: (mode, outcome) => metrics.tlsHandshakesPaced.inc({ mode, outcome }),
  });
  const logins = new LoginPacer({ budgetMs: config.limits.loginMsPerTurn, onHeld: () => metrics.loginReadsHeld.inc() });
  // SPEC A10: the mechanisms offered to clients mirror what the upstream offers at every connect.
  const saslOffer = new SaslOffer({ scram: config.sasl.scram, channelBinding: config.sasl.channelBinding });
  const upstreamDeps = { config, metrics, log, onOffered: (m: readonly string[]) => saslOffer.observe(m), logins };
  const verifiers = new VerifierBook({
    store: () => store,
    iterations: config.sasl.iterations,
    log: log.child({ component: "sasl" }),
    onChange: (change, hash) => metrics.verifierChanges.inc({ change, hash }),
  });
  // Every new upstream connection, logins and anchors alike, passes the rate cap (upstream.connectsPerSecond).
  const connectLimiter = new ConnectLimiter({
    perSecond: config.upstream.connectsPerSecond,
    burst: config.upstream.connectBurst,
    loginWaitMs: config.upstream.connectWaitSeconds * 1000,
    onLimited: (kind, outcome) => metrics.upstreamConnectsLimited.inc({ kind, outcome }),
  });
  for (const [kind, outcome] of [["login", "waited"], ["login", "refused"], ["anchor", "waited"]] as const) metrics.upstreamConnectsLimited.inc({ kind, outcome }, 0);
  const events = new EventBus((event, err) => {
    log.error({ err, event }, "event handler failed");
    metrics.stageErrors.inc({ stage: "event-bus", path: event });
  });
  const views = emptyViews();
  // MUC services of the served domains: configured (muc.services) or discovered through the first session's leg.
  const mucServices = createMucServices({ config, log: log.child({ component: "discovery" }) });
  views.services = mucServices;
  const accounts = new AccountRegistry({
    log,
    metrics,
    events,
    connectUpstream: limitConnects(connectLimiter, "anchor", (domain: string, creds: Credentials) => connectUpstream(upstreamDeps, domain, credentialAuth(creds))),
    onAnchorStanza: (account, el) => chain.anchor(account, el),
  });
  const stageDeps: StageDeps = { config, metrics, log, accounts, events, views, store: () => store };

  const chain = createChainRunner({
    stages: opts.stages ? opts.stages(stageDeps, createStages(stageDeps)) : createStages(stageDeps),
    log,
    onStageError: (stage, path) => metrics.stageErrors.inc({ stage, path }),
  });
  // XEP-0198 (SPEC F5): sessions a client may resume, by id.
  const resumption = new ResumptionTable<Link>();
  metrics.setSmUnacked(() => {
    let n = 0;
    for (const l of links) n += l.sm?.unacked ?? 0;
    return n;
  });
  const linkDeps = {
    config,
    resumption,
    onResumed: (link: Link) => {
      const account = accounts.forSession(link);
      if (account) events.emit("session-resumed", { account, session: link });
    },
    onCredentials: (link: Link, creds: Credentials) => {
      const account = accounts.forSession(link);
      if (account) account.credentials = creds; // the newest successful login wins (SPEC A3)
    },
    metrics,
    log,
    chain,
    // Every device socket written to in a turn is flushed once at its end (one TLS record per socket per read).
    batch: new WriteBatch((err) => log.error({ err }, "write batch callback failed")),
    secureContext: () => requireTls().current(),
    connectUpstream: limitConnects(connectLimiter, "login",
      (domain: string, auth: UpstreamAuth, origin?: ClientOrigin, _signal?: AbortSignal) => connectUpstream(upstreamDeps, domain, auth, origin),
      (_d, _a, _o, signal) => signal),
    sasl: {
      offer: saslOffer,
      verifiers,
      fast: new FastTokens({ store: () => store, ttlMs: config.sasl.fastTokenDays * 86_400_000 }),
      probe: () => probe(),
      // SPEC A14: mucmux owns the client's TLS, so it binds to it (tls-exporter on TLS 1.3, tls-server-end-point).
      channelBinding: {
        types: (socket: net.Socket) => (socket instanceof tls.TLSSocket ? channelBindingTypes(socket) : []),
        data: (socket: net.Socket, type: string) =>
          socket instanceof tls.TLSSocket && (type === "tls-exporter" || type === "tls-server-end-point")
            ? channelBindingData(socket, type as ChannelBindingType) : undefined,
      },
    },
    isDraining: () => draining,
    onBound: (link: Link, creds: Credentials | undefined) => {
      accounts.sessionBound(link, creds);
      // At most hourly per domain; later runs ask through whichever session of the domain is online then.
      const domain = link.domain;
      if (domain) mucServices.discover(domain, (iq) => onlineLink(domain)?.queryUpstream(iq) ?? Promise.resolve(undefined));
    },
    onCsi: (link: Link, active: boolean) => void events.emit("session-csi", { session: link, active }),
    onClosed: (link: Link) => {
      links.delete(link);
      accounts.sessionClosed(link);
    },
    authThrottle: new AuthFailureThrottle(config.limits.authFailuresPerIp, config.limits.authFailureWindowSeconds * 1000),
    handshakes,
    logins,
    ...(config.store.url !== undefined ? { cluster: clusterPort() } : {}),
  };
  /** SPEC H2: the Links' view of the cluster (it starts with the store, after the Links' dependencies exist). */
  function clusterPort(): ClusterPort {
    const started = () => {
      if (!cluster) throw new Error("cluster not started");
      return cluster;
    };
    return {
      route: (account, handedIn, unreachable) => started().route(account, handedIn, unreachable),
      handOff: (address, preamble, prelude, detach) => started().handOff(address, preamble, prelude, detach),
    };
  }
  /** SPEC H2: a client another replica handed here continues as a session of this one. */
  const acceptHandedIn = (preamble: HandoffPreamble, socket: tls.TLSSocket): string | undefined => {
    if (draining) return "draining";
    const cb = new Map(Object.entries(preamble.cb).map(([type, b64]) => [type, Buffer.from(b64, "base64")] as const));
    links.add(new Link(nextId++, socket, preamble.mode, linkDeps, preamble.origin, { sni: preamble.sni, cb }));
    return undefined;
  };
  /** SPEC H3: another replica owns these accounts now: their sessions and anchors end here. */
  const endAccounts = (lost: readonly string[]): void => {
    const gone = new Set(lost);
    for (const link of [...links]) {
      const account = accounts.forSession(link);
      if (account && gone.has(bareKey(account.bare))) link.shutdown();
    }
    for (const account of lost) accounts.evict(account);
  };
  /**
   * SPEC H4, while draining: the rooms in which each account's anchor saw its own nick's presence again, i.e. the
   * new owner's anchor joined with the same nick (the server sends the occupant's presence to all its sessions).
   */
  const rejoined = new Map<string, Set<string>>();
  events.on("anchor-self-presence", ({ account, room }) => {
    if (!draining || !cluster) return;
    const key = bareKey(account.bare);
    let rooms = rejoined.get(key);
    if (!rooms) rejoined.set(key, (rooms = new Set()));
    rooms.add(room.toLowerCase());
  });
  // The cluster's series exist from the start, on every replica (0 with the embedded store).
  for (const direction of ["out", "in"] as const) {
    metrics.clusterBytes.inc({ direction }, 0);
    for (const result of ["ok", "refused", "failed"] as const) metrics.clusterHandoffs.inc({ direction, result }, 0);
  }
  for (const change of ["acquired", "adopted", "lost", "released"]) metrics.clusterLeaseChanges.inc({ change }, 0);
  /** SPEC A10: learn the upstream's mechanisms before the first login (one probe at a time). */
  let probing: Promise<unknown> | undefined;
  const probe = (): void => {
    if (probing || saslOffer.known || !config.sasl.scram || draining) return;
    const domain = config.domains[0] ?? "";
    probing = limitConnects(connectLimiter, "anchor", () => connectUpstream(upstreamDeps, domain, PROBE))()
      .finally(() => { probing = undefined; });
  };
  /** A session of the served domain whose leg can carry mucmux's own queries (discovery). */
  const onlineLink = (domain: string): Link | undefined => {
    for (const l of links) if (l.phase === "online" && l.domain === domain) return l;
    return undefined;
  };
  const requireTls = () => {
    if (!tlsMaterial) throw new Error("TLS material not loaded");
    return tlsMaterial;
  };

  // A server expecting PROXY headers gets a LOCAL one, not a connection it logs as broken.
  const upstreamProbe = createProbe(config.upstream.host, config.upstream.port, config.upstream.proxyProtocol === "v2" ? localProxyHeader : undefined);
  metrics.setUpstreamProbe(upstreamProbe);
  async function readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (listeners.length !== config.listeners.length) reasons.push("listeners not bound");
    if (store && !store.healthy()) reasons.push("store unavailable");
    if (!(await upstreamProbe())) reasons.push("upstream unreachable");
    return { ready: reasons.length === 0, reasons };
  }

  return {
    metrics,
    accounts,
    views,
    listeners,
    links,
    handshakes,
    get adminPort() { return admin?.port; },
    get clusterPort() { return cluster?.port; },
    get store() { return store; },
    async start() {
      stopEventLoopMonitor = metrics.monitorEventLoop();
      // SQLite (refuses a damaged file or non-durable commits), or PostgreSQL when store.url is set.
      opened = await openStore(config, log);
      store = instrumentStore(opened.store, { metrics, log: log.child({ component: "store" }) });
      const leaseStore = opened.leases;
      // SPEC G6 (opt-in): anchors of accounts with offline delivery survive restarts, their credentials sealed under
      // the operator's key; a bad key file fails the start with its reason.
      const keepKeyFile = config.anchors.keepKeyFile;
      if (keepKeyFile) {
        kept = new KeptAnchors({ key: readKeepKey(keepKeyFile), store: () => store, accounts, events, log: log.child({ component: "kept-anchors" }) });
        // SPEC H5: with several replicas, a kept anchor is restored by the replica that takes its lease (below).
        if (!leaseStore) log.info({ accounts: await kept.restoreAll() }, "kept anchors restored");
      }
      if (leaseStore) {
        cluster = new Cluster({
          config,
          log,
          metrics,
          store: instrumentLeases(leaseStore, { metrics, log: log.child({ component: "store" }) }),
          inUse: (account) => accounts.get(account) !== undefined,
          onLost: endAccounts,
          onAdopted: (adopted) => {
            if (!kept) return;
            void kept.restoreAll(new Set(adopted)).then(
              (n) => log.info({ accounts: n }, "kept anchors restored"),
              (err: unknown) => log.error({ err }, "kept anchors could not be restored"),
            );
          },
          acceptHandedIn,
        });
        const c = cluster;
        opened.setFence((account) => c.fence(account));
        await cluster.start();
      }
      tlsMaterial = await createTlsMaterial({
        config: { ...config.tls, names: [...config.domains] },
        log,
        onReload: (result) => {
          metrics.certReloads.inc({ result });
          if (tlsMaterial) metrics.certExpiry.set(tlsMaterial.certExpiry().getTime() / 1000);
        },
      });
      metrics.certExpiry.set(tlsMaterial.certExpiry().getTime() / 1000);
      const warmStart = performance.now();
      const { maxStanzaBytes, maxDepth, maxAttributes, maxChildren, maxElements } = config.limits;
      const warmed = warmUpXml({ maxStanzaBytes, maxDepth, maxAttributes, maxChildren, maxElements }, PARSE_SLICE_CHARS);
      log.info({ stanzas: warmed, ms: Math.round(performance.now() - warmStart) }, "XML paths warmed up");
      probe();
      admin = await startAdmin(config.admin.host, config.admin.port, { registry: metrics.registry, log, readiness });
      const gate = new IpGate(config.limits.maxConnectionsPerIp, config.limits.connectsPerIpPerSecond);
      const proxy = { trusted: new TrustList(config.proxyProtocol.trusted ?? []), timeoutMs: config.limits.handshakeSeconds * 1000 };
      for (const spec of config.listeners) {
        // Export every (listener, side) series from the start: dashboards and alerts see 0, not "no data".
        for (const side of ["client", "upstream"]) metrics.connectionsOpen.inc({ listener: spec.tls, side }, 0);
        metrics.connectionsAccepted.inc({ listener: spec.tls }, 0);
        for (const outcome of PACED_OUTCOMES) metrics.tlsHandshakesPaced.inc({ mode: spec.tls, outcome }, 0);
        listeners.push(await bindListener(spec, {
          metrics,
          log,
          accepting: () => !draining,
          onSocket: (socket, mode, origin) => { links.add(new Link(nextId++, socket, mode, linkDeps, origin)); },
          gate,
          proxy,
        }));
      }
    },
    async reload() {
      if (tlsMaterial) log.info({ result: await tlsMaterial.reload() }, "certificate reload requested");
    },
    async drain() {
      if (draining) return;
      draining = true;
      metrics.draining.set(1);
      log.info({ sessions: links.size }, "draining");
      for (const l of listeners) l.server.close();
      const drainStart = Date.now();
      // SPEC H4: the leases go first, so the clients told to reconnect below are served by another replica at once.
      await cluster?.release();
      connectLimiter.close();
      for (const link of [...links]) link.shutdown();
      handshakes.close(); // connections still waiting for a handshake slot are closed without one
      // Leave a share of drain.timeoutSeconds for closing the rest (the CLI exits hard at the full timeout).
      const deadline = Date.now() + config.drain.timeoutSeconds * 700;
      while (links.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const link of links) link.client.destroy();
      if (cluster) {
        // SPEC H4: each anchor stays in its rooms until another replica owns its account (the room sees no leave).
        const anchored = [...accounts.values()].filter((a) => a.anchor && a.anchor.state !== "closed").map((a) => bareKey(a.bare));
        const rejoinedAll = (key: string): boolean => {
          const account = accounts.get(key);
          const seen = rejoined.get(key);
          return !account || views.rooms.joined(account).every((r) => seen?.has(r.jid.toLowerCase()));
        };
        const left = await cluster.handOver(anchored, drainStart + config.drain.timeoutSeconds * 850, (account) => accounts.evict(account), rejoinedAll);
        log.info({ anchors: anchored.length, notTakenOver: left }, "anchors handed over");
      }
      accounts.closeAll();
      mucServices.close();
      tlsMaterial?.close();
      // Offline work already started (a message being queued) finishes on microtasks: let it commit first.
      await new Promise((r) => setImmediate(r));
      await cluster?.stop();
      if (opened) await endStore(opened.store).catch(() => {});
      stopEventLoopMonitor?.();
      await new Promise<void>((resolve) => (admin ? admin.server.close(() => resolve()) : resolve()));
      admin?.server.closeAllConnections();
      log.info("drained");
    },
  };
}

/** TCP reachability of the upstream server, cached briefly so /readyz stays cheap under frequent probes. */
function createProbe(host: string, port: number, hello?: (s: net.Socket) => Buffer): () => Promise<boolean> {
  let cached: { at: number; ok: boolean } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < 2000) return cached.ok;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      const done = (v: boolean) => { clearTimeout(t); s.destroy(); resolve(v); };
      const t = setTimeout(() => done(false), 1000);
      s.once("connect", () => (hello ? s.end(hello(s), () => done(true)) : done(true)));
      s.once("error", () => done(false));
    });
    cached = { at: Date.now(), ok };
    return ok;
  };
}
