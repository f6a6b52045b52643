// Full-GC read-out, preloaded into a mucmux child by bench/tools/idle-probe.ts only (`node --expose-gc --import THIS
// main.js`); mucmux's own code is unchanged. GET http://127.0.0.1:$MUCMUX_BENCH_GC_PORT/gc runs two full garbage
// collections and returns process.memoryUsage() and v8.getHeapSpaceStatistics() as JSON, so that a reading counts
// what is live, not what the logins left for a later collection. The server is unref'd. Plain JavaScript because the
// production build runs without tsx.
/* global gc */
import { createServer } from "node:http";
import v8 from "node:v8";

const port = Number(process.env.MUCMUX_BENCH_GC_PORT);
if (!(Number.isInteger(port) && port > 0)) throw new Error("gc-probe: MUCMUX_BENCH_GC_PORT is not set");
if (typeof gc !== "function") throw new Error("gc-probe: run node with --expose-gc");

const server = createServer((req, res) => {
  if (req.url !== "/gc") return void res.writeHead(404).end();
  gc();
  gc();
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ memory: process.memoryUsage(), spaces: v8.getHeapSpaceStatistics() }));
});
server.listen(port, "127.0.0.1");
server.unref();
