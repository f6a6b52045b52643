// The longest busy stretches of a V8 .cpuprofile: runs of consecutive non-idle samples, i.e. time the event loop
// did not get back to polling (a stall), with what ran in each: self time by function, and inclusive time of
// mucmux's own functions (dist/ or src/). Profile a mucmux child with a fine sampling interval, e.g.
// `MUCMUX_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-interval=100 --cpu-prof-dir=test/.tmp/prof" npm run bench -- --only=worst-input --pairs=1`
// then `node --import tsx bench/tools/cpuprofile-stalls.ts FILE [STRETCHES] [ROWS]`.
import * as fs from "node:fs";

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
const file = process.argv[2];
if (!file) throw new Error("usage: cpuprofile-stalls.ts FILE [STRETCHES] [ROWS]");
const stretches = Number(process.argv[3] ?? 5);
const rows = Number(process.argv[4] ?? 12);
const prof = JSON.parse(fs.readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n: Node) => {
  const { functionName, url, lineNumber } = n.callFrame;
  return `${functionName || "(anon)"} ${url.replace(/^.*\/(node_modules|dist|src)\//, "$1/")}:${lineNumber + 1}`;
};
const own = (n: Node) => /\/(dist|src)\//.test(n.callFrame.url) && !n.callFrame.url.includes("node_modules");

// Sample i lasts timeDeltas[i + 1] (the delta is the time since the previous sample).
const runs: { start: number; end: number; us: number }[] = [];
let cur: { start: number; end: number; us: number } | undefined;
for (let i = 0; i < prof.samples.length; i++) {
  const n = byId.get(prof.samples[i] ?? 0);
  const us = prof.timeDeltas[i + 1] ?? 0;
  const idle = n?.callFrame.functionName === "(idle)";
  if (idle) {
    if (cur) runs.push(cur);
    cur = undefined;
    continue;
  }
  cur ??= { start: i, end: i, us: 0 };
  cur.end = i;
  cur.us += us;
}
if (cur) runs.push(cur);
runs.sort((a, b) => b.us - a.us);

console.log(`${runs.length} busy stretches; longest ${stretches}:`);
for (const r of runs.slice(0, stretches)) {
  const self = new Map<string, number>(), incl = new Map<string, number>();
  for (let i = r.start; i <= r.end; i++) {
    const us = prof.timeDeltas[i + 1] ?? 0;
    const leaf = byId.get(prof.samples[i] ?? 0);
    if (!leaf) continue;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + us);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (!n || !own(n)) continue;
      const l = label(n);
      if (seen.has(l)) continue; // recursion counts once
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + us);
    }
  }
  console.log(`\n== ${(r.us / 1000).toFixed(2)} ms busy (samples ${r.start}..${r.end})`);
  console.log("   self time:");
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`   ${(v / 1000).toFixed(2).padStart(7)} ms  ${k}`);
  console.log("   inclusive, mucmux functions:");
  for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`   ${(v / 1000).toFixed(2).padStart(7)} ms  ${k}`);
}
