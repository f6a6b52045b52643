// Where an idle session's resident memory goes: a mucmux child (tsc build) with N idle sessions opened in STEPS steps;
// before each reading two full GCs (bench/lib/gc-probe.mjs, preloaded), then RSS beside the V8 heap: used, and
// committed per space. Slopes per session (least squares), so that RSS outside the JS heap (sockets, OpenSSL, the
// parsers' decoders, malloc) shows as the difference. The young generation is fixed at its largest size
// (--min-semi-space-size), which idle-memory's readings let grow from 16 to 32 MiB during its first step.
// `node --import tsx bench/tools/idle-probe.ts [N] [ACCOUNTS] [STEPS]` (default 1000 10 4). Not part of `npm run bench`.
import * as fs from "node:fs";
import * as path from "node:path";

import { testCertificate } from "../../test/support/certs.js";
import { freePorts } from "../../test/support/ports.js";
import { startProsody } from "../../test/support/prosody.js";
import { prepareRuntime, ROOT, spawnMucmux } from "../lib/mucmux-process.js";
import { rssKiB } from "../lib/procfs.js";
import { slope } from "../lib/stats.js";
import { sleep } from "../lib/target.js";
import { login, mapLimit, type BenchSession } from "../lib/xmpp.js";

const N = Number(process.argv[2] ?? 1000);
const ACCOUNTS = Number(process.argv[3] ?? 10);
const STEPS = Number(process.argv[4] ?? 4);
const SEMI_SPACE_MIB = 16; // Node 20's largest semi-space on 64-bit

/** Resident KiB of the process by kind of mapping: malloc's main arena ([heap]), other anonymous memory (V8's pages,
 * other threads' malloc arenas), files (code, shared libraries). */
function residentByKind(pid: number): { heap: number; anon: number; file: number } {
  const out = { heap: 0, anon: 0, file: 0 };
  let kind: keyof typeof out = "anon";
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1] ?? "";
      kind = name === "[heap]" ? "heap" : name === "" || name.startsWith("[") ? "anon" : "file";
    } else if (line.startsWith("Rss:")) {
      out[kind] += Number(line.split(/\s+/)[1] ?? 0);
    }
  }
  return out;
}

interface Reading { memory: NodeJS.MemoryUsage; spaces: { space_name: string; space_size: number; space_used_size: number }[] }

async function main(): Promise<void> {
  const cert = testCertificate();
  process.env.NODE_EXTRA_CA_CERTS = cert.certFile;
  const [gcPort = 0] = await freePorts(1);
  process.env.MUCMUX_BENCH_GC_PORT = String(gcPort);
  process.env.MUCMUX_BENCH_NODE_ARGS = [
    process.env.MUCMUX_BENCH_NODE_ARGS ?? "", `--min-semi-space-size=${SEMI_SPACE_MIB}`, `--max-semi-space-size=${SEMI_SPACE_MIB}`,
    "--expose-gc", "--import", path.join(ROOT, "bench", "lib", "gc-probe.mjs"),
  ].join(" ");
  const users: Record<string, string> = {};
  for (let i = 0; i < ACCOUNTS; i++) users[`idle${i}`] = `idle${i}-bench-pw`;
  const prosody = await startProsody({ users, muc: false });
  await prepareRuntime("build");
  const m = await spawnMucmux(prosody.port);
  const sessions: BenchSession[] = [];
  const rows: { n: number; rss: number; used: number; committed: number; external: number; spaces: Map<string, number>; maps: ReturnType<typeof residentByKind> }[] = [];
  const read = async (n: number) => {
    const r = (await (await fetch(`http://127.0.0.1:${gcPort}/gc`)).json()) as Reading;
    await sleep(300);
    const spaces = new Map(r.spaces.map((s) => [s.space_name, s.space_size / 1024]));
    const row = {
      n, rss: rssKiB(m.pid), used: r.memory.heapUsed / 1024, committed: r.memory.heapTotal / 1024, external: r.memory.external / 1024, spaces,
      maps: residentByKind(m.pid),
    };
    rows.push(row);
    console.log(`${String(n).padStart(5)} sessions: RSS ${(row.rss / 1024).toFixed(1)} MiB, heap used ${(row.used / 1024).toFixed(1)} MiB, ` +
      `committed ${(row.committed / 1024).toFixed(1)} MiB (${[...spaces].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${(v / 1024).toFixed(1)}`).join(", ")})`);
  };
  try {
    await sleep(1500);
    await read(0);
    const per = Math.ceil(N / STEPS);
    for (let step = 0; step < STEPS; step++) {
      const from = step * per, to = Math.min(N, from + per);
      await mapLimit([...Array(to - from).keys()].map((k) => from + k), 32, async (i) => {
        const user = `idle${i % ACCOUNTS}`;
        sessions.push(await login({ port: m.directPort, user, password: users[user] ?? "", resource: `p${i}`, ca: cert.cert, timeoutMs: 60_000 }));
      });
      await sleep(1500);
      await read(to);
    }
    const s = (f: (r: (typeof rows)[number]) => number) => slope(rows.map((r) => [r.n, f(r)] as const));
    const rss = s((r) => r.rss), committed = s((r) => r.committed);
    console.log(`per session (KiB): RSS ${rss.toFixed(1)}; JS heap used ${s((r) => r.used).toFixed(1)}, committed ${committed.toFixed(1)}; ` +
      `external ${s((r) => r.external).toFixed(2)}; RSS outside the JS heap ${(rss - committed).toFixed(1)}; resident in malloc's main arena ` +
      `${s((r) => r.maps.heap).toFixed(1)}, other anonymous memory ${s((r) => r.maps.anon).toFixed(1)}, files ${s((r) => r.maps.file).toFixed(1)}`);
  } finally {
    await mapLimit(sessions, 200, (x) => x.close(1000));
    await m.stop();
    await prosody.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
