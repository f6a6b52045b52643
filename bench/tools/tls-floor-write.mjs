// Floor: CPU per TLS write of one ~400-byte stanza to each of N sockets per tick (the fan-out floor). node bench/tools/tls-floor-write.mjs CERT KEY [N]
/* global setTimeout, URL */
import { fork } from "node:child_process"; import tls from "node:tls";
const [cert, key, N = "50"] = process.argv.slice(2);
const child = fork(new URL("./tls-floor-write-server.mjs", import.meta.url).pathname, [cert, key]);
const port = await new Promise((r) => child.once("message", r));
for (let i = 0; i < Number(N); i++) await new Promise((res) => { const c = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, res); c.on("data", () => {}); });
await new Promise((r) => setTimeout(r, 500));
for (const rate of [100]) {
  const m = await new Promise((r) => { child.once("message", r); child.send({ rate, ms: 3000 }); });
  console.log(`N=${N} rate ${rate}/s: ${m.n} TLS writes, ${m.us.toFixed(1)} µs CPU per write (incl. per-tick overhead / N)`);
}
child.kill(); process.exit(0);
