// SPEC E6: SIGTERM under load. A real mucmux process in front of Prosody 0.12 with 100
// sessions chatting with each other and an absent account whose MUC offline queue is filling. On SIGTERM:
// /readyz answers "not ready: draining" from the first request on, every session gets system-shutdown,
// the process exits 0 within drain.timeoutSeconds, and the store file it leaves holds every message it
// had queued (opened after the exit). Then a restart and the account's login bring in what the room said
// while mucmux was away: every room message is queued exactly once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import Database from "better-sqlite3";
import { xml, type Element } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { spawnMucmuxProcess, writeTestConfig, type MucmuxProcess } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { freePorts } from "../support/ports.js";
import { join, waitAfter } from "./muc-support.js";
import { metric, submit, until } from "./muc-offline-support.js";
import { pace } from "../support/wait.js";

const SESSIONS = 100;
const ACCOUNTS = Array.from({ length: 10 }, (_, i) => `dl${i}`);
/** bob's rate in the room: one message every this many ms. */
const SEND_EVERY_MS = 50;
/** How often /readyz is sampled while mucmux drains. */
const SAMPLE_EVERY_MS = 20;

let prosody: ProsodyServer;
before(async () => {
  prosody = await startProsody({ muc: true, users: { ...Object.fromEntries(ACCOUNTS.map((u) => [u, `${u}pw`])), dq: "dqpw", bob: "bobpw" } });
});
after(async () => { await prosody?.stop(); });

