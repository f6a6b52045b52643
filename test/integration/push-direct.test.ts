// The push test infrastructure against the real servers directly (no mucmux): Prosody 0.12 (mod_cloud_notify) and
// ejabberd 23.01 (mod_push) publish an XEP-0357 notification to the stand-in app server (push-app-server.ts) when a
// 1:1 chat message reaches a hibernated XEP-0198 session (push and resumable stream management enabled, then the TCP
// connection cut without a stream close), and none while the session is live. With `sm: false` neither server
// offers stream management.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import { PUSH_COMPONENT_JID, type StartServerOptions, type XmppTestServer } from "../support/server.js";
import { startPushAppServer, type PushAppServer } from "../support/push-app-server.js";
import { disablePush, enablePush, logMark, NS_PUSH, NS_SM, StreamManagement, untilHibernated } from "../support/push-client.js";
import { scramLogin, type XmppConnection } from "../support/scram-client.js";
import { quietPeriod } from "../support/wait.js";

/** Longer than Prosody's push batching timer (mod_cloud_notify publishes 1 s after a stanza is queued). */
const NO_PUSH_WINDOW_MS = 2000;
/** smResumeSeconds (the servers' own defaults: Prosody 600, ejabberd 300). */
const RESUME_SECONDS = 120;

async function login(server: XmppTestServer, user: string, resource: string) {
  const r = await scramLogin({ port: server.port, transport: "plain", username: user, password: `${user}pw`, mechanism: "SCRAM-SHA-1", bind: resource });
  assert.equal(r.sasl.kind, "success", `${user} logged in: ${JSON.stringify(r.sasl)}`);
  assert.ok(r.jid && r.postAuthFeatures);
  return { conn: r.conn, jid: r.jid, features: r.postAuthFeatures.element };
}

const offersSm = (features: { getChild(name: string, xmlns?: string): unknown }) => features.getChild("sm", NS_SM) !== undefined;

/** Sends initial presence and waits for the server's copy of it back (so nothing is left in flight). */
async function available(conn: XmppConnection, jid: string): Promise<void> {
  conn.send("<presence/>");
  await conn.waitFor((el) => el.name === "presence" && el.attrs.from === jid && el.attrs.type === undefined);
}

const chat = (to: string, id: string, body: string) => `<message to='${to}' type='chat' id='${id}'><body>${body}</body></message>`;

