// The body of the cluster integration tests (SPEC H1–H5), run against Prosody 0.12 (cluster.test.ts) and ejabberd
// 23.01 (cluster-ejabberd.test.ts): three mucmux replicas sharing PostgreSQL in front of one server, the test's
// round-robin balancer in front of the replicas' client ports (test/support/cluster.ts). The account's devices log in
// through the balancer (or straight at one replica); bob (who talks) and carol (who watches) are on the server
// directly, so what they see does not depend on mucmux. Each test starts its own cluster: lease counts then speak of
// the test's own account only.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { xml, type Element } from "@xmpp/xml";
import type { XmppTestServer } from "../support/server.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { TEST_TMP } from "../support/certs.js";
import { startCluster, withReplicaLogs, type TestCluster } from "../support/cluster.js";
import { elapse, pace, poll, until } from "../support/wait.js";
import { countMatching, isGroupchat, join, MUC_USER, roomRoundTrip, roomSettled, settledUpstreamCopies, waitAfter } from "./muc-support.js";
import { formField, getRegistration, isBarrier, isCopy, offlineBarrier, OFFLINE, submit } from "./muc-offline-support.js";

const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const HANDOFFS_OUT_OK = ['mucmux_cluster_handoffs_total', 'direction="out",result="ok"'] as const;
const HANDOFFS_IN_OK = ['mucmux_cluster_handoffs_total', 'direction="in",result="ok"'] as const;
/** cluster.leaseSeconds in these tests. */
const LEASE_SECONDS = 2;
/** A takeover after a kill: the lease time, plus the time for a login to be routed and a lease taken (SPEC H2, H5). */
const TAKEOVER_MARGIN_MS = 3000;
const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** Runs one step of a test; a failure names the step. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
  }
}

export interface ClusterSuiteOptions {
  /** SIGKILLs in the kill loop (test c). */
  kills: number;
}

