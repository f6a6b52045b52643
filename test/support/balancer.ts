// A round-robin TCP balancer of the test's own (node:net), standing in for the load balancer in front of several
// mucmux replicas: it listens on a free loopback port and gives each new connection to the next backend in turn,
// skipping a backend whose connect fails (refused, or no answer within connectTimeoutMs). It only pipes bytes, both
// ways, with half-close passed on (the client's FIN becomes one to the backend and back); an error or reset on
// either side destroys both. No PROXY header: the replicas see the balancer's address.
import * as net from "node:net";

export interface Balancer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The backend ports, in round-robin order. */
  readonly backends: readonly number[];
  /** Replaces the backends (the round robin restarts at the first); open connections keep their backend. */
  setBackends(ports: readonly number[]): void;
  /** Connections given to this backend port since start (counted once the backend accepted). */
  connections(port: number): number;
  /** connections() for each backend, in order. */
  counts(): number[];
  /** Backend connects that failed (the connection then went on to the next backend), by backend port. */
  failures(port: number): number;
  /** Connections currently piped. */
  readonly open: number;
  /** Stops listening and destroys every open connection; idempotent. */
  close(): Promise<void>;
}

export interface BalancerOptions {
  /** A backend that has not accepted within this is skipped (default 2000 ms). */
  connectTimeoutMs?: number;
}

export async function startBalancer(backends: readonly number[], opts: BalancerOptions = {}): Promise<Balancer> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
  let list = [...backends];
  let next = 0;
  const accepted = new Map<number, number>();
  const failed = new Map<number, number>();
  const live = new Set<net.Socket>();
  let open = 0;
  let closed = false;

  const connectTo = (port: number): Promise<net.Socket | undefined> => new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    const timer = setTimeout(() => { s.destroy(); resolve(undefined); }, connectTimeoutMs);
    s.once("connect", () => { clearTimeout(timer); s.removeAllListeners("error"); resolve(s); });
    s.once("error", () => { clearTimeout(timer); s.destroy(); resolve(undefined); });
  });

  const serve = async (client: net.Socket) => {
    live.add(client);
    client.pause();
    let clientGone = false;
    client.once("close", () => { clientGone = true; live.delete(client); });
    client.on("error", () => client.destroy());
    const tried = list.length;
    let backend: net.Socket | undefined;
    let port = 0;
    for (let i = 0; i < tried && !backend && !clientGone && !closed; i++) {
      port = list[next % list.length] ?? 0;
      next = (next + 1) % Math.max(1, list.length);
      backend = await connectTo(port);
      if (!backend) failed.set(port, (failed.get(port) ?? 0) + 1);
    }
    if (!backend || clientGone || closed) {
      backend?.destroy();
      client.destroy();
      return;
    }
    accepted.set(port, (accepted.get(port) ?? 0) + 1);
    live.add(backend);
    open++;
    const b = backend;
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      open--;
    };
    b.on("error", () => { b.destroy(); client.destroy(); });
    client.on("error", () => b.destroy());
    b.once("close", () => { live.delete(b); done(); if (!client.writableEnded) client.destroy(); });
    client.once("close", () => { done(); if (!b.writableEnded) b.destroy(); });
    // pipe() with end: true passes a FIN on as end() of the other side; with allowHalfOpen the other direction goes on.
    client.pipe(b);
    b.pipe(client);
    client.resume();
  };

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (c) => void serve(c));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;

  return {
    host: "127.0.0.1",
    port,
    get backends() { return list; },
    setBackends(ports) {
      list = [...ports];
      next = 0;
    },
    connections: (p) => accepted.get(p) ?? 0,
    counts: () => list.map((p) => accepted.get(p) ?? 0),
    failures: (p) => failed.get(p) ?? 0,
    get open() { return open; },
    async close() {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((r) => server.close(() => r()));
      for (const s of live) s.destroy();
      live.clear();
      await stopped;
    },
  };
}
