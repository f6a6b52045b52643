// What ran in the longest event-loop gaps of a window (loop-gaps.mjs) of a --cpu-prof profile of the same mucmux
// child. In a burst the loop never idles, so cpuprofile-stalls.ts's busy stretches span many turns; the gaps between
// two runs of a 1 ms timer are the turns. For each gap: wall, on-CPU and run-queue wait, the profile's sampled work
// in it (non-idle samples, each counted at most two intervals, so time off the CPU is not), self time by function
// and inclusive time of mucmux's functions; then the window's GC pauses.
// `node --import tsx bench/tools/cpuprofile-gaps.ts PROFILE GAPS.json [GAPS=4] [INTERVAL_US=250]`
import * as fs from "node:fs";

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Gap { start: number; end: number; wallMs: number; cpuMs: number; waitMs: number }
const [profFile, gapsFile, nArg, intervalArg] = process.argv.slice(2);
if (!profFile || !gapsFile) throw new Error("usage: cpuprofile-gaps.ts PROFILE GAPS.json [GAPS] [INTERVAL_US]");
const interval = Number(intervalArg ?? 250);
const prof = JSON.parse(fs.readFileSync(profFile, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
const recorded = JSON.parse(fs.readFileSync(gapsFile, "utf8")) as { gaps: Gap[]; gcs: { kind: string; ms: number }[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: Node) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.replace(/^.*\/(node_modules|dist|src)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;
const own = (n: Node) => /\/(dist|src)\//.test(n.callFrame.url) && !n.callFrame.url.includes("node_modules");

const at: number[] = [];
let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) at.push((t += prof.timeDeltas[i] ?? 0));

function inGap(g: Gap) {
  const self = new Map<string, number>(), incl = new Map<string, number>();
  let work = 0;
  for (let i = 0; i < at.length; i++) {
    const ts = at[i] as number;
    if (ts < g.start || ts > g.end) continue;
    const node = byId.get(prof.samples[i] as number);
    if (!node || node.callFrame.functionName === "(idle)") continue;
    const us = Math.min((at[i + 1] ?? ts) - ts, 2 * interval);
    work += us;
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const x = byId.get(id) as Node;
      if (!own(x) || seen.has(label(x))) continue;
      seen.add(label(x));
      incl.set(label(x), (incl.get(label(x)) ?? 0) + us);
    }
  }
  return { work: work / 1000, self, incl };
}

const rows = recorded.gaps.map((g) => ({ g, ...inGap(g) })).sort((a, b) => b.work - a.work);
const ms = (us: number) => (us / 1000).toFixed(2).padStart(7);
console.log(`${recorded.gaps.length} gaps > 3 ms; by sampled work (work/on-CPU/wall ms): ${rows.slice(0, 10).map((r) => `${r.work.toFixed(1)}/${r.g.cpuMs.toFixed(0)}/${r.g.wallMs.toFixed(0)}`).join("  ")}`);
for (const r of rows.slice(0, Number(nArg ?? 4))) {
  console.log(`\n== ${r.g.wallMs.toFixed(1)} ms wall, ${r.g.cpuMs.toFixed(1)} ms on-CPU, ${r.g.waitMs.toFixed(1)} ms run-queue wait, ${r.work.toFixed(1)} ms sampled work`);
  for (const [k, v] of [...r.self].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  self ${ms(v)}  ${k}`);
  for (const [k, v] of [...r.incl].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  incl ${ms(v)}  ${k}`);
}
const gcs = [...recorded.gcs].sort((a, b) => b.ms - a.ms);
console.log(`\nGC in the window: ${gcs.length} pauses, ${gcs.reduce((a, g) => a + g.ms, 0).toFixed(0)} ms; longest: ${gcs.slice(0, 6).map((g) => `${g.kind} ${g.ms.toFixed(1)}`).join(", ")}`);