export function clusterSuite(name: string, start: () => Promise<XmppTestServer>, o: ClusterSuiteOptions): void {
  describe(`three replicas sharing PostgreSQL, behind a balancer, in front of ${name}`, () => {
    let server: XmppTestServer;
    let cluster: TestCluster | undefined;
    let keyDir: string;
    let keepKeyFile: string;
    const open: TestClient[] = [];
    let n = 0;
    const room = () => `cl${++n}-${Date.now().toString(36)}@conference.localhost`;
    /** A fresh account per test (the `<user>pw` convention keeps its password out of every log). */
    const fresh = async () => {
      const user = `cl${++n}${randomBytes(3).toString("hex")}`;
      await server.register(user, `${user}pw`);
      return user;
    };
    const connectAt = async (port: number, user: string, resource: string, presence: boolean) => {
      const c = await connectClient({ service: `xmpps://127.0.0.1:${port}`, domain: "localhost", username: user, password: `${user}pw`, resource, timeoutMs: 20_000 });
      open.push(c);
      if (presence) {
        await c.send(xml("presence"));
        // The server reflects initial presence to the resource that sent it (RFC 6121 §4.2.2): by then the owner
        // has passed it on, so it counts this device as available (a handed-over stream has one hop more, and a
        // room message sent meanwhile from the server could otherwise overtake it).
        await c.waitFor((el) => el.name === "presence" && el.attrs.from === c.jid && el.attrs.type === undefined, 10_000);
      }
      return c;
    };
    /** A device of `user` through the balancer. */
    const viaLb = (c: TestCluster, user: string, resource: string, presence = true) => connectAt(c.balancer.port, user, resource, presence);
    /** bob or carol, on the server directly (not through mucmux), joined to `r`. */
    const onServer = async (user: string, resource: string, r: string) => {
      const c = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: user, password: `${user}pw`, resource });
      open.push(c);
      await c.send(xml("presence"));
      await join(c, r, user);
      return c;
    };
    const makeMember = (owner: TestClient, r: string, user: string) =>
      owner.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${user}@localhost`, affiliation: "member" }))));
    const newCluster = async () => {
      cluster = await startCluster({
        server, leaseSeconds: LEASE_SECONDS,
        extra: {
          anchors: { keepKeyFile },
          muc: { lingerSeconds: 2 },
          offline: { maxPerRoom: 20_000, maxPerAccount: 20_000 },
        },
      });
      return cluster;
    };
    /** Runs a test on its own cluster; on failure the replicas' log tails go to stderr. */
    const onCluster = (body: (c: TestCluster) => Promise<void>) => async () => {
      const c = await newCluster();
      try {
        await withReplicaLogs(() => c, () => body(c));
      } finally {
        await Promise.allSettled(open.splice(0).map((x) => x.stop()));
        cluster = undefined;
        await c.stop();
      }
    };
    const groupchatBodies = (c: TestClient, r: string, from = 0) => c.received.slice(from)
      .filter((el) => el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from?.split("/")[0] === r && el.getChild("body") && !isBarrier(el))
      .map((el) => el.getChildText("body") ?? "");
    const dups = (bodies: string[]) => [...new Set(bodies.filter((b, i) => bodies.indexOf(b) !== i))];

    before(async () => {
      server = await start();
      mkdirSync(TEST_TMP, { recursive: true });
      keyDir = mkdtempSync(path.join(TEST_TMP, "cluster-keep-"));
      keepKeyFile = path.join(keyDir, "keep.key");
      writeFileSync(keepKeyFile, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
    });
    after(async () => {
      await Promise.allSettled(open.splice(0).map((c) => c.stop()));
      await cluster?.stop();
      await server?.stop();
      if (process.env.MUCMUX_TEST_KEEP !== "1") rmSync(keyDir, { recursive: true, force: true });
    });

    it("SPEC H1/H2: three devices through the balancer land on three replicas and are served by one owner: one anchor, one upstream copy per room message", { timeout: 120_000 }, onCluster(async (c) => {
      const al = await fresh();
      const r = room();
      const bob = await onServer("bob", "a-talk", r);
      const counts0 = c.balancer.counts();
      const out0 = await c.metricSum(...HANDOFFS_OUT_OK);
      const in0 = await c.metricSum(...HANDOFFS_IN_OK);
      const devices: TestClient[] = [];
      for (let k = 1; k <= 3; k++) devices.push(await viaLb(c, al, `dev${k}`));
      const counts1 = c.balancer.counts();
      assert.deepEqual(counts1.map((x, i) => x - (counts0[i] ?? 0)), [1, 1, 1], "one device's connection at each replica");
      assert.equal(await c.metricSum(...HANDOFFS_OUT_OK) - out0, 2, "two logins handed to the owner");
      assert.equal(await c.metricSum(...HANDOFFS_IN_OK) - in0, 2, "and taken by it");
      const held = await c.metricEach("mucmux_cluster_leases_held");
      assert.deepEqual(held.filter((h) => (h ?? 0) > 0), [1], `one replica holds the account's lease: ${JSON.stringify(held)}`);
      assert.ok(await c.metricSum("mucmux_cluster_pipes_open") >= 2, "the entry replicas carry the two handed-over devices");

      const mark = bob.received.length;
      for (const d of devices) await join(d, r, al);
      await roomSettled(r, ...devices, bob);
      assert.equal(await c.metricSum("mucmux_anchors_open"), 1, "one anchor across the replicas");
      // The room as the server reports it to bob (the room's owner, who sees real JIDs): one occupant of al's, never left.
      const alPresences = bob.received.slice(mark).filter((el) => el.name === "presence" && el.attrs.from === `${r}/${al}`);
      assert.ok(alPresences.some((p) => p.attrs.type === undefined), "al joined");
      assert.equal(alPresences.filter((p) => p.attrs.type === "unavailable").length, 0, "al never left");
      const jids = new Set(alPresences.map((p) => p.getChild("x", MUC_USER)?.getChild("item")?.attrs.jid).filter(Boolean));
      assert.equal(jids.size, 1, `one session of al's in the room upstream (the JIDs bob was shown): ${[...jids].join(", ")}`);

      for (let i = 1; i <= 3; i++) {
        const body = `to three devices ${i}`;
        const id = `three${i}-${r.split("@")[0]}`;
        const marks = devices.map((d) => d.received.length);
        await bob.send(xml("message", { to: r, type: "groupchat", id }, xml("body", {}, body)));
        for (const [k, d] of devices.entries()) await waitAfter(d, marks[k] ?? 0, isGroupchat(r, body), 10_000);
        await roomSettled(r, ...devices); // a second copy would have come before the answers
        devices.forEach((d, k) => assert.equal(countMatching(d, isGroupchat(r, body), marks[k]), 1, `device ${k + 1} got "${body}" once`));
        assert.equal(await settledUpstreamCopies(server, bob, r, `${al}@localhost`, id), 1, "the server sent it once to al's account");
        assert.equal(await settledUpstreamCopies(server, bob, r, "bob@localhost", id), 1, "and once to bob (the count works)");
      }
    }));

    it("SPEC H1/H3: the offline flag set through one replica holds through the others; messages for nobody are delivered once at a login through another replica", { timeout: 120_000 }, onCluster(async (c) => {
      const al = await fresh();
      const r = room();
      const bob = await onServer("bob", "b-talk", r);
      await makeMember(bob, r, al);
      const a1 = await connectAt(c.directPort(0), al, "flag", true);
      await join(a1, r, al);
      assert.equal((await a1.iq(submit(r, al, "1"))).attrs.type, "result");
      assert.deepEqual(await c.leaseHolders(), [0], "the replica the login arrived at owns the account");
      await a1.stop(); // no device left: the flag keeps the anchor in the room
      for (const i of [1, 2]) {
        const x = await connectAt(c.directPort(i), al, `form${i + 1}`, false);
        const form = await getRegistration(x, r);
        assert.equal(formField(form, OFFLINE)?.getChildText("value"), "1", `the flag read back through replica ${i + 1}`);
        await x.stop();
      }
      // No device online: bob's messages are queued.
      const bobMark = bob.received.length;
      for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: r, type: "groupchat", id: `q${i}` }, xml("body", {}, `queued ${i}`)));
      for (let i = 1; i <= 3; i++) await waitAfter(bob, bobMark, isGroupchat(r, `queued ${i}`));
      await until("the server to have sent the three to al's anchor", async () =>
        (await settledUpstreamCopies(server, bob, r, `${al}@localhost`, "q3")) === 1, 20_000, 200);
      const back = await connectAt(c.directPort(2), al, "back", false);
      const mark = back.received.length;
      await back.send(xml("presence"));
      await waitAfter(back, mark, isCopy(r, "queued 3"), 15_000);
      await offlineBarrier(bob, r, al, back); // after the whole queue read of this login
      assert.deepEqual(groupchatBodies(back, r, mark), ["queued 1", "queued 2", "queued 3"], "each once, in order");
      const again = await connectAt(c.directPort(1), al, "again", true);
      await offlineBarrier(bob, r, al, again);
      assert.deepEqual(groupchatBodies(again, r), [], "not again at the next login");
      assert.equal(countMatching(bob, (el) => el.name === "presence" && el.attrs.from === `${r}/${al}` && el.attrs.type === "unavailable", bobMark), 0,
        "the kept anchor never left");
    }));

    it(`SPEC H5: SIGKILL of the owner: taken over within the lease time; then ${o.kills} kills during room traffic, each message delivered once`, { timeout: 60_000 + o.kills * 12_000 }, onCluster(async (c) => {
      const al = await fresh();
      const r = room();
      const bob = await onServer("bob", "c-talk", r);
      await makeMember(bob, r, al);
      const setup = await viaLb(c, al, "setup");
      await join(setup, r, al);
      assert.equal((await setup.iq(submit(r, al, "1"))).attrs.type, "result");
      await setup.stop(); // no device: every message from now on is queued (anchors.keepKeyFile keeps the anchor)
      await until("the room kept with no session of al's in it", async () => (await c.metricSum("mucmux_rooms_managed", 'state="kept"')) === 1);
      let sending = true;
      let sent = 0;
      const sender = (async () => {
        while (sending) {
          const k = ++sent;
          await bob.send(xml("message", { to: r, type: "groupchat", id: `k${k}` }, xml("body", {}, `k${k}`)));
          await pace(100);
        }
      })();
      const devices: TestClient[] = [];
      try {
        const owner = async () => {
          let holders: number[] = [];
          await until("exactly one replica to own the account", async () => (holders = await c.leaseHolders()).length === 1, 20_000, 50);
          return holders[0] ?? -1;
        };
        // The first kill, timed: a login through the balancer succeeds and a surviving replica holds the lease.
        let victim = await owner();
        await until("a few messages said", () => sent >= 5, 10_000);
        const killedAt = Date.now();
        await c.kill(victim);
        const bound = LEASE_SECONDS * 1000 + TAKEOVER_MARGIN_MS;
        devices.push(await viaLb(c, al, "after-kill", false));
        const loggedInMs = Date.now() - killedAt;
        assert.ok(loggedInMs <= bound, `a login through the balancer ${loggedInMs} ms after the kill (bound ${bound} ms)`);
        const owned = await poll(async () => (await c.leaseHolders()).length === 1, Math.max(0, killedAt + bound - Date.now()), 50);
        assert.ok(owned, `a surviving replica owns the account within ${bound} ms of the kill`);
        await c.restart(victim);

        // The loop: kill the owner (now and then another replica) at random points, restart it, again.
        const kinds = { owner: 0, other: 0, afterLogin: 0, startup: 0 };
        for (let i = 1; i < o.kills; i++) {
          await Promise.all(Array.from({ length: c.size }, (_, k) => (c.running(k) ? undefined : c.ready(k))));
          victim = await owner();
          if (i % 5 === 0) {
            victim = (victim + rand(1, c.size - 1)) % c.size; // a replica that owns nothing: it carries pipes at most
            kinds.other++;
          } else {
            kinds.owner++;
          }
          if (i % 3 === 0) {
            // A device logs in (no presence: everything stays queued) and the kill lands during what that starts.
            devices.push(await viaLb(c, al, `k${i}`, false));
            kinds.afterLogin++;
          }
          await elapse(rand(0, 800), "the kill lands at a random point of the room traffic, the catch-up or a login");
          await c.kill(victim);
          c.spawn(victim);
          if (i % 4 === 0) {
            await elapse(rand(200, 900), "a second kill lands during the restarted replica's start-up");
            await c.kill(victim);
            c.spawn(victim);
            kinds.startup++;
          }
        }
        await Promise.all(Array.from({ length: c.size }, (_, k) => (c.running(k) ? undefined : c.ready(k))));
        assert.ok(o.kills < 5 || kinds.owner > kinds.other, JSON.stringify(kinds));
        await owner();

        // Bob stops; everything he said is delivered once at the next login with presence, through the balancer.
        sending = false;
        await sender;
        await waitAfter(bob, 0, isGroupchat(r, `k${sent}`), 10_000);
        const expected = [...new Set(bob.received.filter((el) => el.name === "message" && el.attrs.type === "groupchat" &&
          el.attrs.from?.split("/")[0] === r && /^k\d+$/.test(el.getChildText("body") ?? "")).map((el) => el.getChildText("body") ?? ""))];
        assert.ok(expected.length >= o.kills, `bob's messages during the kills: ${expected.length}`);
        await Promise.allSettled(devices.map((d) => d.stop()));
        const last = await viaLb(c, al, "last", false);
        const mark = last.received.length;
        await last.send(xml("presence"));
        let got: string[] = [];
        await poll(() => { got = groupchatBodies(last, r, mark); return expected.every((b) => got.includes(b)); }, 60_000, 200);
        await offlineBarrier(bob, r, al, last); // after the whole queue read and catch-up of this login
        got = groupchatBodies(last, r, mark);
        const problems: string[] = [];
        const missing = expected.filter((b) => !got.includes(b));
        if (missing.length > 0) problems.push(`never delivered (${got.length} copies for ${expected.length} said): ${missing.join(" ")}`);
        for (const b of dups(got)) {
          problems.push(`${b} delivered more than once:\n${last.received.slice(mark).filter(isGroupchat(r, b)).map((el) => `  ${el.toString().slice(0, 500)}`).join("\n")}`);
        }
        const extra = got.filter((b) => !expected.includes(b));
        if (extra.length > 0) problems.push(`delivered, never said: ${extra.join(" ")}`);
        assert.deepEqual(problems, [], `${JSON.stringify(kinds)}\n${problems.join("\n")}`);
      } finally {
        sending = false;
        await sender.catch(() => undefined);
      }
    }));

    it("SPEC H4: a rolling restart (SIGTERM, start, each replica in turn) with devices connected: the room sees no leave; every message reaches the account, none twice", { timeout: 240_000 }, onCluster(async (c) => {
      const al = await fresh();
      const r = room();
      const bob = await onServer("bob", "d-talk", r);
      await makeMember(bob, r, al);
      const carol = await onServer("carol", "d-watch", r);
      const setup = await viaLb(c, al, "setup");
      await join(setup, r, al);
      assert.equal((await setup.iq(submit(r, al, "1"))).attrs.type, "result");
      await setup.stop();

      /** A device that logs in again (through the balancer) whenever its stream ends, like a phone client. */
      class Device {
        sessions: TestClient[] = [];
        current: TestClient | undefined;
        joined = false;
        stopped = false;
        private loop: Promise<void> = Promise.resolve();
        constructor(readonly resource: string) {}
        start(): void { this.loop = this.run(); }
        private async run(): Promise<void> {
          while (!this.stopped) {
            let s: TestClient;
            try {
              s = await viaLb(c, al, this.resource, false);
            } catch {
              await pace(200); // every replica is busy restarting or draining: try again
              continue;
            }
            this.sessions.push(s);
            this.current = s;
            await s.send(xml("presence")).catch(() => undefined); // what it gets from here on counts, whatever happens next
            const gone = new Promise<void>((res) => s.xmpp.on("disconnect", () => res()));
            try {
              await join(s, r, al, undefined, { maxstanzas: "0" }); // a client that rejoins asks for no history
              this.joined = true;
            } catch {
              /* the stream ended during the join: log in again */
            }
            await gone;
            this.joined = false;
            this.current = undefined;
          }
        }
        async stop(): Promise<void> {
          this.stopped = true;
          await this.current?.stop();
          await this.loop;
        }
      }
      const devices = [new Device("phone"), new Device("laptop")];
      for (const d of devices) d.start();
      const allJoined = () => until("every device logged in and in the room", () => devices.every((d) => d.joined), 60_000, 50);
      await allJoined();
      const carolMark = carol.received.length;

      let sending = true;
      let sent = 0;
      const sender = (async () => {
        while (sending) {
          const k = ++sent;
          await bob.send(xml("message", { to: r, type: "groupchat", id: `rr${k}` }, xml("body", {}, `rr${k}`)));
          await pace(150);
        }
      })();
      const codes: (number | null)[] = [];
      try {
        for (let i = 0; i < c.size; i++) {
          codes.push(await step(`SIGTERM to replica ${i + 1}`, () => c.term(i)));
          await step(`the restart of replica ${i + 1}`, () => c.restart(i));
          await step(`the devices back after replica ${i + 1}'s restart`, () => allJoined());
        }
      } finally {
        sending = false;
        await sender.catch(() => undefined);
      }
      assert.deepEqual(codes, codes.map(() => 0), "each replica exits 0 after SIGTERM");
      await waitAfter(bob, 0, isGroupchat(r, `rr${sent}`), 10_000);
      const expected = [...new Set(bob.received.filter((el) => el.name === "message" && el.attrs.type === "groupchat" &&
        el.attrs.from?.split("/")[0] === r && /^rr\d+$/.test(el.getChildText("body") ?? "")).map((el) => el.getChildText("body") ?? ""))];
      // Settle: the devices are in the room (what was queued while none was online came at their initial presence,
      // before their join); the room's answers through the anchor come after every live delivery before them.
      await allJoined();
      for (const d of devices) await step(`the room round trip of device ${d.resource}`, () => (d.current ? roomRoundTrip(d.current, r) : Promise.resolve()));
      await step("carol's room round trip", () => roomRoundTrip(carol, r));
      const reconnects = devices.reduce((a, d) => a + d.sessions.length - 1, 0);
      const shutdowns = devices.flatMap((d) => d.sessions).filter((s) => s.errors.some((e) => /system-shutdown/.test(String(e.message ?? e)))).length;
      for (const d of devices) await d.stop();

      const reached = new Set(devices.flatMap((d) => d.sessions.flatMap((s) => groupchatBodies(s, r))));
      assert.ok(reconnects >= 1, "the devices were disconnected and logged in again");
      assert.ok(shutdowns >= 1, "a draining owner ended a device's stream with system-shutdown");
      // Every property is checked; the failure lists each one that does not hold.
      const problems: string[] = [];
      const leaves = carol.received.slice(carolMark).filter((el) => el.name === "presence" && el.attrs.from === `${r}/${al}` && el.attrs.type === "unavailable");
      if (leaves.length > 0) problems.push(`the room showed carol al's nick leaving:\n${leaves.map((el: Element) => `  ${el.toString()}`).join("\n")}`);
      const missing = expected.filter((b) => !reached.has(b));
      if (missing.length > 0) problems.push(`said during the restart and never reached the account (${expected.length} said): ${missing.join(" ")}`);
      for (const d of devices) {
        const bodies = d.sessions.flatMap((s) => groupchatBodies(s, r));
        // Each copy of a repeated message, with the session (in login order) that got it and how.
        for (const b of dups(bodies)) {
          problems.push(`device ${d.resource} got ${b} more than once:\n${d.sessions.flatMap((s, k) => s.received.filter(isGroupchat(r, b))
            .map((el) => `  session ${k + 1} of ${d.sessions.length} (stanza ${s.received.indexOf(el) + 1} of ${s.received.length}): ${el.toString().slice(0, 500)}`)).join("\n")}`);
        }
      }
      assert.deepEqual(problems, [], problems.join("\n"));
    }));
  });
}