function suite(name: string, start: (o: StartServerOptions) => Promise<XmppTestServer>, defaultBody: string): void {
  describe(`XEP-0357 push for a hibernated XEP-0198 session, directly on ${name}`, () => {
    let server: XmppTestServer;
    let app: PushAppServer;
    const open: XmppConnection[] = [];

    before(async () => {
      // debugLog: Prosody logs hibernation at debug level only (untilHibernated)
      server = await start({ push: true, smResumeSeconds: RESUME_SECONDS, tls: false, muc: false, debugLog: true });
      app = await startPushAppServer(server.pushComponent);
    });
    after(async () => {
      for (const c of open) c.destroy();
      await app?.close();
      await server?.stop();
    });

    it("offers resumable stream management and push, and a push component with a secret", async () => {
      assert.equal(server.pushComponent?.jid, PUSH_COMPONENT_JID);
      assert.ok(server.pushComponent.secret.length >= 16, "a random secret");
      const alice = await login(server, "alice", "probe");
      open.push(alice.conn);
      assert.ok(offersSm(alice.features), `urn:xmpp:sm:3 offered: ${alice.features.toString()}`);
      alice.conn.send("<iq type='get' id='disco1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
      const info = await alice.conn.waitFor((el) => el.name === "iq" && el.attrs.id === "disco1");
      const features = info.getChild("query")?.getChildren("feature").map((f) => f.attrs.var) ?? [];
      assert.ok(features.includes(NS_PUSH), `the account advertises ${NS_PUSH}: ${info.toString()}`);
      const sm = await StreamManagement.enable(alice.conn);
      assert.ok(sm.resumable && sm.id, `resumption granted: ${sm.enabled.toString()}`);
      assert.equal(sm.max, RESUME_SECONDS, "smResumeSeconds is the resumption timeout the server announces");
      alice.conn.close();
    });

    it("a live session: bob's chat message is delivered and the server publishes nothing", async () => {
      const node = `live-${randomBytes(4).toString("hex")}`;
      const alice = await login(server, "alice", "live");
      const bob = await login(server, "bob", "desk");
      open.push(alice.conn, bob.conn);
      await enablePush(alice.conn, { jid: PUSH_COMPONENT_JID, node, secret: "live-secret" });
      const sm = await StreamManagement.enable(alice.conn);
      await available(alice.conn, alice.jid);
      const before = app.publishes.length;

      bob.conn.send(chat("alice@localhost", "live-1", "are you there?"));
      const got = await alice.conn.waitFor((el) => el.name === "message" && el.attrs.id === "live-1");
      assert.equal(got.getChildText("body"), "are you there?");
      await sm.ackAll();
      await quietPeriod(NO_PUSH_WINDOW_MS, "no path orders the server's push (a timer in Prosody) against anything this test can see");
      assert.deepEqual(app.publishes.slice(before), [], "no publish while the session is live");

      await disablePush(alice.conn, { jid: PUSH_COMPONENT_JID, node });
      sm.stop();
      alice.conn.close();
      bob.conn.close();
    });

    it("a hibernated session: bob's chat message makes the server publish exactly once to alice's node", async () => {
      const node = `phone-${randomBytes(4).toString("hex")}`;
      const secret = `secret-${randomBytes(4).toString("hex")}`;
      const alice = await login(server, "alice", "phone");
      open.push(alice.conn);
      await enablePush(alice.conn, { jid: PUSH_COMPONENT_JID, node, secret });
      const sm = await StreamManagement.enable(alice.conn);
      assert.ok(sm.resumable, `resumption granted: ${sm.enabled.toString()}`);
      await available(alice.conn, alice.jid);
      const before = app.publishes.length;

      const mark = logMark(server);
      await sm.cut(); // every stanza acked, then the socket destroyed without </stream:stream>
      await untilHibernated(server, alice.jid, mark);

      const bob = await login(server, "bob", "desk2");
      open.push(bob.conn);
      const sentAt = Date.now();
      bob.conn.send(chat("alice@localhost", "hib-1", "wake up"));
      const [publish] = await app.waitForPublishes(1, 5000, node);
      assert.ok(publish);
      await quietPeriod(NO_PUSH_WINDOW_MS, "a second publish would come from the server's own timers; nothing orders it");
      assert.equal(app.publishes.length - before, 1, `exactly one publish: ${app.publishes.slice(before).map((p) => p.stanza.toString()).join("\n")}`);
      assert.equal(publish.from, "localhost");
      assert.equal(publish.node, node);
      assert.deepEqual(publish.publishOptions, { secret }, "the publish-options form the client enabled push with");
      assert.equal(publish.summary?.["last-message-body"], defaultBody, "the module's placeholder body, not the message's");
      assert.ok(publish.at - sentAt < 5000);
      bob.conn.close();
    });
  });

  describe(`${name} with sm: false`, () => {
    let server: XmppTestServer;
    before(async () => { server = await start({ sm: false, tls: false, muc: false }); });
    after(async () => { await server?.stop(); });

    it("offers no stream management after authentication, and has no push component", async () => {
      assert.equal(server.pushComponent, undefined);
      const alice = await login(server, "alice", "nosm");
      try {
        assert.ok(!offersSm(alice.features), `no urn:xmpp:sm:3: ${alice.features.toString()}`);
        assert.equal(alice.features.getChild("sm", "urn:xmpp:sm:2"), undefined, "no urn:xmpp:sm:2 either");
        assert.ok(alice.features.getChild("bind", "urn:ietf:params:xml:ns:xmpp-bind"), "the features are the post-auth ones");
      } finally {
        alice.conn.close();
      }
    });
  });
}

suite("Prosody", startProsody, "New Message!");
suite("ejabberd", startEjabberd, "New message");
