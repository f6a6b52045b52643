// MUC offline delivery (SPEC D, C5, C12) against real Prosody 0.12 and ejabberd 23.01 through mucmux:
// the Siskin registration flow, live copies to sessions not in the room, the durable queue, its bounds,
// a read-only store, and a real process restart on the same store file.
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { xml, type Element } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { startMucmux, writeTestConfig, type TestMucmux } from "../support/mucmux.js";
import type { TestClient } from "../support/clients.js";
import { freePorts } from "../support/ports.js";
import { makeReadOnly } from "../support/readonly.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { readFileSync } from "node:fs";
import {
  connectVia, countMatching, isGroupchat, join, roomSettled, serverLogReaches, serverRoundTrip, upstreamCopies, waitAfter,
} from "./muc-support.js";
import {
  discoInfo, features, formField, getRegistration, isBarrier, isCopy, metric, offlineBarrier, OFFLINE, REGISTER, removeRegistration,
  roomKept, spawnMucmux, stanzaId, submit, until,
} from "./muc-offline-support.js";
import { untilTime } from "../support/wait.js";

const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const CHATSTATES = "http://jabber.org/protocol/chatstates";
/** Timers fire no earlier than asked, but the two clocks read here may straddle a millisecond. */
const TIMER_SLACK_MS = 5;

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`MUC offline delivery on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const open: TestClient[] = [];
    let n = 0;
    const room = () => `off${++n}-${Date.now().toString(36)}@conference.localhost`;
    /** A fresh account per test, so that no other test's sessions count as "online" for it. */
    const fresh = async () => {
      const user = `al${++n}${Date.now().toString(36).slice(-5)}`;
      await server.register(user, `${user}pw`);
      return user;
    };
    const connect = async (port: number, user: string, resource: string, presence = true) => {
      const c = await connectVia(port, user, resource);
      open.push(c);
      if (presence) await c.send(xml("presence"));
      return c;
    };
    const queued = async (m: TestMucmux, user: string) => (await m.app.store?.pending(`${user}@localhost`, Date.now(), 0, 100)) ?? [];
    const flagOf = async (m: TestMucmux, user: string, r: string) =>
      (await m.app.store?.registrations(`${user}@localhost`))?.find((x) => x.room === r)?.offline ?? false;
    /** bob's three body messages, a chat state and a subject change; returns bob's reflections by body. */
    const bobTalks = async (bob: TestClient, r: string, tag: string) => {
      const mark = bob.received.length;
      for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: r, type: "groupchat", id: `${tag}${i}` }, xml("body", {}, `${tag} ${i}`)));
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("composing", { xmlns: CHATSTATES })));
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("subject", {}, `topic ${tag}`)));
      const reflections = new Map<string, Element>();
      for (let i = 1; i <= 3; i++) reflections.set(`${tag} ${i}`, await waitAfter(bob, mark, isGroupchat(r, `${tag} ${i}`)));
      await waitAfter(bob, mark, (el) => el.getChildText("subject") === `topic ${tag}`);
      return reflections;
    };
    /** SPEC D6: exactly the three bodies, as groupchat from room/bob with bob's stanza-id; no state, no subject. */
    const assertCopies = (c: TestClient, mark: number, r: string, tag: string, reflections: Map<string, Element>, delayed: boolean) => {
      const fromRoom = c.received.slice(mark).filter((el) => el.name === "message" && el.attrs.from?.split("/")[0] === r && el.attrs.type !== "chat");
      assert.deepEqual(fromRoom.map((el) => el.getChildText("body")), [`${tag} 1`, `${tag} 2`, `${tag} 3`], "exactly the bodies, in order, once");
      for (const m of fromRoom) {
        assert.equal(m.attrs.type, "groupchat");
        assert.equal(m.attrs.from, `${r}/bob`);
        assert.equal(m.attrs.to, c.jid);
        assert.equal(stanzaId(m), stanzaId(reflections.get(m.getChildText("body") ?? "")), "stanza-id kept (SPEC D8)");
        if (server.kind === "prosody") assert.ok(stanzaId(m), "Prosody archives the room: there is a stanza-id");
        const delay = m.getChild("delay", "urn:xmpp:delay");
        assert.equal(!!delay, delayed);
        if (delay) {
          assert.equal(delay.attrs.from, r);
          assert.ok(Date.now() - Date.parse(delay.attrs.stamp ?? "") < 120_000, "stamped at receipt");
        }
      }
    };

    before(async () => {
      server = await start();
      mux = await startMucmux({ upstreamPort: server.port, extra: { muc: { lingerSeconds: 2 } } });
    });
    afterEach(async () => { await Promise.allSettled(open.splice(0).map((c) => c.stop())); });
    after(async () => {
      await mux?.stop();
      await server?.stop();
    });

    it("SPEC D1–D4: the Siskin flow: disco, the form (also when registered), SET stores the flag, <remove/> clears it", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect(mux.directPort, "bob", "sk");
      await join(bob, r, "bob");
      // Prosody lets only affiliated users register (strangers get registration-required): bob makes al a member.
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${al}@localhost`, affiliation: "member" }))));
      const a = await connect(mux.directPort, al, "siskin");
      assert.ok(features(await a.iq(discoInfo("conference.localhost"))).includes("http://tigase.org/protocol/muc#offline"), "SPEC D1: service");
      await join(a, r, al);
      assert.equal(features(await a.iq(discoInfo(r))).filter((f) => f === REGISTER).length, 1, "SPEC D1: room, once");
      let form = await getRegistration(a, r);
      assert.equal(formField(form, "FORM_TYPE")?.getChildText("value"), "http://jabber.org/protocol/muc#register");
      assert.equal(formField(form, "muc#register_roomnick")?.getChildText("value"), al);
      assert.equal(formField(form, OFFLINE)?.attrs.type, "boolean");
      assert.equal(formField(form, OFFLINE)?.getChildText("value"), "0");
      const on = () => metric(mux.adminPort, "mucmux_offline_flag_changes_total", 'value="on"');
      const before = await on();
      assert.equal((await a.iq(submit(r, al, "true"))).attrs.type, "result");
      assert.equal(await flagOf(mux, al, r), true, "SPEC D3: stored");
      form = await getRegistration(a, r);
      assert.equal(formField(form, OFFLINE)?.getChildText("value"), "1");
      // SPEC D2: Prosody 0.12 answers a registered user with <registered/> and no form; the client still gets one.
      assert.equal(!!form.getChild("query", REGISTER)?.getChild("registered"), server.kind === "prosody");
      // SPEC D3: the same nick again still stores; 0 and 1 both work; a form without the field leaves the flag.
      await a.iq(submit(r, al, "0"));
      assert.equal(await flagOf(mux, al, r), false);
      await a.iq(submit(r, al, "1"));
      assert.equal(await flagOf(mux, al, r), true);
      if (server.kind === "prosody") await a.iq(submit(r, al));
      else await assert.rejects(a.iq(submit(r, al)), /service-unavailable/, "nothing for mucmux to store: upstream's answer as it is");
      assert.equal(await flagOf(mux, al, r), true);
      assert.equal(await on(), before + 2);
      await assert.rejects(a.iq(submit(r, al, "yes")), /bad-request/);
      // SPEC D4
      assert.equal((await a.iq(removeRegistration(r))).attrs.type, "result");
      assert.equal(await flagOf(mux, al, r), false);
      assert.equal(formField(await getRegistration(a, r), OFFLINE)?.getChildText("value"), "0");
      // SPEC D3: the server never saw the field (its debug log has every stanza it received). The register
      // IQs went out on al's anchor; the server logs that stream in order, so once it logged bob's marker to
      // the anchor, it had logged them.
      await serverLogReaches(server, bob, r, `${al}@localhost`);
      assert.ok(!readFileSync(server.logFile, "utf8").includes("tigase.org/protocol/muc}offline"), "stripped before upstream");
      if (server.kind === "prosody") {
        // SPEC D2: forbidden passes through unchanged (an outcast asks).
        const ev = await fresh();
        await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${ev}@localhost`, affiliation: "outcast" }))));
        const e = await connect(mux.directPort, ev, "outcast");
        await assert.rejects(getRegistration(e, r), /forbidden/);
      }
    });

    it("isolation between accounts: one account can never read, change or delete another's offline registration", async () => {
      const r = room();
      const [al, eve] = [await fresh(), await fresh()];
      const bob = await connect(mux.directPort, "bob", "iso");
      await join(bob, r, "bob");
      for (const u of [al, eve]) {
        await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${u}@localhost`, affiliation: "member" }))));
      }
      const a = await connect(mux.directPort, al, "iso-a");
      const e = await connect(mux.directPort, eve, "iso-e");
      await join(a, r, al);
      await join(e, r, eve);
      await a.iq(submit(r, al, "1"));
      assert.equal(await flagOf(mux, al, r), true);
      // eve reads: she sees her own (unset) flag, never al's
      assert.equal(formField(await getRegistration(e, r), OFFLINE)?.getChildText("value"), "0");
      // eve removes and sets "0": only her own row changes
      await e.iq(removeRegistration(r)).catch(() => undefined);
      await e.iq(submit(r, eve, "0")).catch(() => undefined);
      assert.equal(await flagOf(mux, al, r), true, "al's row untouched");
      const rows = await mux.app.store?.registrations(`${eve}@localhost`);
      assert.ok(!(rows ?? []).some((x) => x.offline), "eve has no flag set");
      assert.deepEqual(await queued(mux, eve), []);
    });

    it("isolation between accounts: one account can never read, change or delete another's queued messages", async () => {
      const r = room();
      const [al, eve] = [await fresh(), await fresh()];
      const bob = await connect(mux.directPort, "bob", "isoq");
      await join(bob, r, "bob");
      for (const u of [al, eve]) {
        await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${u}@localhost`, affiliation: "member" }))));
      }
      // Both register for offline delivery in the same room and go offline; bob's messages are queued for both.
      for (const u of [al, eve]) {
        const c = await connect(mux.directPort, u, "isoq-first");
        await join(c, r, u);
        await c.iq(submit(r, u, "1"));
        await c.stop();
        await roomKept(mux, u, r);
      }
      const reflections = await bobTalks(bob, r, "isoq");
      await until("three queued for each", async () => (await queued(mux, al)).length === 3 && (await queued(mux, eve)).length === 3);
      const alRows = await queued(mux, al);
      const alRegistrations = await mux.app.store?.registrations(`${al}@localhost`);
      assert.equal(new Set([...alRows, ...(await queued(mux, eve))].map((m) => m.id)).size, 6, "one row per account and message");
      // eve logs in: she gets her own three copies (and her rows are deleted), never al's.
      const e1 = await connect(mux.directPort, eve, "isoq-back", false);
      const mark = e1.received.length;
      await e1.send(xml("presence"));
      await waitAfter(e1, mark, isCopy(r, "isoq 3"));
      await offlineBarrier(bob, r, eve, e1); // a private message to eve only: al's queue stays as it is
      assertCopies(e1, mark, r, "isoq", reflections, true);
      await until("eve's queue delivered", async () => (await queued(mux, eve)).length === 0);
      // eve works the room: joins (no history), reads, clears and sets her registration, tries al's nick, chats.
      await join(e1, r, eve, undefined, { maxstanzas: "0" });
      assert.equal(formField(await getRegistration(e1, r), OFFLINE)?.getChildText("value"), "1", "eve reads her own flag");
      await e1.iq(removeRegistration(r)).catch(() => undefined);
      await e1.iq(submit(r, al, "0")).catch(() => undefined);
      await e1.iq(submit(r, eve, "1")).catch(() => undefined);
      await e1.iq(removeRegistration(r)).catch(() => undefined);
      await e1.send(xml("message", { to: r, type: "groupchat" }, xml("composing", { xmlns: CHATSTATES })));
      await e1.send(xml("presence", { to: `${r}/${eve}`, type: "unavailable" }));
      await e1.stop();
      // eve's anchor has left the room: no offline barrier through it. e2's initial presence makes mucmux read
      // eve's queue (the store's "pending" operation, counted on /metrics); what that read wrote to e2 came
      // before the answer to e2's round trip on its stream.
      const reads = () => metric(mux.adminPort, "mucmux_store_operation_duration_seconds_count", 'op="pending"');
      const readsBefore = await reads();
      const e2 = await connect(mux.directPort, eve, "isoq-again");
      await until("e2's login to read eve's queue", async () => (await reads()) > readsBefore);
      await serverRoundTrip(e2);
      for (const c of [e1, e2]) {
        const bodies = c.received.filter((el) => el.name === "message" && el.attrs.from?.split("/")[0] === r).map((el) => el.getChildText("body"));
        assert.deepEqual(bodies.filter((b) => b !== null && b.startsWith("isoq")), c === e1 ? ["isoq 1", "isoq 2", "isoq 3"] : [], "only her own copies, once");
      }
      // al's rows and registration are exactly as they were.
      assert.deepEqual(await queued(mux, al), alRows, "al's queued rows unchanged");
      assert.deepEqual(await mux.app.store?.registrations(`${al}@localhost`), alRegistrations, "al's registration unchanged");
      // al logs in and gets exactly her own three, once.
      const a = await connect(mux.directPort, al, "isoq-back", false);
      const aMark = a.received.length;
      await a.send(xml("presence"));
      await waitAfter(a, aMark, isCopy(r, "isoq 3"));
      await offlineBarrier(bob, r, al, a);
      assertCopies(a, aMark, r, "isoq", reflections, true);
      await until("al's queue delivered", async () => (await queued(mux, al)).length === 0);
    });

    it("SPEC D5/D6a, C12: an online session not in the room gets exactly the body messages and PMs", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect(mux.directPort, "bob", "live");
      await join(bob, r, "bob");
      const a1 = await connect(mux.directPort, al, "left");
      await join(a1, r, al);
      await a1.iq(submit(r, al, "1"));
      const a2 = await connect(mux.directPort, al, "never-joined");
      const bobMark = bob.received.length;
      await a1.send(xml("presence", { to: `${r}/${al}`, type: "unavailable" }));
      await a1.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === `${r}/${al}`);
      const marks = [a1.received.length, a2.received.length];
      const reflections = await bobTalks(bob, r, "live");
      await bob.send(xml("message", { to: `${r}/${al}`, type: "chat" }, xml("body", {}, "psst"), xml("x", { xmlns: "http://jabber.org/protocol/muc#user" })));
      for (const [k, c] of [a1, a2].entries()) {
        await waitAfter(c, marks[k] ?? 0, isCopy(r, "live 3"));
        const pm = await waitAfter(c, marks[k] ?? 0, (el) => el.getChildText("body") === "psst");
        assert.equal(pm.attrs.from, `${r}/bob`);
        assert.equal(pm.attrs.type, "chat");
      }
      // bob's PM took the same path as the bodies (room, anchor, the account's offline order) after them,
      // and whatever the bodies, the chat state and the subject made mucmux write came before it.
      for (const [k, c] of [a1, a2].entries()) assertCopies(c, marks[k] ?? 0, r, "live", reflections, false);
      // SPEC D6c: the server sent each message once, to the anchor, and mucmux sent nothing back
      await serverLogReaches(server, bob, r, `${al}@localhost`);
      assert.deepEqual([1, 2, 3].map((i) => upstreamCopies(server, `${al}@localhost`, `live${i}`)), [1, 1, 1]);
      for (const c of [a1, a2]) assert.equal(countMatching(c, (el) => el.attrs.type === "error"), 0);
      // SPEC C5: kept, so bob never saw the account leave
      assert.equal(countMatching(bob, (el) => el.name === "presence" && el.attrs.from === `${r}/${al}` && el.attrs.type === "unavailable", bobMark), 0);
      assert.ok(await metric(mux.adminPort, "mucmux_offline_messages_delivered_total", 'mode="live"') >= 8);
    });

    it("SPEC D6b: with no session online they are queued and arrive after the next login's initial presence, with <delay>, once", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect(mux.directPort, "bob", "queue");
      await join(bob, r, "bob");
      const a1 = await connect(mux.directPort, al, "gone");
      await join(a1, r, al);
      await a1.iq(submit(r, al, "1"));
      await a1.stop(); // an implicit departure: the flagged room is kept (SPEC C5)
      await roomKept(mux, al, r);
      const reflections = await bobTalks(bob, r, "queued");
      await until("three queued messages", async () => (await queued(mux, al)).length === 3);
      const a2 = await connect(mux.directPort, al, "back", false);
      // mucmux handles a bind within one turn of its event loop (the store is synchronous SQLite), so anything
      // the bind made it write to a2 was written before it read a2's ping, and came before the answer.
      await serverRoundTrip(a2);
      assert.equal(countMatching(a2, (el) => el.name === "message" && el.attrs.from?.split("/")[0] === r), 0, "nothing before the initial presence");
      const mark = a2.received.length;
      await a2.send(xml("presence"));
      await waitAfter(a2, mark, isCopy(r, "queued 3"));
      await offlineBarrier(bob, r, al, a2);
      assertCopies(a2, mark, r, "queued", reflections, true);
      await until("the queue is empty once written", async () => (await queued(mux, al)).length === 0);
      const a3 = await connect(mux.directPort, al, "again");
      await offlineBarrier(bob, r, al, a3); // after a3's initial presence and the queue read it caused
      assert.equal(countMatching(a3, (el) => el.name === "message" && el.attrs.from?.split("/")[0] === r && !isBarrier(el)), 0, "they arrive once");
    });

    it("SPEC C5: clearing the flag while no session is in the room lets the anchor leave after the linger", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect(mux.directPort, "bob", "release");
      await join(bob, r, "bob");
      const a1 = await connect(mux.directPort, al, "release1");
      await join(a1, r, al);
      await a1.iq(submit(r, al, "1"));
      await a1.stop();
      await roomKept(mux, al, r); // a linger would have started by now
      // Past lingerSeconds (2): only the flag keeps the room. A linger that ends finds the room kept and sends
      // nothing, so there is no event to wait for; the time is the behaviour under test.
      await untilTime(Date.now() + 2000 + TIMER_SLACK_MS, "muc.lingerSeconds (2) has run out");
      const leaves = () => countMatching(bob, (el) => el.name === "presence" && el.attrs.from === `${r}/${al}` && el.attrs.type === "unavailable");
      const a2 = await connect(mux.directPort, al, "release2");
      await roomSettled(r, a2, bob); // a leave on the anchor would have reached bob before his answer
      assert.equal(leaves(), 0, "kept by the flag");
      await a2.iq(submit(r, al, "0"));
      await until("the anchor left", () => leaves() === 1, 6000);
      const acct = mux.app.accounts.get(`${al}@localhost`);
      assert.equal(acct === undefined ? undefined : mux.app.views.rooms.get(acct, r), undefined);
    });

    it("SPEC D6b bounds: per-room and per-account caps and the TTL drop with a metric; the room goes on for others", async () => {
      const capped = await startMucmux({ upstreamPort: server.port, extra: { offline: { maxPerRoom: 2, maxPerAccount: 3, ttlSeconds: 3 } } });
      try {
        const [r1, r2] = [room(), room()];
        const al = await fresh();
        const bob = await connect(capped.directPort, "bob", "caps");
        const carol = await connect(capped.directPort, "carol", "caps");
        for (const r of [r1, r2]) await join(bob, r, "bob");
        await join(carol, r1, "carol");
        const a = await connect(capped.directPort, al, "caps");
        for (const r of [r1, r2]) {
          await join(a, r, al);
          await a.iq(submit(r, al, "1"));
        }
        await a.stop();
        for (const r of [r1, r2]) await roomKept(capped, al, r);
        const count = (what: string, labels?: string) => metric(capped.adminPort, what, labels);
        for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: r1, type: "groupchat" }, xml("body", {}, `r1 ${i}`)));
        for (let i = 1; i <= 3; i++) await carol.waitFor(isGroupchat(r1, `r1 ${i}`)); // a full queue blocks nobody
        await until("r1 queued", async () => (await count("mucmux_offline_messages_queued_total")) === 3);
        for (let i = 1; i <= 2; i++) await bob.send(xml("message", { to: r2, type: "groupchat" }, xml("body", {}, `r2 ${i}`)));
        await until("r2 queued", async () => (await count("mucmux_offline_messages_queued_total")) === 5);
        const lastQueued = Date.now(); // every queued message was received before this
        assert.equal(await count("mucmux_offline_messages_dropped_total", 'reason="cap_room"'), 1);
        assert.equal(await count("mucmux_offline_messages_dropped_total", 'reason="cap_account"'), 1);
        assert.deepEqual((await queued(capped, al)).map((m) => /<body>([^<]*)</.exec(m.stanza)?.[1]), ["r1 3", "r2 1", "r2 2"]);
        assert.equal(await count("mucmux_offline_queue_depth"), 3);
        await untilTime(lastQueued + 3000, "offline.ttlSeconds (3): every queued message has expired");
        const back = await connect(capped.directPort, al, "late");
        await until("expired ones counted", async () => (await count("mucmux_offline_messages_dropped_total", 'reason="ttl"')) === 3);
        await offlineBarrier(bob, r1, al, back); // after the queue read of back's login
        assert.equal(countMatching(back, (el) => el.name === "message" && !!el.getChild("body") && !isBarrier(el)), 0, "expired messages are not delivered");
        await carol.send(xml("message", { to: r1, type: "groupchat" }, xml("body", {}, "still here")));
        await bob.waitFor(isGroupchat(r1, "still here"));
      } finally {
        await Promise.allSettled(open.splice(0).map((c) => c.stop()));
        await capped.stop();
      }
    });

    it("store read-only at runtime: joined sessions are untouched, queuing errors are counted, nothing stored is lost", async () => {
      const ro = await startMucmux({ upstreamPort: server.port });
      const file = path.join(path.dirname(ro.configFile), "mucmux.sqlite");
      let restore: (() => void) | undefined;
      try {
        const r = room();
        const al = await fresh();
        const bob = await connect(ro.directPort, "bob", "ro");
        const carol = await connect(ro.directPort, "carol", "ro");
        await join(bob, r, "bob");
        await join(carol, r, "carol");
        const a = await connect(ro.directPort, al, "ro");
        await join(a, r, al);
        await a.iq(submit(r, al, "1"));
        await a.stop();
        await roomKept(ro, al, r);
        await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "stored before")));
        await until("one queued", async () => (await queued(ro, al)).length === 1);
        restore = makeReadOnly(file);
        if (!restore) ro.app.store?.close(); // no chattr here: the store is simply gone
        for (const body of ["during 1", "during 2"]) await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, body)));
        for (const body of ["during 1", "during 2"]) await carol.waitFor(isGroupchat(r, body));
        await carol.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "carol answers")));
        await bob.waitFor(isGroupchat(r, "carol answers"));
        // three messages (bob's two, carol's answer) could not be queued for the absent account
        await until("store errors counted", async () => (await metric(ro.adminPort, "mucmux_offline_messages_dropped_total", 'reason="store_error"')) === 3);
        assert.equal(await metric(ro.adminPort, "mucmux_store_errors_total", 'op="enqueue"'), 3);
        if (restore) {
          // Reads still work: the stored message arrives; its removal fails and is kept for later.
          const a2 = await connect(ro.directPort, al, "ro2");
          await a2.waitFor(isCopy(r, "stored before"));
          restore();
          restore = undefined;
          const a3 = await connect(ro.directPort, al, "ro3");
          await until("the removal retried", async () => (await queued(ro, al)).length === 0);
          assert.equal(countMatching(a3, isCopy(r, "stored before")), 0, "once, even though its removal failed at first");
        } else {
          const again = new SqliteStore(file);
          assert.equal((await again.pending(`${al}@localhost`, Date.now(), 0, 10)).length, 1, "nothing stored is lost");
          again.close();
        }
      } finally {
        restore?.();
        await Promise.allSettled(open.splice(0).map((c) => c.stop()));
        await ro.stop();
      }
    });

    it("SPEC D7: a real mucmux process restart between bob's messages and the login: the queued messages arrive once", async () => {
      const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
      const configFile = writeTestConfig({ upstreamPort: server.port, ports: { starttls, direct, admin } });
      let proc = await spawnMucmux(configFile, direct);
      try {
        const r = room();
        const al = await fresh();
        const bob = await connect(direct, "bob", "restart");
        await join(bob, r, "bob");
        const a = await connect(direct, al, "restart");
        await join(a, r, al);
        await a.iq(submit(r, al, "1"));
        await a.stop();
        await until("the room kept with no session in it", async () => (await metric(admin, "mucmux_rooms_managed", 'state="kept"')) === 1);
        const reflections = await bobTalks(bob, r, "restart");
        await until("three queued", async () => (await metric(admin, "mucmux_offline_queue_depth")) === 3);
        assert.equal(await proc.stop(), 0, proc.output());
        proc = await spawnMucmux(configFile, direct);
        const a2 = await connect(direct, al, "after", false);
        const mark = a2.received.length;
        await a2.send(xml("presence"));
        await waitAfter(a2, mark, isCopy(r, "restart 3"), 15_000);
        // SPEC D7: the login brought the anchor back into the flagged room: new messages reach a2 live.
        const bob2 = await connect(direct, "bob", "restart2");
        await join(bob2, r, "bob");
        await bob2.waitFor((el) => el.name === "presence" && el.attrs.from === `${r}/${al}`);
        await offlineBarrier(bob2, r, al, a2); // after the queue read and the archive catch-up of a2's login
        assertCopies(a2, mark, r, "restart", reflections, true);
        await bob2.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "after the restart")));
        await a2.waitFor(isCopy(r, "after the restart"));
        const a3 = await connect(direct, al, "third");
        await offlineBarrier(bob2, r, al, a3);
        assert.equal(countMatching(a3, (el) => el.name === "message" && el.attrs.from?.split("/")[0] === r && !isBarrier(el)), 0, "once");
      } finally {
        await Promise.allSettled(open.splice(0).map((c) => c.stop()));
        proc.kill();
      }
    });
  });
}

suite("Prosody 0.12", () => startProsody({ muc: true, debugLog: true }));
suite("ejabberd 23.01", () => startEjabberd({ muc: true, debugLog: true }));
