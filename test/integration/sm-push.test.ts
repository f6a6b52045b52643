// XEP-0357 push through mucmux, for a session hibernated under XEP-0198: alice's client (slixmpp's xep_0198 plugin,
// test/clients/slix_sm.py) talks to mucmux only; mucmux relays her push enable IQ to the server, and keeps the
// server's session of hers resumable (SM with resumption on her upstream leg). When her connection dies without a
// stream close, mucmux acknowledges what it read from the server and drops the upstream TCP connection, so the
// server hibernates its session and pushes exactly as it would for the phone itself: Prosody 0.12
// (mod_cloud_notify) and ejabberd 23.01 (mod_push), each publishing to the stand-in app server
// (push-app-server.ts). Controls: no publish while alice is live, and none caused by the cut itself (nothing the
// server sent was left unacknowledged). push-direct.test.ts makes the same checks without mucmux.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { xml } from "@xmpp/xml";

import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import { PUSH_COMPONENT_JID, type StartServerOptions, type XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { testCertificate } from "../support/certs.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { startPushAppServer, type PushAppServer } from "../support/push-app-server.js";
import { logMark, NS_PUSH, untilHibernated } from "../support/push-client.js";
import { startSlixSm, type CountedEvent, type SlixSm } from "../support/slix-sm.js";
import { escapeAttr, escapeText } from "../../src/xml/serialize.js";
import { quietPeriod, until } from "../support/wait.js";
import { serverRoundTrip } from "./muc-support.js";

/** Longer than Prosody's push batching timer (mod_cloud_notify publishes 1 s after a stanza is queued). */
const NO_PUSH_WINDOW_MS = 2000;
/** mucmux's sm.ackTimeoutSeconds for the silent-death case (its default is 60 s). */
const ACK_TIMEOUT_SECONDS = 2;
/** The servers' hibernation timeout (smResumeSeconds), well beyond the test. */
const RESUME_SECONDS = 120;

/** The XEP-0357 §5 enable payload as Conversations sends it: jid, node, and a publish-options form with the secret. */
const pushEnable = (node: string, secret: string) =>
  `<enable xmlns='${NS_PUSH}' jid='${escapeAttr(PUSH_COMPONENT_JID)}' node='${escapeAttr(node)}'>` +
  "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
  `<field var='secret'><value>${escapeText(secret)}</value></field></x></enable>`;
const pushDisable = (node: string) => `<disable xmlns='${NS_PUSH}' jid='${escapeAttr(PUSH_COMPONENT_JID)}' node='${escapeAttr(node)}'/>`;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * From the server's debug log, for the last session bound to `fullJid`, up to its hibernation if it has hibernated:
 * how many <r/> the server sent on it, how many <a/> it received, and whether everything it had sent was
 * acknowledged at the last acknowledgement it processed ("#queue = N" of Prosody, "acknowledged X of Y stanzas" of
 * ejabberd); undefined when no session bound to it is logged. The server must log at debug level; ejabberd writes
 * its log lazily, so poll for what must be there.
 */
interface LegAcks { rSent: number; aReceived: number; allAcked: boolean | undefined; hibernated: boolean }
function legAcks(server: XmppTestServer, fullJid: string): LegAcks | undefined {
  const log = readFileSync(server.logFile, "utf8");
  const jid = escapeRe(fullJid);
  const prosody = server.kind === "prosody";
  // Prosody: the session id of the "Resource bound" line; ejabberd: the c2s process of the "Opened c2s session" line.
  const id = prosody
    ? [...log.matchAll(new RegExp(`(\\S+)\\tdebug\\tResource bound: ${jid}\\n`, "g"))].pop()?.[1]
    : [...log.matchAll(new RegExp(`<(\\d+\\.\\d+\\.\\d+)>@ejabberd_c2s:bind\\S* \\S+ Opened c2s session for ${jid}\\n`, "g"))].pop()?.[1];
  if (id === undefined) return undefined; // not logged (yet)
  let lines = log.split("\n").filter((l) => l.includes(prosody ? `${id}\t` : `<${id}>`));
  const end = lines.findIndex((l) => (prosody ? l.includes("\tSession going into hibernation") : /transition_to_pending.* waiting \d+ seconds/.test(l)));
  if (end >= 0) lines = lines.slice(0, end);
  const isR = prosody ? (l: string) => /\tSending\[c2s\]: <r xmlns='urn:xmpp:sm:3'/.test(l) : (l: string) => /Send XML on stream = <<"<r xmlns='urn:xmpp:sm:3'/.test(l);
  const isA = prosody ? (l: string) => /\tReceived\[c2s\]: <a /.test(l) : (l: string) => /Received XML on stream = <<"<a /.test(l);
  const acked = prosody
    ? (l: string) => { const m = /\t#queue = (\d+)/.exec(l); return m ? m[1] === "0" : undefined; }
    : (l: string) => { const m = / acknowledged (\d+) of (\d+) stanzas/.exec(l); return m ? m[1] === m[2] : undefined; };
  return {
    rSent: lines.filter(isR).length,
    aReceived: lines.filter((l) => isA(l) && l.includes("urn:xmpp:sm:3")).length,
    allAcked: lines.map(acked).filter((x) => x !== undefined).pop(),
    hibernated: end >= 0,
  };
}

function suite(name: string, start: (o: StartServerOptions) => Promise<XmppTestServer>): void {
  describe(`XEP-0357 push through mucmux for a hibernated XEP-0198 session, ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    let muxFastAck: TestMucmux;
    let app: PushAppServer;
    const slix: SlixSm[] = [];
    const xmpp: TestClient[] = [];

    /** alice through mucmux (direct TLS), SM with resumption enabled, push enabled for `node` through mucmux. */
    const aliceWithPush = async (resource: string, node: string, secret: string, via = mux) => {
      const alice = await startSlixSm({ jid: `alice@localhost/${resource}`, password: "alicepw", port: via.directPort, ca: testCertificate().certFile, directTls: true });
      slix.push(alice);
      const enabled = await alice.waitFor((e) => e.event === "sm_enabled");
      assert.equal(enabled.resume, true, `resumption granted: ${JSON.stringify(enabled)}`);
      const jid = (await alice.waitFor((e) => e.event === "session_start")).jid as string;
      const answer = await alice.iq({ type: "set", payload: pushEnable(node, secret) });
      assert.equal(answer.type, "result", `the server took the push enable mucmux relayed: ${answer.xml}`);
      return { alice, jid, enabled };
    };
    /** Everything alice sent is acknowledged by mucmux (so nothing is lost to slixmpp's resume bug). */
    const ackedAll = async (alice: SlixSm) => {
      const status = await alice.status();
      const from = alice.mark();
      alice.send({ cmd: "request_ack" });
      const a = await alice.waitFor<CountedEvent>((e) => e.event === "acked" && (e.h as number) >= status.seq, 10_000, from);
      assert.equal(a.unacked, 0);
      return a;
    };
    const bobSays = async (bob: TestClient, id: string, body: string) => {
      await bob.send(xml("message", { to: "alice@localhost", type: "chat", id }, xml("body", {}, body)));
      await serverRoundTrip(bob); // the server has routed it
    };

    before(async () => {
      // debugLog: Prosody logs a session's hibernation at debug level only (untilHibernated)
      server = await start({ push: true, smResumeSeconds: RESUME_SECONDS, debugLog: true });
      app = await startPushAppServer(server.pushComponent);
      mux = await startMucmux({ upstreamPort: server.port });
      // The same, treating a client that leaves its <r/> unanswered for ACK_TIMEOUT_SECONDS as gone (default 60 s).
      muxFastAck = await startMucmux({ upstreamPort: server.port, extra: { sm: { ackTimeoutSeconds: ACK_TIMEOUT_SECONDS } } });
    });
    after(async () => {
      await Promise.allSettled([...slix.map((c) => c.close()), ...xmpp.map((c) => c.stop())]);
      await app?.close();
      await muxFastAck?.stop();
      await mux?.stop();
      await server?.stop();
    });

    it("a live session: bob's message is delivered through mucmux and the server publishes nothing", async () => {
      const node = `live-${randomBytes(4).toString("hex")}`;
      const { alice } = await aliceWithPush("live", node, "live-secret");
      const bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "desk" });
      xmpp.push(bob);
      await ackedAll(alice);
      const before = app.publishes.length;

      const from = alice.mark();
      await bobSays(bob, "live-1", "are you there?");
      const got = await alice.waitFor((e) => e.event === "message" && e.body === "are you there?", 10_000, from);
      assert.equal(got.from, bob.jid);
      await quietPeriod(NO_PUSH_WINDOW_MS, "the server's push is its own timer (Prosody batches 1 s); nothing orders it against this test");
      assert.deepEqual(app.publishes.slice(before).map((p) => p.stanza.toString()), [], "no publish while alice is live");

      const off = await alice.iq({ type: "set", payload: pushDisable(node) });
      assert.equal(off.type, "result", off.xml);
      assert.equal(await alice.close(), 0);
      await bob.stop();
    });

    it("a hibernated session: the cut alone publishes nothing; bob's message makes the server publish once to alice's node, and it arrives after the resume", async () => {
      const node = `phone-${randomBytes(4).toString("hex")}`;
      const secret = `secret-${randomBytes(4).toString("hex")}`;
      const { alice, jid, enabled } = await aliceWithPush("phone", node, secret);
      const acked = await ackedAll(alice);
      const before = app.publishes.length;
      const hibernated = await metric(mux.adminPort, "mucmux_sm_hibernated_sessions");
      const bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "desk2" });
      xmpp.push(bob);

      // A message reaches alice just before her network goes, and she acknowledges it; mucmux passes her
      // acknowledgement on to the leg (SPEC F6: the leg acknowledges what the device did), so the server's queue for
      // her session is empty at the cut (its log shows it).
      let from = alice.mark();
      await bobSays(bob, "pre-1", "just before the cut");
      await alice.waitFor((e) => e.event === "message" && e.body === "just before the cut", 10_000, from);
      let atCut: LegAcks | undefined;
      await until("the server's log to show its <r/> answered on alice's leg", () => {
        atCut = legAcks(server, jid);
        return atCut !== undefined && atCut.rSent > 0 && atCut.aReceived >= atCut.rSent && atCut.allAcked === true;
      }, 10_000);

      // The cut: mucmux hibernates alice's session, acknowledges what it read on her leg and drops the upstream TCP
      // connection; the server hibernates its session.
      const mark = logMark(server);
      from = alice.mark();
      alice.send({ cmd: "cut", mode: "abort" });
      await alice.waitFor((e) => e.event === "disconnected", 5000, from);
      await until("mucmux to hibernate alice's session", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) > hibernated);
      await untilHibernated(server, jid, mark, 10_000);
      // Before it dropped the connection mucmux acknowledged once more, unasked; the server had everything it sent
      // acknowledged when it hibernated its session.
      let leg: LegAcks | undefined;
      await until("the server's log up to the hibernation", () => (leg = legAcks(server, jid))?.hibernated === true, 10_000);
      assert.ok(atCut && leg);
      assert.equal(leg.rSent, atCut.rSent, `the server asked for nothing more: ${JSON.stringify({ atCut, leg })}`);
      assert.equal(leg.aReceived, atCut.aReceived + 1, `mucmux's own <a/> before the drop: ${JSON.stringify({ atCut, leg })}`);
      assert.equal(leg.allAcked, true, `the server's queue for alice's session was empty when it hibernated: ${JSON.stringify(leg)}`);
      await quietPeriod(NO_PUSH_WINDOW_MS, "a push for stanzas left unacknowledged at hibernation is the server's own timer (Prosody batches 1 s)");
      assert.deepEqual(app.publishes.slice(before).map((p) => p.stanza.toString()), [],
        "the cut alone causes no publish: mucmux acknowledged everything the server sent before it dropped the connection");

      // bob writes: the server pushes for the hibernated session, as it would for the phone itself.
      const sentAt = Date.now();
      await bobSays(bob, "hib-1", "wake up");
      const [publish] = await app.waitForPublishes(1, 5000, node);
      assert.ok(publish);
      await quietPeriod(NO_PUSH_WINDOW_MS, "a second publish would come from the server's own timers; nothing orders it");
      assert.equal(app.publishes.length - before, 1, `exactly one publish: ${app.publishes.slice(before).map((p) => p.stanza.toString()).join("\n")}`);
      assert.equal(publish.from, "localhost", "published by alice's server");
      assert.equal(publish.node, node);
      assert.deepEqual(publish.publishOptions, { secret }, "with the publish-options alice enabled push with (through mucmux)");
      assert.ok(publish.at - sentAt < 5000);

      // The phone wakes up and resumes: bob's message is there, once.
      from = alice.mark();
      alice.send({ cmd: "reconnect" });
      const resumed = await alice.waitFor<CountedEvent>((e) => ["resumed", "sm_failed", "session_start"].includes(e.event), 20_000, from);
      assert.equal(resumed.event, "resumed", `the stream resumed: ${alice.describe()}`);
      assert.equal(resumed.previd, enabled.sm_id);
      assert.equal(resumed.last_ack, acked.h);
      const at = alice.events.indexOf(resumed);
      await alice.waitFor((e) => e.event === "message" && e.body === "wake up", 10_000, at);
      await bobSays(bob, "hib-2", "welcome back");
      await alice.waitFor((e) => e.event === "message" && e.body === "welcome back", 10_000, at);
      const bodies = ["just before the cut", "wake up", "welcome back"];
      assert.deepEqual(alice.messages().filter((m) => bodies.includes(m.body)).map((m) => m.body), bodies, "bob's messages once each, in order");
      assert.deepEqual(alice.messages(at).filter((m) => bodies.includes(m.body)).map((m) => m.body), bodies.slice(1), "the pushed one after the resume");

      const off = await alice.iq({ type: "set", payload: pushDisable(node) });
      assert.equal(off.type, "result", off.xml);
      assert.equal(await alice.close(), 0);
      await bob.stop();
    });

    // Without mucmux both servers push here: Prosody for a stanza left unacknowledged 30 s (smacks_max_ack_delay),
    // ejabberd when its 60 s ack_timeout hibernates the session with the stanza unacknowledged (measured: 31 s, 60 s).
    // Through mucmux the leg acknowledges only what the device acknowledged (SPEC F6), so when mucmux gives up on the
    // silent connection (sm.ackTimeoutSeconds) the server's session hibernates with the message still its own.
    it("a message that reached mucmux but not the phone (its connection died silently) makes the server push (SPEC F6)", async () => {
      const node = `silent-${randomBytes(4).toString("hex")}`;
      const { alice } = await aliceWithPush("silent", node, "silent-secret", muxFastAck);
      await ackedAll(alice);
      const bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "desk3" });
      xmpp.push(bob);
      const hibernated = await metric(muxFastAck.adminPort, "mucmux_sm_hibernated_sessions");
      const before = app.publishesFor(node).length;
      // The phone is gone without a trace (no FIN, no RST): mucmux writes bob's message into the dead connection.
      alice.send({ cmd: "cut", mode: "silent" });
      await alice.waitFor((e) => e.event === "disconnected", 5000);
      await bobSays(bob, "silent-1", "anyone there?");
      // mucmux's <r/> goes unanswered: after its ack timeout the session hibernates (and so does the server's).
      await until("mucmux to give up on the silent connection", async () => (await metric(muxFastAck.adminPort, "mucmux_sm_hibernated_sessions")) > hibernated,
        (ACK_TIMEOUT_SECONDS + 5) * 1000);
      try {
        await app.waitForPublishes(before + 1, 5000, node);
      } finally {
        alice.send({ cmd: "release" });
        await alice.close();
        await bob.stop();
      }
    });
  });
}

suite("Prosody 0.12 (mod_cloud_notify)", (o) => startProsody(o));
suite("ejabberd 23.01 (mod_push)", (o) => startEjabberd(o));
