// The event-loop stall a bare Node TLS server (no XML, no upstream, mucmux's certificate) takes from a burst of
// TLS handshakes: the floor under the worst-input scenario's "1000 logins at once" figure. The server runs in a
// child process with monitorEventLoopDelay at 1 ms resolution; this process opens N TLS connections at once
// (each sends 100 bytes after its handshake and waits for the echo). Prints the server's longest event-loop delay
// and p99, with the concurrency the client allowed.
// `node bench/tools/tls-floor-burst.mjs CERT KEY [N=1000]` (test/.tmp/certs/{cert,key}.pem after `npm test`).
import { fork } from "node:child_process";
import fs from "node:fs";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setTimeout } from "node:timers";
import tls from "node:tls";
import { fileURLToPath } from "node:url";

const [certFile, keyFile, nArg, role] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error("usage: tls-floor-burst.mjs CERT KEY [N]");
const cert = fs.readFileSync(certFile), key = fs.readFileSync(keyFile);

if (role === "server") {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const server = tls.createServer({ cert, key, minVersion: "TLSv1.2" }, (s) => {
    s.on("data", (d) => s.write(d));
    s.on("error", () => {});
  });
  server.listen(0, "127.0.0.1", () => process.send?.({ port: server.address().port }));
  process.on("message", (m) => {
    if (m === "start") { h.reset(); h.enable(); return; }
    h.disable();
    process.send?.({ maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 });
  });
} else {
  const n = Number(nArg ?? 1000);
  const child = fork(fileURLToPath(import.meta.url), [certFile, keyFile, String(n), "server"]);
  const { port } = await new Promise((r) => child.once("message", r));
  child.send("start");
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  const sockets = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca: cert, servername: "localhost" }, () => s.write("x".repeat(100)));
    s.once("data", () => resolve(s));
    s.on("error", () => resolve(s));
  })));
  const wall = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200));
  const stats = await new Promise((r) => { child.once("message", r); child.send("report"); });
  console.log(`${n} TLS handshakes at once in ${wall.toFixed(0)} ms: server's longest event-loop delay ${stats.maxMs.toFixed(1)} ms, p99 ${stats.p99Ms.toFixed(1)} ms`);
  for (const s of sockets) s.destroy();
  child.kill();
}
