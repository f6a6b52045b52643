// The shape of the code, checked on its imports (docs/architecture.md): no import circles in src/ (type
// imports included); stages reach sessions through the Session port (never stream/), and never import
// each other; account/ knows nothing of stream/'s Link or of stages.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SRC = path.join(ROOT, "src");

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** Relative imports of each file (static, type-only, re-exports and import() types), as src-relative paths. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  const specifier = /(?:\bfrom\s+|\bimport\s*\(\s*)"(\.[^"]+)"/g;
  for (const file of files(SRC)) {
    const text = fs.readFileSync(file, "utf8");
    const deps = [...text.matchAll(specifier)].map((m) =>
      path.relative(SRC, path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, ".ts"))));
    g.set(path.relative(SRC, file), deps);
  }
  return g;
}

/** Strongly connected components with more than one file (Tarjan). */
function circles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      for (;;) {
        const w = stack.pop() as string;
        on.delete(w);
        comp.push(w);
        if (w === v) break;
      }
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe("imports (docs/architecture.md)", () => {
  const g = graph();

  it("the checker sees a circle when there is one", () => {
    const fake = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]]);
    assert.deepEqual(circles(fake), [["a.ts", "b.ts", "c.ts"]]);
    assert.ok(g.size > 50, "it read src/");
  });

  it("src/ has no import circles (type imports count)", () => {
    assert.deepEqual(circles(g), []);
  });

  it("stages reach sessions through the Session port and each other through events and views, never by import", () => {
    const bad: string[] = [];
    for (const [file, deps] of g) {
      const stage = /^stages\/([^/]+)\//.exec(file)?.[1];
      if (!stage) continue;
      for (const d of deps) {
        const other = /^stages\/([^/]+)\//.exec(d)?.[1];
        if (d.startsWith("stream/") || (other !== undefined && other !== stage)) bad.push(`${file} → ${d}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it("account/ imports no Link and no stage", () => {
    const bad = [...g].flatMap(([file, deps]) =>
      file.startsWith("account/") ? deps.filter((d) => d === "stream/link.ts" || d.startsWith("stages/")).map((d) => `${file} → ${d}`) : []);
    assert.deepEqual(bad, []);
  });
});
