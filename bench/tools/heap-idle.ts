// What mucmux retains per idle session: heap snapshots of a mucmux child at 0 and at N idle sessions,
// aggregated by constructor / node type, difference divided by N (bytes per session, self sizes).
// `node --import tsx bench/tools/heap-idle.ts [N]` (default 300). Not part of `npm run bench`.
import * as fs from "node:fs";
import * as path from "node:path";

import { testCertificate, TEST_TMP } from "../../test/support/certs.js";
import { startProsody } from "../../test/support/prosody.js";
import { prepareRuntime, spawnMucmux } from "../lib/mucmux-process.js";
import { rssKiB } from "../lib/procfs.js";
import { sleep } from "../lib/target.js";
import { login, mapLimit, type BenchSession } from "../lib/xmpp.js";

const N = Number(process.argv[2] ?? 300);
const DIR = path.join(TEST_TMP, "heap");

function aggregate(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(fs.readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[]; edges: number[]; strings: string[];
  };
  const meta = snap.snapshot.meta;
  const fields = meta.node_fields, types = meta.node_types[0];
  const w = fields.length, ew = meta.edge_fields.length;
  const iType = fields.indexOf("type"), iName = fields.indexOf("name"), iSize = fields.indexOf("self_size"), iEdges = fields.indexOf("edge_count");
  const eType = meta.edge_fields.indexOf("type"), eName = meta.edge_fields.indexOf("name_or_index"), eTo = meta.edge_fields.indexOf("to_node");
  const edgeTypes = meta.edge_types[0];
  const label = (n: number) => {
    const type = types[snap.nodes[n + iType] ?? 0] ?? "?";
    let name = snap.strings[snap.nodes[n + iName] ?? 0] ?? "?";
    if (type.includes("string")) name = "";
    return `${type}:${name.slice(0, 40)}`;
  };
  // First non-weak retainer of every node (enough to tell whose objects grow per session).
  const retainer = new Map<number, string>();
  const retainerNode = new Map<number, number>();
  let e = 0;
  for (let n = 0; n < snap.nodes.length; n += w) {
    const count = snap.nodes[n + iEdges] ?? 0;
    for (let k = 0; k < count; k++, e += ew) {
      const et = edgeTypes[snap.edges[e + eType] ?? 0] ?? "?";
      if (et === "weak" || et === "shortcut") continue;
      const to = snap.edges[e + eTo] ?? 0;
      if (retainer.has(to)) continue;
      const raw = snap.edges[e + eName] ?? 0;
      const ename = et === "element" || et === "hidden" ? `[${et}]` : (snap.strings[raw] ?? "?");
      retainer.set(to, `${label(n)}.${ename.slice(0, 30)}`);
      retainerNode.set(to, n);
    }
  }
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += w) {
    const up = retainerNode.get(i);
    const key = `${label(i)}  <-  ${retainer.get(i) ?? "(root)"}${up !== undefined ? `  <-  ${retainer.get(up) ?? "(root)"}` : ""}`;
    const ent = out.get(key) ?? { count: 0, bytes: 0 };
    ent.count++;
    ent.bytes += snap.nodes[i + iSize] ?? 0;
    out.set(key, ent);
  }
  return out;
}

async function snapshot(pid: number, label: string): Promise<string> {
  const before = new Set(fs.readdirSync(DIR));
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 600; i++) {
    await sleep(200);
    const added = fs.readdirSync(DIR).filter((f) => !before.has(f) && f.endsWith(".heapsnapshot"));
    const f = added[0];
    if (f) {
      const p = path.join(DIR, f);
      // Written in pieces: done when the size holds still and the JSON is closed.
      const closed = () => { const b = fs.readFileSync(p); return b.length > 0 && b.subarray(-4).toString().trimEnd().endsWith("}"); };
      let size = -1;
      while (size !== fs.statSync(p).size || !closed()) { size = fs.statSync(p).size; await sleep(1000); }
      const dest = path.join(DIR, `${label}.heapsnapshot`);
      fs.renameSync(p, dest);
      return dest;
    }
  }
  throw new Error("no heap snapshot written");
}

async function main(): Promise<void> {
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true });
  const cert = testCertificate();
  process.env.NODE_EXTRA_CA_CERTS = cert.certFile;
  const users: Record<string, string> = {};
  for (let i = 0; i < 10; i++) users[`idle${i}`] = `idle${i}-bench-pw`;
  const prosody = await startProsody({ users, muc: false });
  await prepareRuntime("build");
  process.env.MUCMUX_BENCH_NODE_ARGS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${DIR}`;
  const m = await spawnMucmux(prosody.port);
  const sessions: BenchSession[] = [];
  try {
    await sleep(1000);
    const rss0 = rssKiB(m.pid);
    const a = aggregate(await snapshot(m.pid, "base"));
    await mapLimit([...Array(N).keys()], 32, async (i) => {
      const user = `idle${i % 10}`;
      sessions.push(await login({ port: m.directPort, user, password: users[user] ?? "", resource: `h${i}`, ca: cert.cert }));
    });
    await sleep(1500);
    const rss1 = rssKiB(m.pid);
    const b = aggregate(await snapshot(m.pid, "loaded"));
    const rows: [string, number, number][] = [];
    let total = 0;
    for (const [k, v] of b) {
      const base = a.get(k) ?? { count: 0, bytes: 0 };
      const bytes = (v.bytes - base.bytes) / N, count = (v.count - base.count) / N;
      total += bytes;
      if (Math.abs(bytes) >= 40) rows.push([k, count, bytes]);
    }
    rows.sort((x, y) => y[2] - x[2]);
    console.log(`${N} sessions: RSS ${((rss1 - rss0) / N).toFixed(1)} KiB/session; heap self size ${(total / 1024).toFixed(1)} KiB/session`);
    for (const [k, c, bytes] of rows.slice(0, 70)) console.log(`${bytes.toFixed(0).padStart(7)} B  ${c.toFixed(1).padStart(6)} obj  ${k}`);
  } finally {
    await mapLimit(sessions, 200, (s) => s.close(1000));
    await m.stop();
    await prosody.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
