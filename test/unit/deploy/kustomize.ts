// A small kustomize for the tests (no kustomize binary on CI): the subset deploy/kubernetes uses —
// resources (files and directories), configMapGenerator (files) and JSON 6902 patches with a target.
// Anything else in a kustomization.yaml is an error, so the manifests cannot silently outgrow it. Generated
// ConfigMaps keep their plain names (kustomize appends a content hash; compareWithKubectl accounts for it).
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface PatchOp { op: string; path: string; from?: string; value?: Json }
interface Target { group?: string; version?: string; kind?: string; name?: string }

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources", "configMapGenerator", "patches"]);

export function kustomize(dir: string): K8sObject[] {
  const file = path.join(dir, "kustomization.yaml");
  const k = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${file}: '${key}' is not supported by the test renderer`);
  }
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    throw new Error(`${file}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`);
  }
  const out: K8sObject[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const p = path.resolve(dir, r);
    if (statSync(p).isDirectory()) out.push(...kustomize(p));
    else out.push(...readObjects(p));
  }
  for (const g of (k.configMapGenerator ?? []) as { name: string; files: string[] }[]) {
    for (const key of Object.keys(g)) if (key !== "name" && key !== "files") throw new Error(`${file}: configMapGenerator.${key} is not supported`);
    const data = Object.fromEntries(g.files.map((f) => [path.basename(f), readFileSync(path.resolve(dir, f), "utf8")]));
    out.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  for (const p of (k.patches ?? []) as { path: string; target: Target }[]) {
    for (const key of Object.keys(p)) if (key !== "path" && key !== "target") throw new Error(`${file}: patches[].${key} is not supported`);
    const ops = parse(readFileSync(path.resolve(dir, p.path), "utf8")) as PatchOp[];
    if (!Array.isArray(ops)) throw new Error(`${p.path}: only JSON 6902 patches (a YAML list of operations) are supported`);
    const hits = out.filter((o) => matches(o, p.target));
    if (hits.length === 0) throw new Error(`${file}: patch ${p.path} matches no resource`);
    for (const o of hits) {
      const patched = applyJsonPatch(o as unknown as Json, ops) as unknown as K8sObject;
      out[out.indexOf(o)] = patched;
    }
  }
  return out;
}

export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, "utf8")).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
    return d.toJS() as K8sObject;
  }).filter((o) => o !== null);
}

function matches(o: K8sObject, t: Target): boolean {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  return (t.group === undefined || t.group === group) && (t.version === undefined || t.version === version) &&
    (t.kind === undefined || t.kind === o.kind) && (t.name === undefined || t.name === o.metadata.name);
}

// ---- RFC 6902 ------------------------------------------------------------------------------------

function pointer(p: string): string[] {
  if (p === "") return [];
  if (!p.startsWith("/")) throw new Error(`bad JSON pointer ${p}`);
  return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: Json, p: string): { parent: Json[] | { [k: string]: Json }; key: string } {
  const parts = pointer(p);
  const key = parts.pop();
  if (key === undefined) throw new Error(`cannot operate on the document root (${p})`);
  let cur: Json = doc;
  for (const part of parts) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(part)] : cur && typeof cur === "object" ? cur[part] : undefined;
    if (next === undefined || next === null || typeof next !== "object") throw new Error(`path ${p}: ${part} does not exist`);
    cur = next;
  }
  if (cur === null || typeof cur !== "object") throw new Error(`path ${p}: parent is not a container`);
  return { parent: cur, key };
}

function get(doc: Json, p: string): Json {
  const { parent, key } = parentOf(doc, p);
  const v = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (v === undefined) throw new Error(`path ${p} does not exist`);
  return v;
}

function add(doc: Json, p: string, value: Json): void {
  const { parent, key } = parentOf(doc, p);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new Error(`path ${p}: bad array index`);
    parent.splice(i, 0, value);
  } else {
    parent[key] = value;
  }
}

function remove(doc: Json, p: string): Json {
  const v = get(doc, p);
  const { parent, key } = parentOf(doc, p);
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
  return v;
}

export function applyJsonPatch(doc: Json, ops: PatchOp[]): Json {
  const out = structuredClone(doc);
  for (const op of ops) {
    const value = op.value === undefined ? undefined : structuredClone(op.value);
    switch (op.op) {
      case "add": add(out, op.path, value ?? null); break;
      case "remove": remove(out, op.path); break;
      case "replace": get(out, op.path); remove(out, op.path); add(out, op.path, value ?? null); break;
      case "move": add(out, op.path, remove(out, op.from ?? "")); break;
      case "copy": add(out, op.path, structuredClone(get(out, op.from ?? ""))); break;
      case "test":
        if (JSON.stringify(get(out, op.path)) !== JSON.stringify(value)) throw new Error(`test failed at ${op.path}: expected ${JSON.stringify(value)}`);
        break;
      default: throw new Error(`unknown patch op ${op.op}`);
    }
  }
  return out;
}

/** kubectl's output with generated ConfigMaps' hash suffixes removed, keyed like ours. */
export function withoutNameHashes(objects: K8sObject[]): K8sObject[] {
  let text = JSON.stringify(objects);
  for (const o of objects) {
    const m = o.kind === "ConfigMap" ? /^(.*)-[a-z0-9]{10}$/.exec(o.metadata.name) : null;
    if (m?.[1]) text = text.split(JSON.stringify(o.metadata.name)).join(JSON.stringify(m[1]));
  }
  return JSON.parse(text) as K8sObject[];
}

export const keyOf = (o: K8sObject): string => `${o.apiVersion} ${o.kind} ${o.metadata.name}`;
