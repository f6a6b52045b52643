// The latency floor of one more process on the path, on this machine: a 100-byte ping-pong over loopback TCP at
// a fixed rate (one every 2 ms), client → echo process directly, and client → pipe process → echo process, where
// the pipe copies bytes and does nothing else (no TLS, no XML). What the pipe adds is the cost of the extra hop
// and wake-up alone; mucmux's added latency (ping-latency scenario) cannot go below it. Also prints the pipe's
// CPU per message·direction, unbatched. `node bench/tools/hop-floor.mjs [ROUNDS=2000]`
import { fork } from "node:child_process";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout } from "node:timers";
import { fileURLToPath } from "node:url";

const role = process.argv[2];
if (role === "echo") {
  const s = net.createServer({ noDelay: true }, (c) => c.on("data", (d) => c.write(d)));
  s.listen(0, "127.0.0.1", () => process.send?.(s.address().port));
} else if (role === "pipe") {
  const target = Number(process.argv[3]);
  let n = 0;
  const s = net.createServer({ noDelay: true }, (c) => {
    const u = net.connect({ port: target, host: "127.0.0.1", noDelay: true });
    c.on("data", (d) => { n++; u.write(d); });
    u.on("data", (d) => { n++; c.write(d); });
    c.on("error", () => {});
    u.on("error", () => {});
  });
  let cpu0 = process.cpuUsage();
  process.on("message", (m) => {
    if (m === "reset") { n = 0; cpu0 = process.cpuUsage(); return; }
    const d = process.cpuUsage(cpu0);
    process.send?.({ usPerMessage: (d.user + d.system) / Math.max(1, n) });
  });
  s.listen(0, "127.0.0.1", () => process.send?.(s.address().port));
} else {
  const rounds = Number(process.argv[2] ?? 2000);
  const start = (args) => new Promise((resolve) => {
    const child = fork(fileURLToPath(import.meta.url), args);
    child.once("message", (port) => resolve({ child, port }));
  });
  const echo = await start(["echo"]);
  const pipe = await start(["pipe", String(echo.port)]);
  const ask = () => new Promise((resolve) => { pipe.child.once("message", resolve); pipe.child.send("report"); });
  const run = async (port) => {
    const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
    await new Promise((r) => s.once("connect", r));
    const lat = [];
    let t0 = 0;
    s.on("data", () => lat.push(performance.now() - t0));
    for (let i = 0; i < rounds; i++) {
      await new Promise((r) => setTimeout(r, 2));
      t0 = performance.now();
      s.write("x".repeat(100));
    }
    await new Promise((r) => setTimeout(r, 50));
    s.destroy();
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? Number.NaN;
    return { p50: q(0.5), p99: q(0.99) };
  };
  const fmt = (v) => v.toFixed(3).padStart(7);
  console.log("round      direct p50   p99   via pipe p50   p99   added p50   pipe CPU µs/message·direction");
  for (let k = 1; k <= 3; k++) {
    const d = await run(echo.port);
    pipe.child.send("reset");
    const p = await run(pipe.port);
    const cpu = await ask();
    console.log(`${k}         ${fmt(d.p50)} ${fmt(d.p99)}     ${fmt(p.p50)} ${fmt(p.p99)}   ${fmt(p.p50 - d.p50)}   ${cpu.usPerMessage.toFixed(1)}`);
  }
  echo.child.kill();
  pipe.child.kill();
}
