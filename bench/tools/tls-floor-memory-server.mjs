// Server half of tls-floor-memory.mjs.
/* global setTimeout */
import tls from "node:tls"; import fs from "node:fs"; import net from "node:net";
const [cert, key, mode] = process.argv.slice(2);
const socks = [];
const srv = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (s) => {
  socks.push(s); s.on("data", () => {});
  if (mode === "pipe") { const u = net.connect(9, "127.0.0.1"); u.on("error", () => {}); socks.push(u); }
});
srv.listen(0, "127.0.0.1", () => process.send(srv.address().port));
process.on("message", () => { globalThis.gc?.(); setTimeout(() => process.send({ rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, n: socks.length }), 300); });
