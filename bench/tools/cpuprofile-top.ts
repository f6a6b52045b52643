// Summarises a V8 .cpuprofile (`MUCMUX_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench`):
// self time by function and by area (saxes, src/xml, other src, node internals, GC, native).
// `node --import tsx bench/tools/cpuprofile-top.ts FILE [TOP]`
import * as fs from "node:fs";

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
const file = process.argv[2];
if (!file) throw new Error("usage: cpuprofile-top.ts FILE [TOP]");
const top = Number(process.argv[3] ?? 30);
const prof = JSON.parse(fs.readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const fn = new Map<string, number>(), area = new Map<string, number>();
let total = 0;
for (const [id, us] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const { functionName, url, lineNumber } = n.callFrame;
  if (functionName === "(idle)" || functionName === "(program)") continue;
  total += us;
  const short = url.replace(/^.*\/(node_modules|dist|src)\//, "$1/");
  fn.set(`${functionName || "(anon)"} ${short}:${lineNumber + 1}`, (fn.get(`${functionName || "(anon)"} ${short}:${lineNumber + 1}`) ?? 0) + us);
  const a = url.includes("/saxes/") ? "saxes (parser)" : url.includes("/xml/") && url.includes("dist/") ? "mucmux xml/ (parser glue, serialize)"
    : url.includes("@xmpp/") ? "@xmpp/xml (Element)" : url.includes("prom-client") ? "prom-client (metrics)" : url.includes("pino") ? "pino"
    : url.includes("dist/") ? "mucmux other" : url.startsWith("node:") ? "node internals (JS)" : functionName === "(garbage collector)" ? "GC" : "native / builtins";
  area.set(a, (area.get(a) ?? 0) + us);
}
const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)} %`;
console.log(`busy (non-idle) samples: ${(total / 1e6).toFixed(2)} s`);
for (const [k, v] of [...area].sort((x, y) => y[1] - x[1])) console.log(`${pct(v)}  ${k}`);
console.log("");
for (const [k, v] of [...fn].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${pct(v)}  ${k}`);
