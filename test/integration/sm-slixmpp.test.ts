// XEP-0198 at mucmux with a real client library: slixmpp 1.8's own xep_0198 plugin (test/clients/slix_sm.py) as
// alice, through mucmux, in front of Prosody 0.12 and ejabberd 23.01, each with and without stream management of
// its own. Alice enables SM with resumption; after a burst mucmux's <a h/> is exactly her count; she joins a room
// (mucmux's anchor is the occupant); her TCP connection dies without a stream close; meanwhile bob (an @xmpp/client
// session through mucmux, also in the room) writes her 1:1 messages and room messages; she resumes. Every message of
// the gap arrives after <resumed/>, once, in order (the 1:1 ones through the server side mucmux restored: the
// server's own resumed session, or a new session bound to the same resource whose presence brings the offline store;
// the room's through the anchor's fan-out, queued by mucmux); bob never sees alice leave the room.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";

import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { StartServerOptions, XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { testCertificate } from "../support/certs.js";
import type { TestClient } from "../support/clients.js";
import { startSlixSm, type CountedEvent, type SlixMessage, type SlixSm } from "../support/slix-sm.js";
import { logMark, untilHibernated } from "../support/push-client.js";
import { until } from "../support/wait.js";
import { connectVia, join, roomRoundTrip, serverRoundTrip, waitAfter } from "./muc-support.js";

const BURST = 20;
/** 1:1 chat messages and room messages bob writes while alice is cut off. */
const GAP = 3;
const ROOM_GAP = 3;

const PING = "urn:xmpp:ping";

/** Sends bob's IQ ping to `jid`: the answer's type ("result"/"error" with its condition), or "timeout". */
async function ping(c: TestClient, jid: string, ms: number): Promise<string> {
  try {
    await c.iq(xml("iq", { type: "get", to: jid }, xml("ping", { xmlns: PING })), ms);
    return "result";
  } catch (e) {
    const err = e as Error & { condition?: string };
    return err.name === "TimeoutError" ? "timeout" : `error ${err.condition ?? err.message}`;
  }
}

const isOccupantPresence = (room: string, nick: string, type?: string) => (el: Element) =>
  el.name === "presence" && el.attrs.from === `${room}/${nick}` && el.attrs.type === type;

function suite(name: string, start: (o: StartServerOptions) => Promise<XmppTestServer>, serverSm: boolean): void {
  const how = serverSm ? "resumed" : "rebound";
  describe(`XEP-0198 at mucmux with slixmpp's plugin, ${name} ${serverSm ? "with" : "without"} SM of its own`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const slix: SlixSm[] = [];
    const xmpp: TestClient[] = [];
    const restores = (label: string) => metric(mux.adminPort, "mucmux_sm_upstream_restores_total", `how="${label}"`);

    before(async () => {
      // Prosody logs the hibernation of a session at debug level only (untilHibernated).
      server = await start({ sm: serverSm, debugLog: serverSm });
      mux = await startMucmux({ upstreamPort: server.port });
    });
    after(async () => {
      await Promise.allSettled([...slix.map((c) => c.close()), ...xmpp.map((c) => c.stop())]);
      await mux?.stop();
      await server?.stop();
    });

    it(`burst acked exactly; after a cut the stream resumes (server side ${how}), the gap's 1:1 and room messages arrive once each and in order, and the room never sees alice leave`, async (t) => {
      const room = `sm-${serverSm ? "s" : "n"}-${Date.now().toString(36)}@${server.mucDomain}`;

      // bob: an ordinary client through mucmux, in the room, watching its presences.
      const bob = await connectVia(mux.directPort, "bob", "watch");
      xmpp.push(bob);
      await bob.send(xml("presence"));
      await join(bob, room, "bob");

      // alice: slixmpp through mucmux's direct TLS port; its plugin enables SM with resumption (only when offered).
      const smEnabled = await metric(mux.adminPort, "mucmux_sm_enabled_total", `resume="true"`);
      const alice = await startSlixSm({ jid: "alice@localhost/phone", password: "alicepw", port: mux.directPort, ca: testCertificate().certFile, directTls: true });
      slix.push(alice);
      const enabled = await alice.waitFor((e) => e.event === "sm_enabled");
      assert.equal(enabled.resume, true, `mucmux grants resumption: ${JSON.stringify(enabled)}`);
      assert.ok(typeof enabled.sm_id === "string" && enabled.sm_id.length > 0 && enabled.sm_id === enabled.id, "the plugin stored the SM id");
      assert.ok(Number(enabled.max) > 0, `a resumption timeout: ${JSON.stringify(enabled)}`);
      assert.equal(await metric(mux.adminPort, "mucmux_sm_enabled_total", `resume="true"`), smEnabled + 1, "mucmux offered SM and granted resumption");
      const aliceJid = (await alice.waitFor((e) => e.event === "session_start")).jid as string;
      assert.equal(aliceJid, "alice@localhost/phone", "mucmux binds the resource alice asked for");

      // The burst: mucmux's <a h/> counts exactly what alice sent (her initial presence included).
      const before = await alice.status();
      let from = alice.mark();
      alice.send({ cmd: "send", to: bob.jid, body: "burst {i}", type: "chat", count: BURST });
      const sent = await alice.waitFor<CountedEvent>((e) => e.event === "sent", 10_000, from);
      assert.equal(sent.seq - before.seq, BURST, "the plugin counted the burst");
      alice.send({ cmd: "request_ack" });
      const burstAck = await alice.waitFor<CountedEvent>((e) => e.event === "acked" && (e.h as number) >= sent.seq, 10_000, from);
      assert.equal(burstAck.h, sent.seq, `mucmux's <a h/> is alice's seq: ${JSON.stringify(burstAck)}`);
      assert.equal(burstAck.unacked, 0, "nothing left in the plugin's unacked queue");
      const isBurst = (el: Element) => el.name === "message" && (el.getChildText("body") ?? "").startsWith("burst ");
      await bob.waitFor((el) => isBurst(el) && el.getChildText("body") === `burst ${BURST}`, 10_000);
      assert.deepEqual(bob.received.filter(isBurst).map((el) => el.getChildText("body")),
        Array.from({ length: BURST }, (_, i) => `burst ${i + 1}`), "bob got the burst once, in order");

      // alice joins the room; bob sees her arrive.
      const bobJoinMark = bob.received.length;
      from = alice.mark();
      alice.send({ cmd: "join", room, nick: "alice", history: 0 });
      const joined = await alice.waitFor((e) => e.event === "joined", 10_000, from);
      assert.equal(joined.from, `${room}/alice`);
      await waitAfter(bob, bobJoinMark, isOccupantPresence(room, "alice"), 10_000);
      // Everything alice sent is acknowledged before the cut (slixmpp 1.8.3 drops its own unacked stanzas on resume).
      const status = await alice.status();
      from = alice.mark();
      alice.send({ cmd: "request_ack" });
      const cutAck = await alice.waitFor<CountedEvent>((e) => e.event === "acked" && (e.h as number) >= status.seq, 10_000, from);
      assert.equal(cutAck.h, cutAck.seq, `mucmux's <a h/> is alice's seq after the join: ${JSON.stringify(cutAck)}`);

      // The cut: no </stream:stream>, no TLS close; mucmux hibernates the session.
      const restoresBefore = { resumed: await restores("resumed"), rebound: await restores("rebound") };
      const hibernatedBefore = await metric(mux.adminPort, "mucmux_sm_hibernated_sessions");
      const logFrom = logMark(server);
      from = alice.mark();
      alice.send({ cmd: "cut", mode: "abort" });
      const cut = await alice.waitFor<CountedEvent>((e) => e.event === "disconnected", 5000, from);
      assert.equal(cut.sm_id, enabled.sm_id, "the plugin keeps its SM state across the cut");
      await until("mucmux to hibernate alice's session", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) > hibernatedBefore);
      if (serverSm) {
        // The upstream TCP connection was dropped without a stream close: the server keeps its session too.
        await untilHibernated(server, aliceJid, logFrom, 10_000);
      } else {
        // The upstream stream was closed: once the server has let the session go, a message to alice's bare JID
        // goes to its offline store (before that it could still be routed to the closing session).
        await until("the server to end alice's upstream session", async () => /^error /.test(await ping(bob, aliceJid, 2000)), 15_000);
      }

      // The gap: bob writes to alice's bare JID, and to the room.
      const gap = Array.from({ length: GAP }, (_, i) => `gap ${i + 1}`);
      const roomGap = Array.from({ length: ROOM_GAP }, (_, i) => `room gap ${i + 1}`);
      for (const [i, body] of gap.entries()) await bob.send(xml("message", { to: "alice@localhost", type: "chat", id: `gap-${i + 1}` }, xml("body", {}, body)));
      for (const [i, body] of roomGap.entries()) await bob.send(xml("message", { to: room, type: "groupchat", id: `room-gap-${i + 1}` }, xml("body", {}, body)));
      await roomRoundTrip(bob, room); // the room has handled (and fanned out) bob's messages
      await serverRoundTrip(bob);
      const mine = (m: SlixMessage) => gap.includes(m.body) || roomGap.includes(m.body) || m.body === "after" || m.body === "room after";
      assert.deepEqual(alice.messages(from).filter(mine), [], "nothing reached alice while she was cut off");

      // The resumption.
      from = alice.mark();
      alice.send({ cmd: "reconnect" });
      const resumed = await alice.waitFor<CountedEvent>((e) => ["resumed", "sm_failed", "session_start"].includes(e.event), 20_000, from);
      assert.equal(resumed.event, "resumed", `the stream resumed, no new session: ${alice.describe()}`);
      assert.equal(resumed.previd, enabled.sm_id);
      assert.equal(resumed.last_ack, cutAck.h, "<resumed h/> is the h alice already had: mucmux read nothing else of hers");
      const resumedAt = alice.events.indexOf(resumed);

      // Exactly once, in order: once the gap's last messages are in, bob's next 1:1 and room messages come after
      // anything else on their paths. (Not sooner: ejabberd routes the offline store to a session that becomes
      // available through its router, so a live message sent meanwhile may overtake it, with or without mucmux.)
      await alice.waitFor((e) => e.event === "message" && e.body === gap[GAP - 1], 15_000, resumedAt);
      await alice.waitFor((e) => e.event === "message" && e.body === roomGap[ROOM_GAP - 1], 15_000, resumedAt);
      await bob.send(xml("message", { to: "alice@localhost", type: "chat", id: "after-1" }, xml("body", {}, "after")));
      await bob.send(xml("message", { to: room, type: "groupchat", id: "room-after-1" }, xml("body", {}, "room after")));
      await alice.waitFor((e) => e.event === "message" && e.body === "after", 15_000, resumedAt);
      await alice.waitFor((e) => e.event === "message" && e.body === "room after", 15_000, resumedAt);
      const got = alice.messages(resumedAt).filter(mine);
      const chats = got.filter((m) => m.type === "chat");
      const groupchats = got.filter((m) => m.type === "groupchat");
      assert.deepEqual(chats.map((m) => m.body), [...gap, "after"], `1:1 after <resumed/>: the gap's once each, in order, then the next: ${JSON.stringify(got)}`);
      assert.deepEqual(groupchats.map((m) => m.body), [...roomGap, "room after"], `room after <resumed/>: the gap's once each, in order, then the next: ${JSON.stringify(got)}`);
      assert.equal(got.length, chats.length + groupchats.length, "no other kind of copy");
      for (const m of chats) assert.equal(m.from.split("/")[0], "bob@localhost");
      for (const m of groupchats) assert.equal(m.from, `${room}/bob`);
      assert.equal(alice.messages().filter(mine).length, got.length, "and none before <resumed/>");
      assert.equal(alice.events.slice(from).filter((e) => e.event === "session_start" || e.event === "sm_failed").length, 0, "no new session");

      // The room never saw alice leave: no unavailable presence for her nick reached bob, then or since.
      await roomRoundTrip(bob, room); // whatever the room did because of the cut or the resume has reached bob
      const leaves = bob.received.filter(isOccupantPresence(room, "alice", "unavailable"));
      assert.deepEqual(leaves.map((el) => el.toString()), [], "bob never saw alice's occupant leave");

      // The server side came back the way the server allows.
      assert.equal(await restores(how), restoresBefore[how] + 1, `mucmux_sm_upstream_restores_total{how="${how}"} counted the resume`);
      const other = serverSm ? "rebound" : "resumed";
      assert.equal(await restores(other), restoresBefore[other], `and not as ${other}`);
      assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernated_sessions"), hibernatedBefore, "no session left hibernated");

      // The resumed session is the same one and works: alice's next stanzas are counted on from her seq.
      from = alice.mark();
      alice.send({ cmd: "send", to: bob.jid, body: "back", type: "chat" });
      const sentAfter = await alice.waitFor<CountedEvent>((e) => e.event === "sent", 10_000, from);
      alice.send({ cmd: "request_ack" });
      const ackAfter = await alice.waitFor<CountedEvent>((e) => e.event === "acked" && (e.h as number) >= sentAfter.seq, 10_000, from);
      assert.equal(ackAfter.h, sentAfter.seq, `counting goes on after the resume: ${JSON.stringify(ackAfter)}`);
      const back = await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "back", 10_000);
      assert.equal(back.attrs.from, aliceJid, "from the same full JID");
      t.diagnostic(`${name}${serverSm ? "" : " (no SM)"}: resumed with h=${String(resumed.last_ack)}; upstream ${how}; ` +
        `delay stamps on the 1:1 gap: ${chats.slice(0, GAP).map((m) => m.delay ?? "none").join(", ")}`);

      assert.equal(await alice.close(), 0, "slix_sm exits cleanly");
    });
  });
}

suite("Prosody 0.12", (o) => startProsody(o), true);
suite("Prosody 0.12", (o) => startProsody(o), false);
suite("ejabberd 23.01", (o) => startEjabberd(o), true);
suite("ejabberd 23.01", (o) => startEjabberd(o), false);
