// Exactly once across crashes (SPEC D6b, D7): 50 SIGKILLs of a real mucmux process at random points — during start-up,
// during the anchor's catch-up, while it queues — while bob keeps talking in a room that an absent account
// has MUC offline delivery on for (against real Prosody 0.12, whose room archive gives stanza-ids).
// After every kill the store passes PRAGMA integrity_check and still holds everything it held before; each
// start logs journal_mode=wal, synchronous=FULL and a passed quick_check; at the end every message bob
// sent is queued exactly once — those mucmux never read before a kill, or that came while it was down,
// included (read back from the room's archive) — and is delivered exactly once at the next login. And
// what a session of the account saw live in the room does not come again after a crash.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import Database from "better-sqlite3";
import { xml, type Element } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { spawnMucmuxChild, writeTestConfig } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { freePorts, waitForPort } from "../support/ports.js";
import { join, waitAfter } from "./muc-support.js";
import { metric, offlineBarrier, submit } from "./muc-offline-support.js";
import { elapse, pace, poll, until } from "../support/wait.js";

const KILLS = 50;
/** bob's rate: one room message every this many ms, during the kills and restarts alike. */
const SEND_EVERY_MS = 80;
const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

let prosody: ProsodyServer;
before(async () => { prosody = await startProsody({ muc: true }); });
after(async () => { await prosody?.stop(); });


const bodyOf = (stanza: string) => /<body>([^<]*)<\/body>/.exec(stanza)?.[1] ?? "";

