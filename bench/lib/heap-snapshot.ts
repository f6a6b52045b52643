// A V8 heap snapshot (.heapsnapshot JSON) read for bench/tools/heap-idle.ts: self sizes by node and first
// retainer, and sizes by owner: each node charged to its nearest dominator whose constructor is one of `owners`
// (the dominator tree as DevTools builds it: weak and shortcut edges ignored; Cooper–Harvey–Kennedy iteration).
import * as fs from "node:fs";

export interface Tally { count: number; bytes: number }

export interface SnapshotSummary {
  /** `type:name  <-  first retainer  <-  its first retainer` → self sizes. */
  byRetainer: Map<string, Tally>;
  /** Owner constructor → self sizes of what it dominates (nearer owners excepted); "(other)" for the rest. */
  byOwner: Map<string, Tally>;
  /** `owner | type:name` → self sizes. */
  byOwnerNode: Map<string, Tally>;
  /** Owner constructor → its instances and their retained sizes. */
  retained: Map<string, Tally>;
}

interface Raw {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[]; edges: number[]; strings: string[];
}

const add = (m: Map<string, Tally>, key: string, bytes: number) => {
  const t = m.get(key);
  if (t) { t.count++; t.bytes += bytes; } else m.set(key, { count: 1, bytes });
};

