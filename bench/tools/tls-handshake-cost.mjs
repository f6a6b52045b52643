// Main-thread cost of one server-side TLS handshake, per certificate key type: what limits.tlsHandshakesPerTurn
// is sized from. A server child accepts N connections and holds each raw socket paused with its ClientHello read
// (as mucmux's handshake pacer does); then it wraps them B at a time, one batch per event-loop turn, and times
// each turn: the ClientHello's crypto (key share, certificate signature, the server's first flight) runs inside it.
// Also prints the server's CPU per complete handshake (the client's Finished and the session tickets included).
// `node bench/tools/tls-handshake-cost.mjs [N=400] [B=1,8,16,32]` (generates EC P-256 and RSA 2048/4096 keys with
// openssl), or `node bench/tools/tls-handshake-cost.mjs N B CERT KEY` for your own certificate.
import { execFileSync, fork } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setImmediate, setTimeout } from "node:timers";
import tls from "node:tls";
import { fileURLToPath } from "node:url";

const [nArg, bArg, certFile, keyFile, role] = process.argv.slice(2);
const n = Number(nArg ?? 400);
const batches = (bArg ?? "1,8,16,32").split(",").map(Number);

if (role === "server") {
  const secureContext = tls.createSecureContext({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) });
  const held = [];
  let done = 0;
  const server = net.createServer({ noDelay: true }, (raw) => {
    raw.on("error", () => {});
    raw.once("data", (chunk) => {
      raw.pause();
      raw.unshift(chunk);
      held.push(raw);
      if (held.length === n) process.send?.("held");
    });
  });
  server.listen(0, "127.0.0.1", () => process.send?.({ port: server.address().port }));
  process.on("message", async (m) => {
    const b = m.batch;
    const turns = [];
    const cpu0 = process.cpuUsage();
    while (held.length > 0) {
      const t0 = performance.now();
      for (const raw of held.splice(0, b)) {
        const s = new tls.TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ["xmpp-client"] });
        s.on("error", () => {});
        s.once("secure", () => { done++; });
      }
      await new Promise((r) => setImmediate(r)); // the wraps' first reads (process.nextTick) ran before this
      turns.push(performance.now() - t0);
    }
    while (done < n) await new Promise((r) => setTimeout(r, 5));
    const cpu = process.cpuUsage(cpu0);
    turns.sort((x, y) => x - y);
    process.send?.({
      perTurnMedian: turns[Math.floor(turns.length / 2)], perTurnMax: turns.at(-1),
      cpuPerHandshake: (cpu.user + cpu.system) / 1000 / n,
    });
  });
} else {
  const keys = certFile && keyFile ? [["given", certFile, keyFile]] : generated();
  for (const [label, cert, key] of keys) {
    for (const b of batches) {
      const child = fork(fileURLToPath(import.meta.url), [String(n), String(b), cert, key, "server"]);
      const { port } = await new Promise((r) => child.once("message", r));
      const held = new Promise((r) => child.once("message", r));
      const sockets = Array.from({ length: n }, () => {
        const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["xmpp-client"] });
        s.on("error", () => {});
        return s;
      });
      await held;
      const r = await new Promise((res) => { child.once("message", res); child.send({ batch: b }); });
      console.log(`${label}: ${b} handshake(s) per turn: turn median ${r.perTurnMedian.toFixed(2)} ms ` +
        `(${(r.perTurnMedian / b).toFixed(3)} ms each), max ${r.perTurnMax.toFixed(2)} ms; server CPU per handshake ${r.cpuPerHandshake.toFixed(3)} ms`);
      for (const s of sockets) s.destroy();
      child.kill();
    }
  }
}

function generated() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-cost-"));
  const make = (label, args) => {
    const cert = path.join(dir, `${label}.crt`), key = path.join(dir, `${label}.key`);
    execFileSync("openssl", ["req", "-x509", ...args, "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
    return [label, cert, key];
  };
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return [
    make("EC P-256 (self-signed default)", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
    make("RSA 2048", ["-newkey", "rsa:2048"]),
    make("RSA 4096", ["-newkey", "rsa:4096"]),
  ];
}
