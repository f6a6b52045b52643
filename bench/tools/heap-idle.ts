// What mucmux retains per idle session: heap snapshots of a mucmux child at 0 and at N idle sessions (spread
// over ACCOUNTS accounts), difference divided by N: self sizes by node and first retainer, then by owner (the
// nearest dominating Link, Wire, socket, parser, account record, ...; lib/heap-snapshot.ts).
// `node --import tsx bench/tools/heap-idle.ts [N] [ACCOUNTS] [client]` (default 300 over 10, as idle-memory spreads its
// sessions; N over N accounts shows what an account record costs; `client`: after bind each session sends its
// presence, asks the server's disco#info, enables carbons, reads its roster, enables stream management with resumption
// and says it is inactive, as a phone's client does). Not part of `npm run bench`.
import * as fs from "node:fs";
import * as path from "node:path";

import { testCertificate, TEST_TMP } from "../../test/support/certs.js";
import { startProsody } from "../../test/support/prosody.js";
import { prepareRuntime, spawnMucmux } from "../lib/mucmux-process.js";
import { rssKiB } from "../lib/procfs.js";
import { sleep } from "../lib/target.js";
import { login, mapLimit, type BenchSession } from "../lib/xmpp.js";
import { perSession, summarize } from "../lib/heap-snapshot.js";

const N = Number(process.argv[2] ?? 300);
const ACCOUNTS = Number(process.argv[3] ?? 10);
/** `client`: each session then does what a phone's client does after bind before it goes idle. */
const CLIENT = process.argv[4] === "client";
const AFTER_BIND = "<presence/>" +
  "<iq type='get' id='disco1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>" +
  "<iq type='set' id='carbons1'><enable xmlns='urn:xmpp:carbons:2'/></iq>" +
  "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>";
const DIR = path.join(TEST_TMP, "heap");
/** Constructors that own what they dominate in the "by owner" tables. */
const OWNERS = new Set([
  "Link", "Wire", "StreamParser", "TLSSocket", "Socket", "TLSWrap", "TCP", "UpstreamLeg", "Dispatcher", "ClientNegotiation",
  "AbortController", "Account", "AccountOffline", "AccountWakeups", "IqTracker", "ClientSm", "LegSm", "Pino",
]);

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
  for (let i = 0; i < ACCOUNTS; i++) users[`idle${i}`] = `idle${i}-bench-pw`;
  const prosody = await startProsody({ users, muc: false });
  await prepareRuntime("build");
  process.env.MUCMUX_BENCH_NODE_ARGS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${DIR}`;
  const m = await spawnMucmux(prosody.port);
  const sessions: BenchSession[] = [];
  try {
    await sleep(1000);
    const rss0 = rssKiB(m.pid);
    const a = summarize(await snapshot(m.pid, "base"), OWNERS);
    await mapLimit([...Array(N).keys()], 32, async (i) => {
      const user = `idle${i % ACCOUNTS}`;
      const session = await login({ port: m.directPort, user, password: users[user] ?? "", resource: `h${i}`, ca: cert.cert });
      sessions.push(session);
      if (!CLIENT) return;
      session.write(AFTER_BIND);
      await session.enableSm();
      session.write("<inactive xmlns='urn:xmpp:csi:0'/>");
    });
    await sleep(1500);
    const rss1 = rssKiB(m.pid);
    const b = summarize(await snapshot(m.pid, "loaded"), OWNERS);
    const total = perSession(a.byOwner, b.byOwner, N).reduce((sum, [, , bytes]) => sum + bytes, 0);
    console.log(`${N} sessions over ${ACCOUNTS} accounts: RSS ${((rss1 - rss0) / N).toFixed(1)} KiB/session; ` +
      `heap self size ${(total / 1024).toFixed(1)} KiB/session (reachable)`);
    const print = (title: string, rows: [string, number, number][], max: number, min = 40) => {
      console.log(`-- ${title}`);
      for (const [k, c, bytes] of rows.filter((r) => Math.abs(r[2]) >= min).slice(0, max)) {
        console.log(`${bytes.toFixed(0).padStart(7)} B  ${c.toFixed(2).padStart(6)} obj  ${k}`);
      }
    };
    print("self size by node and first retainer", perSession(a.byRetainer, b.byRetainer, N), 70);
    print("retained size by owner instance (dominator tree; nested owners included)", perSession(a.retained, b.retained, N), 30, 20);
    print("self size by nearest owner", perSession(a.byOwner, b.byOwner, N), 30, 20);
    print("self size by owner and node", perSession(a.byOwnerNode, b.byOwnerNode, N), 90, 24);
  } finally {
    await mapLimit(sessions, 200, (s) => s.close(1000));
    await m.stop();
    await prosody.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