export function summarize(file: string, owners: ReadonlySet<string>): SnapshotSummary {
  const snap = JSON.parse(fs.readFileSync(file, "utf8")) as Raw;
  const meta = snap.snapshot.meta;
  const { nodes, edges, strings } = snap;
  const F = meta.node_fields.length, EF = meta.edge_fields.length;
  const iType = meta.node_fields.indexOf("type"), iName = meta.node_fields.indexOf("name");
  const iSize = meta.node_fields.indexOf("self_size"), iEdges = meta.node_fields.indexOf("edge_count");
  const eType = meta.edge_fields.indexOf("type"), eName = meta.edge_fields.indexOf("name_or_index"), eTo = meta.edge_fields.indexOf("to_node");
  const types = meta.node_types[0], edgeTypes = meta.edge_types[0];
  const weak = edgeTypes.indexOf("weak"), shortcut = edgeTypes.indexOf("shortcut");
  const n = nodes.length / F;
  const at = (a: number[], i: number) => a[i] ?? 0;
  const type = (v: number) => types[at(nodes, v * F + iType)] ?? "?";
  const size = (v: number) => at(nodes, v * F + iSize);
  const label = (v: number) => {
    const t = type(v);
    const name = t.includes("string") || t === "number" ? "" : (strings[at(nodes, v * F + iName)] ?? "?").slice(0, 40);
    return `${t}:${name}`;
  };
  const ctor = (v: number) => {
    const t = type(v);
    return t === "object" || t === "native" || t === "closure" ? strings[at(nodes, v * F + iName)] : undefined;
  };
  const first = new Uint32Array(n + 1);
  for (let v = 0, e = 0; v < n; v++) { first[v] = e; e += at(nodes, v * F + iEdges) * EF; }
  first[n] = edges.length;
  const strong = (e: number) => { const t = at(edges, e + eType); return t !== weak && t !== shortcut; };
  const target = (e: number) => at(edges, e + eTo) / F;

  // First strong retainer of each node (the table heap-idle always printed).
  const retainer = new Int32Array(n).fill(-1);
  const retainerName = new Array<string>(n);
  for (let v = 0; v < n; v++) {
    for (let e = first[v] ?? 0; e < (first[v + 1] ?? 0); e += EF) {
      if (!strong(e)) continue;
      const to = target(e);
      if (retainer[to] !== -1) continue;
      const et = edgeTypes[at(edges, e + eType)] ?? "?";
      const raw = at(edges, e + eName);
      retainer[to] = v;
      retainerName[to] = et === "element" || et === "hidden" ? `[${et}]` : (strings[raw] ?? "?").slice(0, 30);
    }
  }
  const via = (v: number) => (retainer[v] ?? -1) < 0 ? "(root)" : `${label(retainer[v] ?? 0)}.${retainerName[v] ?? ""}`;

  // Postorder from the root (node 0) over strong edges, iteratively.
  const po = new Int32Array(n).fill(-1);
  const post: number[] = [];
  const stack = [0], cursor = [first[0] ?? 0];
  po[0] = -2;
  while (stack.length > 0) {
    const v = stack[stack.length - 1] ?? 0;
    let e = cursor[cursor.length - 1] ?? 0;
    let descended = false;
    for (; e < (first[v + 1] ?? 0); e += EF) {
      if (!strong(e)) continue;
      const to = target(e);
      if (po[to] !== -1) continue;
      po[to] = -2;
      cursor[cursor.length - 1] = e + EF;
      stack.push(to);
      cursor.push(first[to] ?? 0);
      descended = true;
      break;
    }
    if (!descended) { stack.pop(); cursor.pop(); po[v] = post.length; post.push(v); }
  }
  const preds: number[][] = Array.from({ length: n }, () => []);
  for (const v of post) for (let e = first[v] ?? 0; e < (first[v + 1] ?? 0); e += EF) if (strong(e)) preds[target(e)]?.push(v);
  const idom = new Int32Array(n).fill(-1);
  idom[0] = 0;
  const order = (v: number) => po[v] ?? -1;
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while (order(a) < order(b)) a = idom[a] ?? 0;
      while (order(b) < order(a)) b = idom[b] ?? 0;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let k = post.length - 2; k >= 0; k--) {
      const v = post[k] ?? 0;
      let d = -1;
      for (const u of preds[v] ?? []) if ((idom[u] ?? -1) !== -1) d = d === -1 ? u : intersect(u, d);
      if (d !== -1 && idom[v] !== d) { idom[v] = d; changed = true; }
    }
  }
  const retainedSize = new Float64Array(n);
  for (const v of post) {
    retainedSize[v] = (retainedSize[v] ?? 0) + size(v);
    if (v !== 0) retainedSize[idom[v] ?? 0] = (retainedSize[idom[v] ?? 0] ?? 0) + (retainedSize[v] ?? 0);
  }
  const owner = new Array<string>(n);
  const ownerOf = (v: number): string => {
    const known = owner[v];
    if (known !== undefined) return known;
    const c = ctor(v);
    const o = c !== undefined && owners.has(c) ? c : v === 0 ? "(other)" : ownerOf(idom[v] ?? 0);
    owner[v] = o;
    return o;
  };
  const out: SnapshotSummary = { byRetainer: new Map(), byOwner: new Map(), byOwnerNode: new Map(), retained: new Map() };
  // Dominators before the nodes they dominate (reverse postorder), so that ownerOf never recurses deeply.
  for (let k = post.length - 1; k >= 0; k--) {
    const v = post[k] ?? 0;
    const o = ownerOf(v);
    add(out.byOwner, o, size(v));
    add(out.byOwnerNode, `${o} | ${label(v)}`, size(v));
    const c = ctor(v);
    if (c !== undefined && owners.has(c)) add(out.retained, c, retainedSize[v] ?? 0);
  }
  for (let v = 0; v < n; v++) {
    const up = retainer[v] ?? -1;
    add(out.byRetainer, `${label(v)}  <-  ${via(v)}${up >= 0 ? `  <-  ${via(up)}` : ""}`, size(v));
  }
  return out;
}

/** Per-session difference of two tallies (`b` − `a`) / `n`, largest first. */
export function perSession(a: Map<string, Tally>, b: Map<string, Tally>, n: number): [key: string, count: number, bytes: number][] {
  const rows: [string, number, number][] = [];
  for (const [k, v] of b) {
    const base = a.get(k) ?? { count: 0, bytes: 0 };
    rows.push([k, (v.count - base.count) / n, (v.bytes - base.bytes) / n]);
  }
  for (const [k, v] of a) if (!b.has(k)) rows.push([k, -v.count / n, -v.bytes / n]);
  return rows.sort((x, y) => y[2] - x[2]);
}
