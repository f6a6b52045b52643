// Account-level MUC (SPEC A7–A9, B, C) against real Prosody 0.12 and ejabberd 23.01, with @xmpp/client
// sessions through mucmux. Upstream copies are counted from the server's own debug log.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import type { TestClient } from "../support/clients.js";
import {
  codesOf, connectVia, countMatching, isGroupchat, isSelfPresence, isSubject, join, joinPresence, roomSettled,
  serverRoundTrip, settledUpstreamCopies, upstreamCopies, waitAfter, MUC_USER,
} from "./muc-support.js";
import { until, untilTime } from "../support/wait.js";

/** Timers fire no earlier than asked, but the two clocks read here may straddle a millisecond. */
const TIMER_SLACK_MS = 5;

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`account-level MUC on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const open: TestClient[] = [];
    let n = 0;
    const room = () => `room${++n}-${Date.now().toString(36)}@conference.localhost`;
    const connect = async (user: string, resource: string) => {
      const c = await connectVia(mux.directPort, user, resource);
      open.push(c);
      await c.send(xml("presence"));
      return c;
    };

    before(async () => {
      server = await start();
      mux = await startMucmux({ upstreamPort: server.port, extra: { muc: { lingerSeconds: 2 } } });
    });
    after(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
    });

    it("SPEC B2/B4/C1: three alice sessions are one occupant; each room message reaches each session once and upstream once", async () => {
      const r = room();
      const bob = await connect("bob", "b1");
      await join(bob, r, "bob");
      const a = [await connect("alice", "a1"), await connect("alice", "a2"), await connect("alice", "a3")];
      for (const c of a) await join(c, r, "alice");
      // bob sees exactly one occupant 'alice' (one join presence, no leaves): whatever the joins made the
      // room broadcast reached bob before the answers to these round trips (alice's go through the anchor).
      await roomSettled(r, ...a, bob);
      const alicePresences = bob.received.filter((el) => el.name === "presence" && el.attrs.from === `${r}/alice`);
      assert.equal(alicePresences.filter((p) => p.attrs.type !== "unavailable").length >= 1, true);
      assert.equal(alicePresences.filter((p) => p.attrs.type === "unavailable").length, 0);

      for (let i = 0; i < 3; i++) {
        const body = `hello ${i} ${r}`;
        const id = `m${i}-${r.split("@")[0]}`;
        const marks = a.map((c) => c.received.length);
        await bob.send(xml("message", { to: r, type: "groupchat", id }, xml("body", {}, body)));
        for (const c of a) await waitAfter(c, marks[a.indexOf(c)] ?? 0, isGroupchat(r, body));
        await roomSettled(r, ...a); // a second copy would have come before the answer
        a.forEach((c, k) => assert.equal(countMatching(c, isGroupchat(r, body), marks[k]), 1, `session ${k} got it once`));
        assert.equal(await settledUpstreamCopies(server, bob, r, "alice@localhost", id), 1, "the server sent it once to alice's account");
        assert.equal(await settledUpstreamCopies(server, bob, r, "bob@localhost", id), 1, "and once to bob (the count works)");
      }
      // SPEC C1: the reflection of a session's own message goes to every joined session, the sender included.
      const marks = a.map((c) => c.received.length);
      await a[0]!.send(xml("message", { to: r, type: "groupchat", id: "own1" }, xml("body", {}, `from a1 ${r}`)));
      for (const [k, c] of a.entries()) {
        const m = await waitAfter(c, marks[k] ?? 0, isGroupchat(r, `from a1 ${r}`));
        assert.equal(m.attrs.to, c.jid);
        if (k === 0) assert.equal(m.attrs.id, "own1");
      }
      await bob.waitFor(isGroupchat(r, `from a1 ${r}`));
    });

    it("SPEC B4: a 4th session's join is answered from cache: occupants, 110 self-presence, history, subject", async () => {
      const r = room();
      const bob = await connect("bob", "b2");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "h1");
      await join(a1, r, "alice");
      const tag = r.split("@")[0];
      for (let i = 0; i < 5; i++) {
        await bob.send(xml("message", { to: r, type: "groupchat", id: `h${i}-${tag}` }, xml("body", {}, `hist ${i}`)));
        await a1.waitFor(isGroupchat(r, `hist ${i}`));
      }
      const upstreamBefore = await settledUpstreamCopies(server, bob, r, "alice@localhost", `h4-${tag}`);
      assert.equal(upstreamBefore, 1);
      const a4 = await connect("alice", "h4");
      const got = await join(a4, r, "alice", "join-4", { maxstanzas: "3" });
      const kinds = got.filter((el) => el.attrs.from?.split("/")[0] === r).map((el) =>
        el.name === "presence" ? (codesOf(el).includes("110") ? "self" : "occupant") : el.getChild("subject") ? "subject" : "history");
      const firstSelf = kinds.indexOf("self");
      assert.ok(firstSelf > 0, `occupants first: ${kinds.join(",")}`);
      assert.ok(kinds.slice(0, firstSelf).every((k) => k === "occupant"));
      assert.deepEqual(kinds.slice(firstSelf), ["self", "history", "history", "history", "subject"]);
      const self = got.find(isSelfPresence(r));
      assert.equal(self?.attrs.id, "join-4");
      assert.equal(self?.attrs.to, a4.jid);
      assert.ok(!codesOf(self!).includes("201"));
      const item = self?.getChild("x", MUC_USER)?.getChild("item");
      if (item?.attrs.jid) assert.equal(item.attrs.jid, a4.jid, "item jid names the receiving session");
      const bodies = got.filter((el) => el.name === "message" && el.getChild("body")).map((el) => el.getChildText("body"));
      assert.deepEqual(bodies, ["hist 2", "hist 3", "hist 4"]);
      for (const h of got.filter((el) => el.name === "message" && el.getChild("body"))) assert.ok(h.getChild("delay", "urn:xmpp:delay"));
      // no upstream traffic for the synthesized join: the server sent alice's account nothing new
      assert.equal(upstreamCopies(server, "alice@localhost", `h4-${tag}`), upstreamBefore);
      const metrics = await (await fetch(`http://127.0.0.1:${mux.adminPort}/metrics`)).text();
      assert.match(metrics, /mucmux_muc_synthesized_joins_total [1-9]/);
    });

    it("SPEC B2: two sessions joining within a few ms produce one upstream join", async () => {
      const r = room();
      const bob = await connect("bob", "b3");
      await join(bob, r, "bob");
      const [x, y] = [await connect("alice", "race1"), await connect("alice", "race2")];
      const before = bob.received.length;
      await Promise.all([x.send(joinPresence(r, "alice", "rx")), y.send(joinPresence(r, "alice", "ry"))]);
      await waitAfter(x, 0, isSubject(r), 10_000);
      await waitAfter(y, 0, isSubject(r), 10_000);
      assert.equal(x.received.find(isSelfPresence(r))?.attrs.id, "rx");
      assert.equal(y.received.find(isSelfPresence(r))?.attrs.id, "ry");
      await roomSettled(r, x, y, bob); // a second upstream join would have reached bob before his answer
      const joins = bob.received.slice(before).filter((el) => el.name === "presence" && el.attrs.from === `${r}/alice` && el.attrs.type === undefined);
      assert.equal(joins.length, 1, "bob saw alice join once");
    });

    it("SPEC C4–C6: disconnects are invisible; leaving while others stay is local; the last explicit leave is one leave", async () => {
      const r = room();
      const bob = await connect("bob", "b4");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "l1");
      const a2 = await connect("alice", "l2");
      await join(a1, r, "alice");
      await join(a2, r, "alice");
      const leaves = () => bob.received.filter((el) => el.name === "presence" && el.attrs.from === `${r}/alice` && el.attrs.type === "unavailable").length;
      // a1 leaves explicitly while a2 stays: a1 gets its own unavailable, nobody else sees anything
      const m1 = a1.received.length;
      await a1.send(xml("presence", { to: `${r}/alice`, type: "unavailable", id: "bye1" }));
      const own = await waitAfter(a1, m1, (el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === `${r}/alice`);
      assert.ok(codesOf(own).includes("110"));
      assert.equal(own.getChild("x", MUC_USER)?.getChild("item")?.attrs.role, "none");
      // a2 disconnects without leaving: nothing either (a leave mucmux sent for it would be on the anchor
      // before a1's round trip, which a1 makes through the anchor: the room still is the account's)
      await a2.stop();
      await until("mucmux to have closed a2's session", () =>
        ![...(mux.app.accounts.get("alice@localhost")?.sessions ?? [])].some((s) => s.jid === a2.jid));
      await roomSettled(r, a1, bob);
      assert.equal(leaves(), 0);
      // a3 joins (from cache), then leaves explicitly as the last session: one leave, forwarded to a3
      const a3 = await connect("alice", "l3");
      await join(a3, r, "alice");
      const m3 = a3.received.length;
      await a3.send(xml("presence", { to: `${r}/alice`, type: "unavailable", id: "bye3" }));
      const gone = await waitAfter(a3, m3, (el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === `${r}/alice`);
      assert.ok(codesOf(gone).includes("110"));
      await bob.waitFor(() => leaves() === 1);
      await roomSettled(r, a3, bob); // a second leave would have reached bob before his answer
      assert.equal(leaves(), 1);
    });

    it("SPEC C5: after the last session disconnects the room lingers, then the anchor leaves", async () => {
      const r = room();
      const bob = await connect("bob", "b5");
      await join(bob, r, "bob");
      const a = await connect("alice", "linger");
      await join(a, r, "alice");
      const mark = bob.received.length;
      const gone = Date.now(); // the linger starts when mucmux sees the session close, after this
      await a.stop();
      const isLeave = (el: Element) => el.name === "presence" && el.attrs.from === `${r}/alice` && el.attrs.type === "unavailable";
      // The linger expiry's event: the anchor's leave, which the room broadcasts (lingerSeconds: 2 in this suite).
      await waitAfter(bob, mark, isLeave, 2000 + 5000);
      const after = Date.now() - gone;
      assert.ok(after >= 2000 - TIMER_SLACK_MS, `no leave during the linger period (it came after ${after} ms)`);
      await roomSettled(r, bob);
      assert.equal(countMatching(bob, isLeave, mark), 1, "the anchor left once, after the linger period");
    });

    it("SPEC B7: a join error reaches every waiting session and leaves no state", async () => {
      const r = room();
      const bob = await connect("bob", "b6");
      await join(bob, r, "bob");
      const x = await connect("alice", "err1");
      const y = await connect("alice", "err2");
      // 'bob' is taken by bob: both alice sessions ask for it
      await Promise.all([x.send(joinPresence(r, "bob", "e1")), y.send(joinPresence(r, "bob", "e2"))]);
      const ex = await x.waitFor((el) => el.name === "presence" && el.attrs.type === "error");
      const ey = await y.waitFor((el) => el.name === "presence" && el.attrs.type === "error");
      assert.equal(ex.attrs.id, "e1");
      assert.equal(ey.attrs.id, "e2");
      assert.ok(ex.getChild("error")?.getChild("conflict"));
      // no stale state: a fresh join with a free nick works and is a real upstream join
      await join(x, r, "alice");
      await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${r}/alice`);
    });

    it("SPEC C7/C8: a kick reaches every joined session and clears the state; occupants are tracked", async () => {
      const r = room();
      const bob = await connect("bob", "b7");
      await join(bob, r, "bob"); // bob created the room: owner
      const carol = await connect("carol", "c7");
      await join(carol, r, "carol");
      const a1 = await connect("alice", "k1");
      const a2 = await connect("alice", "k2");
      await join(a1, r, "alice");
      await join(a2, r, "alice");
      // C8: carol leaves; a later synthesized join must not show her
      await carol.send(xml("presence", { to: `${r}/carol`, type: "unavailable" }));
      await a1.waitFor((el) => el.name === "presence" && el.attrs.from === `${r}/carol` && el.attrs.type === "unavailable");
      const a3 = await connect("alice", "k3");
      const got = await join(a3, r, "alice");
      const occupants = got.filter((el) => el.name === "presence" && !codesOf(el).includes("110")).map((el) => el.attrs.from);
      assert.ok(occupants.includes(`${r}/bob`));
      assert.ok(!occupants.includes(`${r}/carol`));
      // C7: bob kicks alice
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" }, xml("item", { nick: "alice", role: "none" }))));
      for (const c of [a1, a2, a3]) {
        const k = await c.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && codesOf(el).includes("307"));
        assert.equal(k.attrs.to, c.jid);
      }
      // state cleared: a new join is a real upstream join (bob sees alice come back)
      const before = bob.received.length;
      await join(a1, r, "alice");
      await waitAfter(bob, before, (el) => el.name === "presence" && el.attrs.from === `${r}/alice` && el.attrs.type === undefined);
    });

    it("SPEC C7: ban and room destruction reach every joined session and clear the state", async () => {
      for (const how of ["ban", "destroy"] as const) {
        const r = room();
        const bob = await connect("bob", `b-${how}`);
        await join(bob, r, "bob");
        const a1 = await connect("alice", `${how}1`);
        const a2 = await connect("alice", `${how}2`);
        await join(a1, r, "alice");
        await join(a2, r, "alice");
        const admin = how === "ban"
          ? xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" }, xml("item", { jid: "alice@localhost", affiliation: "outcast" }))
          : xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("destroy", {}, xml("reason", {}, "bye")));
        await bob.iq(xml("iq", { type: "set", to: r }, admin));
        for (const c of [a1, a2]) {
          const gone = await c.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === `${r}/alice`);
          assert.equal(gone.attrs.to, c.jid);
          if (how === "ban") assert.ok(codesOf(gone).includes("301"));
          else assert.ok(gone.getChild("x", MUC_USER)?.getChild("destroy"));
        }
        const acct = mux.app.accounts.get("alice@localhost");
        assert.equal(acct === undefined ? undefined : mux.app.views.rooms.get(acct, r), undefined, "room state cleared");
      }
    });

    it("SPEC B4: history `since` and `seconds` are honoured in a synthesized join", async () => {
      const r = room();
      const bob = await connect("bob", "b-since");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "since1");
      await join(a1, r, "alice");
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "old one")));
      await a1.waitFor(isGroupchat(r, "old one"));
      // mucmux stamped "old one" before a1 had it: past this point it is more than 1 s old for the
      // `seconds: 1` join below, while "new one", sent after it, is younger than 1 s there.
      await untilTime(Date.now() + 1000, "history seconds='1' must leave out 'old one'");
      const cut = new Date().toISOString();
      await untilTime(Date.parse(cut) + 1, "'new one' is stamped after `since`, not in the same millisecond");
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "new one")));
      await a1.waitFor(isGroupchat(r, "new one"));
      const bodies = (els: import("@xmpp/xml").Element[]) => els.filter((el) => el.name === "message" && el.getChild("body")).map((el) => el.getChildText("body"));
      const a2 = await connect("alice", "since2");
      assert.deepEqual(bodies(await join(a2, r, "alice", "s2", { since: cut })), ["new one"]);
      const a3 = await connect("alice", "since3");
      assert.deepEqual(bodies(await join(a3, r, "alice", "s3", { seconds: "1" })), ["new one"]);
      const a4 = await connect("alice", "since4");
      assert.deepEqual(bodies(await join(a4, r, "alice", "s4", { maxstanzas: "0" })), []);
    });

    it("SPEC C3: the account's presence in the room is the most available of its joined sessions", async () => {
      const r = room();
      const bob = await connect("bob", "b-pres");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "pres1");
      const a2 = await connect("alice", "pres2");
      await join(a1, r, "alice");
      await join(a2, r, "alice");
      const showOfAlice = () => {
        const last = bob.received.filter((el) => el.name === "presence" && el.attrs.from === `${r}/alice`).at(-1);
        return last?.getChildText("show") ?? "";
      };
      // Each change reaches bob as the anchor's presence (debounced); once it is there, round trips through
      // the anchor (a2) and to bob show that nothing else followed it.
      let mark = bob.received.length;
      const shows = async (show: string) => {
        await waitAfter(bob, mark, (el) => el.name === "presence" && el.attrs.from === `${r}/alice` && (el.getChildText("show") ?? "") === show);
        await roomSettled(r, a2, bob);
        mark = bob.received.length;
      };
      await a1.send(xml("presence", { to: `${r}/alice` }, xml("show", {}, "away")));
      await a2.send(xml("presence", { to: `${r}/alice` }, xml("show", {}, "dnd")));
      await shows("away");
      assert.equal(showOfAlice(), "away");
      await a1.send(xml("presence", { to: `${r}/alice` }, xml("show", {}, "chat")));
      await shows("chat");
      assert.equal(showOfAlice(), "chat");
      await a1.send(xml("presence", { to: `${r}/alice`, type: "unavailable" }));
      await shows("dnd");
      assert.equal(showOfAlice(), "dnd");
    });

    it("SPEC C9/C10: self-ping is answered; IQs with colliding ids from two sessions each get their own answer", async () => {
      const r = room();
      const bob = await connect("bob", "b8");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "p1");
      const a2 = await connect("alice", "p2");
      await join(a1, r, "alice");
      const ping = await a1.iq(xml("iq", { type: "get", to: `${r}/alice` }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(ping.attrs.type, "result");
      await assert.rejects(a2.iq(xml("iq", { type: "get", to: `${r}/alice` }, xml("ping", { xmlns: "urn:xmpp:ping" }))), /not-acceptable/);
      await join(a2, r, "alice");
      const disco = (c: TestClient) => new Promise<string>((resolve, reject) => {
        const start = c.received.length;
        c.send(xml("iq", { type: "get", to: r, id: "same-id" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))).catch(reject);
        waitAfter(c, start, (el) => el.name === "iq" && el.attrs.id === "same-id").then((el) => resolve(`${el.attrs.type}:${el.attrs.to}`), reject);
      });
      const [r1, r2] = await Promise.all([disco(a1), disco(a2)]);
      assert.equal(r1, `result:${a1.jid}`);
      assert.equal(r2, `result:${a2.jid}`);
    });

    it("SPEC C12: private messages fork to all joined sessions; outgoing ones are carbon-copied to the others", async () => {
      const r = room();
      const bob = await connect("bob", "b9");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "pm1");
      const a2 = await connect("alice", "pm2");
      for (const c of [a1, a2]) await c.iq(xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:carbons:2" })));
      await join(a1, r, "alice");
      await join(a2, r, "alice");
      await bob.send(xml("message", { to: `${r}/alice`, type: "chat" }, xml("body", {}, "psst"), xml("x", { xmlns: MUC_USER })));
      for (const c of [a1, a2]) {
        const pm = await c.waitFor((el) => el.name === "message" && el.getChildText("body") === "psst");
        assert.equal(pm.attrs.from, `${r}/bob`);
      }
      await a1.send(xml("message", { to: `${r}/bob`, type: "chat" }, xml("body", {}, "psst back"), xml("x", { xmlns: MUC_USER })));
      const back = await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "psst back");
      assert.equal(back.attrs.from, `${r}/alice`);
      const carbon = await a2.waitFor((el) => el.name === "message" && !!el.getChild("sent", "urn:xmpp:carbons:2"));
      const inner = carbon.getChild("sent", "urn:xmpp:carbons:2")?.getChild("forwarded", "urn:xmpp:forward:0")?.getChild("message");
      assert.equal(inner?.getChildText("body"), "psst back");
      // The server forked its carbons when it routed the PM, before a2 had one; a1's round trip on its own
      // stream comes back after any that reached a1's leg.
      await serverRoundTrip(a1);
      assert.equal(countMatching(a1, (el) => !!el.getChild("sent", "urn:xmpp:carbons:2") || !!el.getChild("received", "urn:xmpp:carbons:2")), 0);
    });

    it("SPEC C2: a nick change reaches every joined session (303 then the new presence)", async () => {
      const r = room();
      const bob = await connect("bob", "b10");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "n1");
      const a2 = await connect("alice", "n2");
      await join(a1, r, "alice");
      await join(a2, r, "alice");
      await a1.send(xml("presence", { to: `${r}/alicia` }));
      for (const c of [a1, a2]) {
        const gone = await c.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && codesOf(el).includes("303"));
        assert.ok(codesOf(gone).includes("110"));
        await c.waitFor((el) => el.name === "presence" && el.attrs.from === `${r}/alicia` && codesOf(el).includes("110"));
      }
      await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${r}/alicia`);
      const ping = await a2.iq(xml("iq", { type: "get", to: `${r}/alicia` }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(ping.attrs.type, "result");
    });

    it("SPEC A9: the anchor's stream dropped: it reconnects and re-joins; sessions see only the differences", async () => {
      const r = room();
      const bob = await connect("bob", "b11");
      await join(bob, r, "bob");
      const a1 = await connect("alice", "re1");
      await join(a1, r, "alice");
      const mark = a1.received.length;
      const account = mux.app.accounts.get("alice@localhost");
      account?.anchor?.dropForTest();
      await until("the anchor to be down", () => account?.anchor?.state !== "online");
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "while away")));
      const m = await waitAfter(a1, mark, isGroupchat(r, "while away"), 15_000);
      assert.ok(m);
      await roomSettled(r, a1); // through the new anchor: after the whole re-join burst
      assert.equal(countMatching(a1, isSelfPresence(r), mark), 0, "no second self-presence");
      assert.equal(countMatching(a1, isGroupchat(r, "while away"), mark), 1, "the missed message once");
      // and the room still works both ways
      await a1.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "back again")));
      await bob.waitFor(isGroupchat(r, "back again"));
    });
  });
}

suite("Prosody 0.12", () => startProsody({ muc: true, debugLog: true }));
suite("ejabberd 23.01", () => startEjabberd({ muc: true, debugLog: true }));