test(`SIGTERM with ${SESSIONS} busy sessions: not ready at once, system-shutdown to all, exit 0, nothing queued lost`, { timeout: 120_000 }, async () => {
  const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
  const configFile = writeTestConfig({
    upstreamPort: prosody.port, ports: { starttls, direct, admin }, logLevel: "info",
    extra: { offline: { maxPerRoom: 5000, maxPerAccount: 5000 } },
  });
  const storeFile = path.join(path.dirname(configFile), "mucmux.sqlite");
  const queued = () => {
    const db = new Database(storeFile, { fileMustExist: true });
    try {
      return (db.prepare("SELECT stanza FROM offline_queue WHERE account = 'dq@localhost' ORDER BY id").all() as { stanza: string }[])
        .map((r) => /<body>([^<]*)<\/body>/.exec(r.stanza)?.[1] ?? "");
    } finally {
      db.close();
    }
  };
  const room = `drain-${Date.now().toString(36)}@conference.localhost`;
  let mux: MucmuxProcess | undefined = await spawnMucmuxProcess(configFile, direct);
  const clients: TestClient[] = [];
  const raws: RawClient[] = [];
  let talking = true;
  let sent = 0;
  let bobTalk: Promise<void> = Promise.resolve();
  const timers: NodeJS.Timeout[] = [];
  try {
    // dq turns MUC offline delivery on for the room and goes away; bob (on Prosody directly) talks there.
    const bob = await connectClient({ service: `xmpp://127.0.0.1:${prosody.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "drain" });
    clients.push(bob);
    await join(bob, room, "bob");
    const dq = await connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: "dq", password: "dqpw", resource: "setup" });
    await join(dq, room, "dq");
    assert.equal((await dq.iq(submit(room, "dq", "1"))).attrs.type, "result");
    await dq.stop();
    await until("the room kept with no session in it", async () => (await metric(admin, "mucmux_rooms_managed", 'state="kept"')) === 1);
    bobTalk = (async () => {
      while (talking) {
        const n = ++sent;
        await bob.send(xml("message", { to: room, type: "groupchat", id: `d${n}` }, xml("body", {}, `d${n}`)));
        await pace(SEND_EVERY_MS);
      }
    })();

    // 100 sessions (10 accounts × 10 resources), each chatting with the next one.
    for (let i = 0; i < SESSIONS; i += 20) {
      raws.push(...await Promise.all(Array.from({ length: 20 }, async (_, k) => {
        const c = await RawClient.connect(direct);
        await c.login(ACCOUNTS[(i + k) % ACCOUNTS.length] as string, `${ACCOUNTS[(i + k) % ACCOUNTS.length]}pw`, `r${i + k}`);
        return c;
      })));
    }
    raws.forEach((c, i) => {
      const j = (i + 1) % SESSIONS;
      const to = `${ACCOUNTS[j % ACCOUNTS.length]}@localhost/r${j}`;
      let n = 0;
      timers.push(setInterval(() => c.send(`<message to='${to}' type='chat' id='c${i}-${++n}'><body>from ${i} #${n}</body></message>`), 200));
    });
    await until("chat flowing to every session", () => raws.every((c, i) => c.text.includes(`<body>from ${(i + SESSIONS - 1) % SESSIONS} #3</body>`)), 20_000);
    await until("the offline queue filling", () => queued().length >= 20, 10_000);
    const before = queued();

    // SIGTERM: the first /readyz once mucmux has taken the signal already says draining. (A signal reaches the
    // process asynchronously: a request sent in the same instant may be served first, so wait for its log line.)
    const t0 = Date.now();
    const exited = mux.stop();
    const proc = mux;
    await until("mucmux took SIGTERM", () => proc.output().includes('"msg":"shutting down"'), 5000, 2);
    const first = await fetch(`http://127.0.0.1:${admin}/readyz`).then(async (r) => ({ code: r.status, text: await r.text() }), (e: unknown) => ({ code: 0, text: String(e) }));
    assert.equal(first.code, 503, first.text);
    assert.match(first.text, /draining/);
    const later: number[] = [];
    const poll = (async () => {
      for (;;) {
        const code = await fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.status, () => 0);
        if (code === 0) return;
        later.push(code);
        await pace(SAMPLE_EVERY_MS);
      }
    })();
    const code = await exited;
    const elapsed = Date.now() - t0;
    mux = undefined;
    await poll;
    assert.equal(code, 0, "exit code");
    assert.ok(elapsed < 10_000, `exited after ${elapsed} ms`);
    assert.ok(later.every((c) => c === 503), `/readyz while draining: ${[...new Set(later)].join(",")}`);
    for (const t of timers) clearInterval(t);
    await until("every session closed", () => raws.every((c) => c.closed), 5000);
    const shutdown = raws.filter((c) => /<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/.test(c.text));
    assert.equal(shutdown.length, SESSIONS, "every session got system-shutdown");

    // The store after the exit: sound, and everything queued before the signal is there, once.
    const db = new Database(storeFile);
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    db.close();
    const afterExit = queued();
    assert.deepEqual(before.filter((b) => !afterExit.includes(b)), [], "nothing queued was lost");
    assert.equal(new Set(afterExit).size, afterExit.length, "nothing twice");

    // Back up: dq's login catches up on what the room said meanwhile; bob stops; every message once.
    mux = await spawnMucmuxProcess(configFile, direct);
    const dq2 = await connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: "dq", password: "dqpw", resource: "back" });
    clients.push(dq2);
    // mucmux is back at work for dq: a message bob sends from now on gets queued (live, or by the catch-up).
    const sentAtLogin = sent;
    await until(`d${sentAtLogin + 1} queued after the restart`, () => queued().includes(`d${sentAtLogin + 1}`), 20_000, 100);
    talking = false;
    await bobTalk;
    await waitAfter(bob, 0, (el: Element) => el.getChildText("body") === `d${sent}`, 10_000);
    const all = Array.from({ length: sent }, (_, i) => `d${i + 1}`);
    await until("every room message queued", () => { const q = queued(); return all.every((b) => q.includes(b)); }, 20_000);
    const final = queued();
    assert.equal(final.length, all.length, "each once");
    assert.equal(await mux.stop(), 0);
    mux = undefined;
  } finally {
    talking = false;
    for (const t of timers) clearInterval(t);
    await bobTalk.catch(() => undefined);
    for (const c of raws) c.close();
    await Promise.allSettled(clients.map((c) => c.stop()));
    mux?.kill();
  }
});