test(`${KILLS} SIGKILLs of mucmux while it queues offline messages: the store stays sound; every message once`, { timeout: 170_000 }, async () => {
  const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
  const configFile = writeTestConfig({
    upstreamPort: prosody.port, ports: { starttls, direct, admin }, logLevel: "info",
    extra: { offline: { maxPerRoom: 5000, maxPerAccount: 5000 } },
  });
  const storeFile = path.join(path.dirname(configFile), "mucmux.sqlite");
  const al = `kq${Date.now().toString(36)}`;
  await prosody.register(al, `${al}pw`);
  const room = `kills-${Date.now().toString(36)}@conference.localhost`;
  const viaMux = (resource: string) =>
    connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: al, password: `${al}pw`, resource, timeoutMs: 15_000 });

  // bob talks to Prosody directly: his messages do not depend on mucmux being up.
  const bob = await connectClient({ service: `xmpp://127.0.0.1:${prosody.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "kills" });
  const open: TestClient[] = [bob];
  let proc = spawnMucmuxChild(configFile);
  let sending = true;
  let sent = 0;
  let sender: Promise<void> = Promise.resolve();
  try {
    await join(bob, room, "bob");
    await waitForPort(direct, { timeoutMs: 20_000 });
    const setup = await viaMux("setup");
    await join(setup, room, al);
    assert.equal((await setup.iq(submit(room, al, "1"))).attrs.type, "result");
    await setup.stop(); // no session left in the room: the flag keeps the anchor there
    await until("the room kept with no session in it", async () => (await metric(admin, "mucmux_rooms_managed", 'state="kept"')) === 1);
    // From here on every message of bob's is for the offline queue, during kills and restarts alike.
    sender = (async () => {
      while (sending) {
        const n = ++sent;
        await bob.send(xml("message", { to: room, type: "groupchat", id: `k${n}` }, xml("body", {}, `k${n}`)));
        await pace(SEND_EVERY_MS);
      }
    })();

    /** The bodies queued for al, as the store file has them (a reader beside mucmux). */
    const queuedBodies = () => {
      const db = new Database(storeFile, { readonly: true });
      try {
        return (db.prepare("SELECT stanza FROM offline_queue WHERE account = ? ORDER BY id").all(`${al}@localhost`) as { stanza: string }[]).map((r) => bodyOf(r.stanza));
      } finally {
        db.close();
      }
    };
    /** The queue of al as the store file has it (a reader beside mucmux, or alone after a kill). */
    const queue = () => {
      const db = new Database(storeFile);
      try {
        const check = db.pragma("integrity_check", { simple: true });
        const rows = db.prepare("SELECT stanza FROM offline_queue WHERE account = ? ORDER BY id").all(`${al}@localhost`) as { stanza: string }[];
        return { check, bodies: rows.map((r) => bodyOf(r.stanza)) };
      } finally {
        db.close();
      }
    };

    const kinds = { startup: 0, traffic: 0 };
    let held: string[] = [];
    for (let i = 0; i < KILLS; i++) {
      if (i > 0) proc = spawnMucmuxChild(configFile);
      const startup = i > 0 && i % 3 === 0;
      if (startup) {
        // A random point of the start-up (compiling, opening and checking the store, binding).
        await elapse(rand(100, 600), "the kill lands at a random point of the start-up");
        kinds.startup++;
      } else {
        await waitForPort(direct, { timeoutMs: 20_000, failed: () => (proc.child.exitCode !== null ? `mucmux exited:\n${proc.output()}` : undefined) });
        const opened = proc.output().split("\n").find((l) => l.includes('"store opened"'));
        assert.ok(opened, `start ${i}: the store's start-up line\n${proc.output()}`);
        const s = JSON.parse(opened) as { journalMode: string; synchronous: number; quickCheck: string };
        assert.deepEqual([s.journalMode, s.synchronous, s.quickCheck], ["wal", 2, "ok"], `start ${i}`);
        // al logs in without presence: the anchor joins the flagged room again and catches up; all is queued.
        const mark = bob.received.length;
        const a = await viaMux(`k${i}`);
        open.push(a);
        // (The first process's anchor is in the room since the setup.)
        if (i > 0) await waitAfter(bob, mark, (el: Element) => el.name === "presence" && el.attrs.from === `${room}/${al}` && el.attrs.type === undefined, 15_000);
        await elapse(rand(100, 600), "the kill lands at a random point of the catch-up and the queuing");
        kinds.traffic++;
      }
      proc.child.kill("SIGKILL");
      await proc.exited;
      proc.checkLog(); // every log line of every start is audited for secrets
      const q = queue();
      assert.equal(q.check, "ok", `integrity after kill ${i}`);
      assert.equal(new Set(q.bodies).size, q.bodies.length, `no message queued twice after kill ${i}`);
      const lost = held.filter((b) => !q.bodies.includes(b));
      assert.deepEqual(lost, [], `everything queued before kill ${i} is still queued`);
      held = q.bodies;
    }
    assert.ok(kinds.startup >= 10 && kinds.traffic >= 30, JSON.stringify(kinds));

    // Last run: the login catches up on the final gap; then bob stops and every message is there once.
    proc = spawnMucmuxChild(configFile);
    await waitForPort(direct, { timeoutMs: 20_000 });
    const last = await viaMux("last");
    open.push(last);
    // The last process is at work: a message bob sends from now on gets queued (live, or by the catch-up).
    const sentAtLogin = sent;
    await until(`k${sentAtLogin + 1} queued by the last process`, () => queuedBodies().includes(`k${sentAtLogin + 1}`), 20_000, 100);
    sending = false;
    await sender;
    const want = new Set<string>();
    for (let n = 1; n <= sent; n++) want.add(`k${n}`);
    // Only what Prosody accepted counts (bob's own reflection of it).
    await waitAfter(bob, 0, (el: Element) => el.getChildText("body") === `k${sent}`, 10_000);
    const reflected = new Set(bob.received.filter((el) => el.name === "message" && el.attrs.type === "groupchat").map((el) => el.getChildText("body") ?? ""));
    const expected = [...want].filter((b) => reflected.has(b));
    assert.ok(expected.length > 300, `bob's messages during the kills: ${expected.length}`);
    let bodies: string[] = [];
    await poll(() => { bodies = queue().bodies; return expected.every((b) => bodies.includes(b)); }, 20_000, 200);
    const missing = expected.filter((b) => !bodies.includes(b));
    assert.deepEqual(missing, [], "every message is queued");
    assert.equal(new Set(bodies).size, bodies.length, "and only once");
    const num = (b: string) => Number(b.slice(1));
    assert.deepEqual(bodies.map(num), [...bodies.map(num)].sort((x, y) => x - y), "in the room's order");
    assert.deepEqual(bodies.filter((b) => !want.has(b)), [], "nothing else");

    // Delivered exactly once, in the order of the room, at the next initial presence.
    const markDelivery = last.received.length;
    await last.send(xml("presence"));
    await waitAfter(last, markDelivery, (el: Element) => el.getChildText("body") === expected.at(-1), 20_000);
    await offlineBarrier(bob, room, al, last); // after the whole queue read of this login
    const got = last.received.slice(markDelivery).filter((el) => el.name === "message" && el.attrs.type === "groupchat").map((el) => el.getChildText("body") ?? "");
    assert.deepEqual(got, bodies, "each queued message written once, in queue order");
    assert.deepEqual([...got].sort(), [...expected].sort());
    proc.child.kill("SIGTERM");
    assert.equal(await proc.exited, 0, proc.output().slice(-2000));
    proc.checkLog();
  } finally {
    sending = false;
    await sender.catch(() => undefined);
    await Promise.allSettled(open.map((c) => c.stop()));
    if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
  }
});

