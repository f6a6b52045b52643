// Admin HTTP server: /healthz (process up), /readyz (listeners bound, upstream reachable, not draining),
// /metrics (Prometheus text format from mucmux's own registry).
import http from "node:http";
import type { Registry } from "prom-client";
import type { Logger } from "../log.js";

export interface Readiness { ready: boolean; reasons: string[] }

export interface AdminDeps {
  registry: Registry;
  log: Logger;
  readiness(): Promise<Readiness>;
}

export async function startAdmin(host: string, port: number, deps: AdminDeps): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    handle(req, res, deps).catch((err: unknown) => {
      deps.log.error({ err }, "admin request failed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => { server.off("error", reject); resolve(); });
  });
  const addr = server.address();
  const bound = typeof addr === "object" && addr ? addr.port : port;
  deps.log.info({ host, port: bound }, "admin server listening");
  return { server, port: bound };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, deps: AdminDeps): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" }).end();
    return;
  }
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
  } else if (path === "/readyz") {
    const r = await deps.readiness();
    res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(r.ready ? "ready\n" : `not ready: ${r.reasons.join("; ")}\n`);
  } else if (path === "/metrics") {
    const body = await deps.registry.metrics();
    res.writeHead(200, { "content-type": deps.registry.contentType }).end(body);
  } else {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }
}
