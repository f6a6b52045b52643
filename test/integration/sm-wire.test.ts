// XEP-0198 at mucmux on the wire (SPEC F1–F8), byte-exact with a raw client, in front of real Prosody 0.12 and
// ejabberd 23.01, each with and without stream management of its own: counters, acks, resumption of exactly the
// unacknowledged stanzas and of what arrived meanwhile, and every refusal (before authentication, foreign, unknown
// and expired ids, concurrent resumes, impossible and malformed counts, a client that never acknowledges), with a
// canary session of another account untouched throughout.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { StartServerOptions, XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { RawClient } from "../support/raw-client.js";
import { until } from "../support/wait.js";

const SM = "urn:xmpp:sm:3";
const plain = (user: string, pw: string) => Buffer.from(`\0${user}\0${pw}`).toString("base64");

/** Authenticated and restarted, not bound: where a client sends `<resume/>`. */
async function authenticated(port: number, user: string, pw: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.authenticate(user, pw);
  return c;
}

/** `acked`: the stanzas the client acknowledged when the session was set up. */
interface SmSession { c: RawClient; jid: string; id: string; acked: number; max: number }

/** Bound, SM enabled with resumption (`max`: the client's wish), initial presence sent. */
async function smSession(port: number, user: string, pw: string, resource: string, max?: number): Promise<SmSession> {
  const c = await RawClient.connect(port);
  const jid = await c.login(user, pw, resource);
  assert.match(c.text, new RegExp(`<sm xmlns='${SM}'/>`), "SM offered after bind (SPEC F1)");
  c.text = "";
  c.send(`<enable xmlns='${SM}' resume='true'${max ? ` max='${max}'` : ""}/>`);
  const m = await c.waitFor(/<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true' max='(\d+)'\/>/);
  c.send("<presence/>");
  await c.waitFor(/<presence [^>]*from='[^']*\/[^']*'/); // its own presence back: the session is available
  // mucmux asks for an acknowledgement after what it wrote (SPEC F3); the client answers with what it counted.
  await c.waitFor(/<r xmlns='urn:xmpp:sm:3'\/>/);
  const got = c.stanzas();
  c.send(`<a xmlns='${SM}' h='${got}'/>`);
  c.text = "";
  return { c, jid, id: m[1] as string, acked: got, max: Number(m[2]) };
}

/** Bodies of the chat messages in `text`, in order. */
const bodies = (text: string) => [...text.matchAll(/<body>([^<]*)<\/body>/g)].map((m) => m[1]);

/** `<a h>` as answered to an `<r/>` now. */
async function handled(c: RawClient): Promise<number> {
  const before = c.text.length;
  c.send(`<r xmlns='${SM}'/>`);
  const end = Date.now() + 5000;
  for (;;) {
    const m = /<a xmlns='urn:xmpp:sm:3' h='(\d+)'\/>/.exec(c.text.slice(before));
    if (m) return Number(m[1]);
    if (Date.now() > end) throw new Error(`no <a/>: ${c.text.slice(before)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function suite(name: string, start: (o: StartServerOptions) => Promise<XmppTestServer>, serverSm: boolean): void {
  describe(`stream management on the wire, ${name}${serverSm ? "" : " without SM of its own"}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    let canary: SmSession;
    const open: RawClient[] = [];
    const track = <T extends { c: RawClient } | RawClient>(x: T): T => { open.push("c" in x ? x.c : x); return x; };
    const restores = (how: string) => metric(mux.adminPort, "mucmux_sm_upstream_restores_total", `how="${how}"`);

    before(async () => {
      server = await start({ sm: serverSm });
      mux = await startMucmux({ upstreamPort: server.port });
      canary = track(await smSession(mux.directPort, "carol", "carolpw", "canary"));
    });
    after(async () => {
      for (const c of open) c.close();
      await mux?.stop();
      await server?.stop();
    });

    it("counts every stanza both ways and resumes with the unacknowledged ones, then what arrived meanwhile (SPEC F2–F7)", async () => {
      const a = track(await smSession(mux.directPort, "alice", "alicepw", "phone"));
      const bob = track(await smSession(mux.directPort, "bob", "bobpw", "desk"));
      a.c.text = "";
      for (let i = 0; i < 3; i++) a.c.send(`<message to='${a.jid}' type='chat' id='s${i}'><body>self ${i}</body></message>`);
      await a.c.waitFor(/self 2/);
      await a.c.waitFor(/<r xmlns='urn:xmpp:sm:3'\/>/); // mucmux asks for an acknowledgement after a burst
      assert.equal(await handled(a.c), 4, "the initial presence and 3 messages were read (SPEC F2)");
      // Acknowledge the presence and the first message only, then lose the connection without a stream close.
      const h0 = a.acked;
      a.c.send(`<a xmlns='${SM}' h='${h0 + 1}'/>`);
      await new Promise((r) => setTimeout(r, 100));
      a.c.close();
      await until("alice hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) >= 1);
      // Meanwhile bob writes to her bare JID: the server keeps it for her hibernated session (its own SM) or
      // stores it offline (without): either way it reaches the resumed stream.
      for (let i = 0; i < 2; i++) bob.c.send(`<message to='alice@localhost' type='chat' id='g${i}'><body>gap ${i}</body></message>`);
      await new Promise((r) => setTimeout(r, 500));
      const before = { resumed: await restores("resumed"), rebound: await restores("rebound") };
      const b = track(await authenticated(mux.directPort, "alice", "alicepw"));
      b.send(`<resume xmlns='${SM}' previd='${a.id}' h='${h0 + 1}'/>`);
      const m = await b.waitFor(/<resumed xmlns='urn:xmpp:sm:3' previd='([^']+)' h='(\d+)'\/>/);
      assert.equal(m[1], a.id);
      assert.equal(m[2], "4", "the client learns what mucmux read (SPEC F5)");
      await b.waitFor(/gap 1/, 10_000);
      await new Promise((r) => setTimeout(r, 300)); // nothing more, and nothing twice
      const after = b.text.slice(b.text.indexOf("<resumed"));
      assert.deepEqual(bodies(after), ["self 1", "self 2", "gap 0", "gap 1"], "the unacknowledged, then the queued, in order, once");
      assert.equal(await restores(serverSm ? "resumed" : "rebound"), (serverSm ? before.resumed : before.rebound) + 1,
        serverSm ? "the server's own session was resumed (SPEC F6)" : "the server side was logged in and bound again (SPEC F7)");
      // The resumed session is the same session: same JID, counters go on, and it works.
      b.text = "";
      b.send(`<message to='${a.jid}' type='chat' id='after'><body>after resume</body></message>`);
      await b.waitFor(/after resume/);
      assert.equal(await handled(b), 5, "counting goes on from the resumed stream's count");
      assert.match(b.text, new RegExp(`from='${a.jid.replace(/[.]/g, "\\.")}'`), "the same full JID");
      assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernated_sessions"), 0);
    });

    it("closes the old connection when a session is resumed while its death went unnoticed (SPEC F5)", async () => {
      const a = track(await smSession(mux.directPort, "alice", "alicepw", "tablet"));
      const live = await restores("live");
      const b = track(await authenticated(mux.directPort, "alice", "alicepw"));
      b.send(`<resume xmlns='${SM}' previd='${a.id}' h='${a.acked}'/>`);
      await b.waitFor(/<resumed xmlns='urn:xmpp:sm:3'/);
      await a.c.waitFor(/<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
      await a.c.waitClosed();
      assert.equal(await restores("live"), live + 1, "the server side never went away");
      b.send(`<message to='${a.jid}' type='chat' id='t1'><body>still here</body></message>`);
      await b.waitFor(/still here/);
    });

    it("refuses resumption before authentication, and the stream stays usable (SPEC F5)", async () => {
      const c = track(await RawClient.connect(mux.directPort));
      c.open();
      await c.waitFor(/<\/stream:features>/);
      c.send(`<resume xmlns='${SM}' previd='${canary.id}' h='0'/>`);
      await c.waitFor(/<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/failed>/);
      c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain("alice", "alicepw")}</auth>`);
      await c.waitFor(/<success/);
    });

    it("refuses another account's, an unknown and an expired previd with item-not-found (SPEC F5)", async () => {
      const expiring = track(await smSession(mux.directPort, "alice", "alicepw", "short", 1));
      assert.equal(expiring.max, 1, "the client's wish bounds the hibernation");
      expiring.c.close();
      const ended = await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="expired"`);
      await until("the 1 s hibernation expired", async () => (await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="expired"`)) > ended);
      for (const previd of [canary.id, "no-such-session", expiring.id]) {
        const c = track(await authenticated(mux.directPort, "alice", "alicepw"));
        c.send(`<resume xmlns='${SM}' previd='${previd}' h='0'/>`);
        await c.waitFor(/<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/failed>/);
        // After a failed resume the client binds as usual.
        c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
        await c.waitFor(/<jid>alice@localhost\/[^<]+<\/jid>/);
      }
      assert.doesNotMatch(canary.c.text, /<stream:error/, "the canary is untouched");
    });

    it("lets exactly one of many concurrent resumes of one session through (SPEC F5)", async () => {
      const a = track(await smSession(mux.directPort, "alice", "alicepw", "storm"));
      a.c.close();
      await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) >= 1);
      const clients = await Promise.all(Array.from({ length: 12 }, () => authenticated(mux.directPort, "alice", "alicepw").then(track)));
      for (const c of clients) c.send(`<resume xmlns='${SM}' previd='${a.id}' h='${a.acked}'/>`);
      await until("every resume answered", () => clients.every((c) => /<resumed |<failed |<stream:error/.test(c.text)));
      // Those that arrive while one is under way are refused; one arriving after it completed takes the session
      // over like any resume, closing the connection before it with <conflict/>. Either way one connection holds it.
      const resumed = clients.filter((c) => /<resumed /.test(c.text));
      const holders = resumed.filter((c) => !/<conflict /.test(c.text));
      assert.ok(resumed.length >= 1);
      assert.equal(holders.length, 1, "exactly one connection holds the session");
      assert.ok(clients.filter((c) => !/<resumed /.test(c.text)).every((c) => /<failed xmlns='urn:xmpp:sm:3'><unexpected-request/.test(c.text)),
        "the others were refused as concurrent");
      holders[0]?.send(`<message to='${a.jid}' type='chat' id='w'><body>winner</body></message>`);
      await holders[0]?.waitFor(/winner/);
      assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernated_sessions"), 0);
    });

    it("writes a fanned-out room message and the <r/> after it to each device in one TLS record (SPEC F3, C1)", async () => {
      const room = `batch-${serverSm ? "sm" : "nosm"}-${Date.now().toString(36)}@conference.localhost`;
      const join = (c: RawClient, nick: string) => {
        c.send(`<presence to='${room}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
        return c.waitFor(/<subject/, 10_000); // the end of the join (XEP-0045 §7.2.15)
      };
      const bob = track(await RawClient.connect(mux.directPort)); // without SM: it need not acknowledge
      await bob.login("bob", "bobpw", "batch");
      await join(bob, "bob");
      const devices = [track(await smSession(mux.directPort, "alice", "alicepw", "batch1")), track(await smSession(mux.directPort, "alice", "alicepw", "batch2"))];
      for (const [i, d] of devices.entries()) {
        d.c.reads = [];
        await join(d.c, "alice");
        if (i === 1) {
          // SPEC B4: the second device's join is answered from mucmux's cache in one turn, so in one record.
          const answer = d.c.reads.find((r) => r.includes("<subject")) ?? "";
          assert.match(answer, /^<presence .*from='[^']*\/bob'.*<status code='110'\/>.*<subject.*<r xmlns='urn:xmpp:sm:3'\/>$/s, `one record: ${JSON.stringify(d.c.reads)}`);
        }
        // Everything so far acknowledged, and mucmux has read that (its answer to our <r/> comes after it): the next
        // stanza toward the device is a new burst, with an <r/> of its own.
        await new Promise((r) => setTimeout(r, 100));
        d.c.send(`<a xmlns='${SM}' h='${d.acked + d.c.stanzas()}'/>`);
        assert.equal(await handled(d.c), 2, "the initial presence and the join were read");
      }
      for (const d of devices) d.c.reads = [];
      bob.send(`<message to='${room}' type='groupchat' id='b1'><body>all at once</body></message>`);
      for (const d of devices) {
        await d.c.waitFor(/all at once.*<r xmlns='urn:xmpp:sm:3'\/>/s);
        const read = d.c.reads.find((r) => r.includes("all at once")) ?? "";
        assert.match(read, /all at once<\/body>.*<\/message><r xmlns='urn:xmpp:sm:3'\/>$/s, `one record for the message and its <r/>: ${JSON.stringify(d.c.reads)}`);
      }
    });

    it("closes the stream for an acknowledgement above what was sent, and for malformed counts (SPEC F3)", async () => {
      const a = track(await smSession(mux.directPort, "alice", "alicepw", "liar"));
      a.c.send(`<a xmlns='${SM}' h='1000'/>`);
      await a.c.waitFor(/<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>.*<handled-count-too-high xmlns='urn:xmpp:sm:3' h='1000' send-count='\d+'\/>/);
      await a.c.waitClosed();
      for (const h of ["-1", "abc", "4294967296", "01", ""]) {
        const b = track(await smSession(mux.directPort, "alice", "alicepw", "bogus"));
        b.c.send(`<a xmlns='${SM}' h='${h}'/>`);
        await b.c.waitFor(/<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
        await b.c.waitClosed();
      }
      const before = canary.c.text.length;
      canary.c.send(`<message to='${canary.jid}' type='chat' id='c1'><body>canary sings</body></message>`);
      await canary.c.waitFor(/canary sings/);
      assert.doesNotMatch(canary.c.text.slice(before), /<stream:error/);
    });
  });
}

suite("Prosody 0.12", (o) => startProsody(o), true);
suite("Prosody 0.12", (o) => startProsody(o), false);
suite("ejabberd 23.01", (o) => startEjabberd(o), true);
suite("ejabberd 23.01", (o) => startEjabberd(o), false);

describe("stream management bounds (SPEC F3, F4), Prosody 0.12", () => {
  let server: XmppTestServer;
  let mux: TestMucmux;
  const open: RawClient[] = [];
  before(async () => {
    server = await startProsody();
    mux = await startMucmux({ upstreamPort: server.port, extra: { sm: { maxQueueStanzas: 20 } } });
  });
  after(async () => {
    for (const c of open) c.close();
    await mux?.stop();
    await server?.stop();
  });

  it("enables SM inline in Bind2, and that session resumes like any other (SPEC F1)", async () => {
    const c = await RawClient.connect(mux.directPort);
    open.push(c);
    c.open();
    await c.waitFor(/<authentication xmlns='urn:xmpp:sasl:2'>.*<feature var='urn:xmpp:sm:3'\/>.*<\/authentication>/);
    c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${plain("alice", "alicepw")}</initial-response>` +
      `<bind xmlns='urn:xmpp:bind:0'><tag>inline</tag><enable xmlns='${SM}' resume='true'/></bind></authenticate>`);
    const m = await c.waitFor(/<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true' max='300'\/><\/bound>/);
    const jid = (await c.waitFor(/<authorization-identifier>([^<]+)<\/authorization-identifier>/))[1] as string;
    c.send("<presence/>");
    c.send(`<message to='${jid}' type='chat' id='i1'><body>inline one</body></message>`);
    await c.waitFor(/inline one/);
    c.close();
    await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) === 1);
    const back = await authenticated(mux.directPort, "alice", "alicepw");
    open.push(back);
    back.send(`<resume xmlns='${SM}' previd='${m[1]}' h='0'/>`);
    await back.waitFor(/<resumed xmlns='urn:xmpp:sm:3' [^>]*h='2'\/>/);
    await back.waitFor(/inline one/); // never acknowledged: sent again
  });

  it("a client that never acknowledges is closed at the bound; a hibernated session over it ends; others are untouched", async () => {
    const canary = await smSession(mux.directPort, "carol", "carolpw", "canary");
    const bob = { c: await RawClient.connect(mux.directPort) }; // without SM: it need not acknowledge what it gets
    open.push(canary.c, bob.c);
    await bob.c.login("bob", "bobpw", "sender");
    bob.c.send("<presence/>");
    // Connected, never acknowledging: closed once more than 20 stanzas wait.
    const silent = await RawClient.connect(mux.directPort);
    open.push(silent);
    const jid = await silent.login("alice", "alicepw", "silent");
    silent.send(`<enable xmlns='${SM}'/>`);
    await silent.waitFor(/<enabled xmlns='urn:xmpp:sm:3'\/>/);
    for (let i = 0; i < 25; i++) bob.c.send(`<message to='${jid}' type='chat' id='n${i}'><body>never acked ${i}</body></message>`);
    await silent.waitFor(/<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    await silent.waitClosed();
    // Hibernated: the queue is bounded the same way, and the session ends as a disconnect. (1:1 messages wait at
    // the server, which keeps its own side hibernated; room messages come through the account's anchor.)
    const room = `bounds-${Date.now().toString(36)}@conference.localhost`;
    const joinRoom = async (c: RawClient, nick: string) => {
      c.send(`<presence to='${room}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
      await c.waitFor(new RegExp(`from='${room}/${nick}'[^>]*>.*?<status code='110'/>`));
    };
    await joinRoom(bob.c, "bob");
    const away = await smSession(mux.directPort, "alice", "alicepw", "away");
    await joinRoom(away.c, "alice");
    away.c.close();
    await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) === 1);
    const overflow = await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="overflow"`);
    for (let i = 0; i < 25; i++) bob.c.send(`<message to='${room}' type='groupchat' id='h${i}'><body>while away ${i}</body></message>`);
    await until("the hibernated session ended at the bound",
      async () => (await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="overflow"`)) === overflow + 1);
    assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernated_sessions"), 0);
    const back = await authenticated(mux.directPort, "alice", "alicepw");
    open.push(back);
    back.send(`<resume xmlns='${SM}' previd='${away.id}' h='${away.acked}'/>`);
    await back.waitFor(/<failed xmlns='urn:xmpp:sm:3'><item-not-found/);
    canary.c.send(`<message to='${canary.jid}' type='chat' id='c'><body>canary sings</body></message>`);
    await canary.c.waitFor(/canary sings/);
    assert.doesNotMatch(canary.c.text + bob.c.text, /<stream:error/);
  });
});