test("a restart after a session of the account saw the room live: the catch-up brings nothing it saw again", { timeout: 60_000 }, async () => {
  const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
  const configFile = writeTestConfig({ upstreamPort: prosody.port, ports: { starttls, direct, admin }, logLevel: "info" });
  const storeFile = path.join(path.dirname(configFile), "mucmux.sqlite");
  const al = `kr${Date.now().toString(36)}`;
  await prosody.register(al, `${al}pw`);
  const room = `seen-${Date.now().toString(36)}@conference.localhost`;
  const viaMux = (resource: string) =>
    connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: al, password: `${al}pw`, resource, timeoutMs: 15_000 });
  const bob = await connectClient({ service: `xmpp://127.0.0.1:${prosody.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "seen" });
  const open: TestClient[] = [bob];
  let proc = spawnMucmuxChild(configFile);
  try {
    await join(bob, room, "bob");
    await waitForPort(direct, { timeoutMs: 20_000 });
    const a = await viaMux("in-room");
    open.push(a);
    await a.send(xml("presence"));
    await join(a, room, al);
    assert.equal((await a.iq(submit(room, al, "1"))).attrs.type, "result");
    // Seen live in the room by al's session.
    for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: room, type: "groupchat", id: `s${i}` }, xml("body", {}, `seen ${i}`)));
    const seen3 = await a.waitFor((el: Element) => el.getChildText("body") === "seen 3", 10_000);
    // The room's catch-up point follows within a second (batched): wait until the store file has it.
    const seenId = seen3.getChildren("stanza-id", "urn:xmpp:sid:0").find((sid) => sid.attrs.by === room)?.attrs.id;
    assert.ok(seenId, "Prosody's room archive gives a stanza-id");
    const catchUpPoint = () => {
      const db = new Database(storeFile, { readonly: true });
      try {
        return (db.prepare("SELECT last_key FROM offline_registrations WHERE account = ? AND room = ?").get(`${al}@localhost`, room) as { last_key: string | null } | undefined)?.last_key;
      } finally {
        db.close();
      }
    };
    await until("the room's catch-up point at 'seen 3'", () => catchUpPoint() === seenId, 10_000, 100);
    proc.child.kill("SIGKILL");
    await proc.exited;
    proc.checkLog(); // every log line of every start is audited for secrets
    // While mucmux is down: missed.
    await bob.send(xml("message", { to: room, type: "groupchat", id: "m1" }, xml("body", {}, "missed 1")));
    proc = spawnMucmuxChild(configFile);
    await waitForPort(direct, { timeoutMs: 20_000 });
    const back = await viaMux("back");
    open.push(back);
    const mark = back.received.length;
    await back.send(xml("presence"));
    await waitAfter(back, mark, (el: Element) => el.getChildText("body") === "missed 1", 15_000);
    await offlineBarrier(bob, room, al, back); // after the catch-up and the queue read of this login
    const bodies = back.received.slice(mark).filter((el) => el.name === "message" && el.attrs.type === "groupchat").map((el) => el.getChildText("body"));
    assert.deepEqual(bodies, ["missed 1"], "only what nobody of the account saw");
    proc.child.kill("SIGTERM");
    assert.equal(await proc.exited, 0);
    proc.checkLog();
  } finally {
    await Promise.allSettled(open.map((c) => c.stop()));
    if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
  }
});
