// Floor: RSS per idle TLS session of a bare Node TLS server (no XML). node bench/tools/tls-floor-memory.mjs CERT KEY [tls|pipe]
/* global setTimeout, URL */
import { fork } from "node:child_process"; import tls from "node:tls";
const [cert, key, mode = "tls"] = process.argv.slice(2);
const child = fork(new URL("./tls-floor-memory-server.mjs", import.meta.url).pathname, [cert, key, mode], { execArgv: ["--expose-gc"] });
const port = await new Promise((r) => child.once("message", r));
const read = () => new Promise((r) => { child.once("message", r); child.send("x"); });
const clients = [];
const pts = [];
for (let step = 0; step <= 4; step++) {
  if (step) await Promise.all(Array.from({ length: 250 }, () => new Promise((res) => { const c = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => { c.write("<stream:stream>hello</stream:stream>".repeat(5)); res(); }); clients.push(c); })));
  await new Promise((r) => setTimeout(r, 800));
  const m = await read(); pts.push([step * 250, m.rss / 1024, m.heap / 1024]);
}
const slope = (i) => { const n = pts.length; const mx = pts.reduce((a, p) => a + p[0], 0) / n, my = pts.reduce((a, p) => a + p[i], 0) / n; let a = 0, b = 0; for (const p of pts) { a += (p[0] - mx) * (p[i] - my); b += (p[0] - mx) ** 2; } return a / b; };
console.log(mode, "RSS KiB/session", slope(1).toFixed(1), "heap KiB/session", slope(2).toFixed(1));
child.kill(); process.exit(0);
