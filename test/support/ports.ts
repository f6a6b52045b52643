// Free TCP ports on loopback, picked per run (other processes on the machine hold fixed ports).
import * as net from "node:net";

/** Binds 127.0.0.1:0, reads the port the kernel chose, closes, and returns it. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("freePort: no port assigned"))));
    });
  });
}

/** `count` distinct free ports (held open together, so they differ). */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen({ host, port: 0, exclusive: true }, () => resolve());
      });
      const addr = srv.address();
      if (typeof addr !== "object" || !addr) throw new Error("freePorts: no port assigned");
      ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Resolves once host:port accepts a TCP connection; rejects after timeoutMs or when `failed()` returns a reason. */
export async function waitForPort(
  port: number,
  opts: { host?: string; timeoutMs?: number; failed?: () => string | undefined } = {},
): Promise<void> {
  const host = opts.host ?? "127.0.0.1";
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host, port });
      sock.setTimeout(1000);
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("timeout", () => {
        sock.destroy();
        resolve(false);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    const why = opts.failed?.();
    if (why) throw new Error(`waitForPort ${host}:${port}: ${why}`);
    if (Date.now() > deadline) throw new Error(`waitForPort ${host}:${port}: nothing listening after ${opts.timeoutMs ?? 15_000} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
