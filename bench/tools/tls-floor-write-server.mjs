// Server half of tls-floor-write.mjs.
/* global setTimeout */
import tls from "node:tls"; import fs from "node:fs";
const [cert, key] = process.argv.slice(2);
const socks = [];
const srv = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (s) => { socks.push(s); s.on("data", () => {}); });
srv.listen(0, "127.0.0.1", () => process.send(srv.address().port));
const msg = "<message type='groupchat' to='mfan@localhost/f0' from='room@conference.localhost/sender' id='f1'><body>k1 " + "y".repeat(300) + "</body></message>";
process.on("message", ({ rate, ms }) => {
  const t0 = process.cpuUsage(); let n = 0; const end = Date.now() + ms;
  const tick = () => { for (const s of socks) { s.write(msg); n++; } if (Date.now() < end) setTimeout(tick, 1000 / rate); else { const d = process.cpuUsage(t0); process.send({ n, us: (d.user + d.system) / n, ticks: n / socks.length }); } };
  tick();
});
