// Where a function's time comes from in a V8 .cpuprofile, and what a set of functions costs inclusively.
// `node --import tsx bench/tools/cpuprofile-callers.ts FILE REGEX [DEPTH]`: self time of the frames whose
//   "name file:line" matches REGEX, by call chain (DEPTH frames up, default 8).
// `node --import tsx bench/tools/cpuprofile-callers.ts FILE --inclusive LABEL=REGEX ...`: for each LABEL, the share
//   of busy samples with a matching frame anywhere on the stack (its inclusive time), in % and in s.
// Frames are named as in cpuprofile-top.ts (dist/… paths are the tsc build of src/, same line numbers as
// `tsc -p tsconfig.build.json`; map them to src/ with the build's .js.map files).
import * as fs from "node:fs";

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
const [file, ...rest] = process.argv.slice(2);
if (!file || rest.length === 0) throw new Error("usage: cpuprofile-callers.ts FILE REGEX [DEPTH] | FILE --inclusive LABEL=REGEX ...");
const prof = JSON.parse(fs.readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n: Node) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.replace(/^.*\/(node_modules|dist|src)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;
const self = new Map<number, number>();
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i] ?? 0;
  const fn = byId.get(id)?.callFrame.functionName;
  if (fn === "(idle)" || fn === "(program)") continue;
  total += prof.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const stack = (id: number, depth = Infinity) => {
  const out: string[] = [];
  for (let p: number | undefined = id; p !== undefined && out.length < depth; p = parent.get(p)) {
    const n = byId.get(p);
    if (n) out.push(name(n));
  }
  return out;
};
const pct = (us: number) => `${((us / total) * 100).toFixed(2).padStart(6)} %`;
console.log(`busy (non-idle) samples: ${(total / 1e6).toFixed(2)} s`);
if (rest[0] === "--inclusive") {
  const labels = rest.slice(1).map((arg) => {
    const eq = arg.indexOf("=");
    return { label: arg.slice(0, eq), re: new RegExp(arg.slice(eq + 1)), us: 0 };
  });
  for (const [id, us] of self) {
    const frames = stack(id);
    for (const l of labels) if (frames.some((f) => l.re.test(f))) l.us += us;
  }
  for (const l of labels) console.log(`${pct(l.us)}  ${(l.us / 1e6).toFixed(3)} s  ${l.label}`);
} else {
  const re = new RegExp(rest[0] ?? "");
  const depth = Number(rest[1] ?? 8);
  const chains = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n || !re.test(name(n))) continue;
    const key = stack(id, depth).join("\n      < ");
    chains.set(key, (chains.get(key) ?? 0) + us);
  }
  for (const [k, v] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${pct(v)}  ${k}`);
}
