// The XEP-0198 test driver (test/clients/slix_sm.py: slixmpp 1.8's own xep_0198 plugin) against the real servers
// directly, no mucmux: Prosody 0.12 (mod_smacks) and ejabberd 23.01 (mod_stream_mgmt). Alice enables stream
// management with resumption, sends bob a burst that the server's <a h/> covers completely, loses her connection
// without closing the stream, and resumes; bob's three messages from the gap reach her once each, in order, after
// <resumed/>. Three kinds of loss: "abort" closes the TCP connection (the server sees EOF and hibernates the session),
// "rst" resets it (the same, after a read error), "silent" keeps it open and quiet (the server sees nothing and writes
// bob's messages into the dead connection; only alice's h in <resume/> tells it they were never handled; Prosody 0.12
// would not notice by itself, ejabberd 23.01 after mod_stream_mgmt's ack_timeout, 60 s).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { xml } from "@xmpp/xml";

import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { startSlixSm, type CountedEvent, type SlixSm } from "../support/slix-sm.js";
import { until } from "../support/wait.js";
import { serverRoundTrip } from "./muc-support.js";

const BURST = 20;
const GAP = 3;

/** The server's log line for a session whose connection is gone and that now waits for a resumption. */
const HIBERNATING: Record<XmppTestServer["kind"], RegExp> = {
  prosody: /Session going into hibernation/, // mod_smacks, debug level
  ejabberd: /waiting \d+ seconds for stream resumption/, // mod_stream_mgmt, info level
};

const logSize = (s: XmppTestServer): number => {
  try {
    return readFileSync(s.logFile, "utf8").length;
  } catch {
    return 0;
  }
};
const logSince = (s: XmppTestServer, from: number): string => {
  try {
    return readFileSync(s.logFile, "utf8").slice(from);
  } catch {
    return "";
  }
};

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`XEP-0198 with slixmpp's plugin, directly on ${name}`, () => {
    let server: XmppTestServer;
    const slix: SlixSm[] = [];
    const xmpp: TestClient[] = [];

    before(async () => {
      server = await start();
    });
    after(async () => {
      await Promise.allSettled([...slix.map((c) => c.close()), ...xmpp.map((c) => c.stop())]);
      await server?.stop();
    });

    for (const mode of ["abort", "rst", "silent"] as const) {
      it(`${mode} cut: the burst is acked, the stream resumes, the gap's messages arrive once each and in order`, async (t) => {
        const alice = await startSlixSm({ jid: `alice@localhost/sm-${mode}`, password: "alicepw", port: server.port, ca: server.certFile });
        slix.push(alice);
        const enabled = await alice.waitFor((e) => e.event === "sm_enabled");
        assert.equal(enabled.resume, true, `the server grants resumption: ${JSON.stringify(enabled)}`);
        assert.ok(typeof enabled.sm_id === "string" && enabled.sm_id.length > 0 && enabled.sm_id === enabled.id, "the plugin stored the SM id");
        const aliceJid = (await alice.waitFor((e) => e.event === "session_start")).jid as string;
        assert.equal(aliceJid, `alice@localhost/sm-${mode}`);

        const bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: `b-${mode}` });
        xmpp.push(bob);

        // The burst: 20 chat messages, then <r/>; the server's h covers all of them.
        const before = await alice.status();
        let from = alice.mark();
        alice.send({ cmd: "send", to: bob.jid, body: `burst ${mode} {i}`, type: "chat", count: BURST });
        const sent = await alice.waitFor<CountedEvent>((e) => e.event === "sent", 10_000, from);
        assert.equal(sent.seq - before.seq, BURST, "the plugin counted the burst");
        alice.send({ cmd: "request_ack" });
        const acked = await alice.waitFor<CountedEvent>((e) => e.event === "acked" && (e.h as number) >= sent.seq, 10_000, from);
        assert.equal(acked.h, sent.seq, `<a h/> covers exactly what alice sent: ${JSON.stringify(acked)}`);
        assert.equal(acked.unacked, 0, "nothing left in the plugin's unacked queue");
        await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === `burst ${mode} ${BURST}`, 10_000);
        const burstAtBob = bob.received.filter((el) => el.name === "message" && el.getChildText("body")?.startsWith(`burst ${mode} `)).map((el) => el.getChildText("body"));
        assert.deepEqual(burstAtBob, Array.from({ length: BURST }, (_, i) => `burst ${mode} ${i + 1}`), "bob got the burst once, in order");

        // The cut: no </stream:stream>, no clean close.
        const logFrom = logSize(server);
        from = alice.mark();
        const cutAt = Date.now();
        alice.send({ cmd: "cut", mode });
        const cut = await alice.waitFor<CountedEvent>((e) => e.event === "disconnected", 5000, from);
        assert.equal(cut.sm_id, enabled.sm_id, "the plugin keeps its SM state across the cut");
        if (mode !== "silent") {
          // EOF (or a reset) on the socket: both servers notice at once and keep the session for a resumption.
          await until(`${name} to notice the closed connection`, () => HIBERNATING[server.kind].test(logSince(server, logFrom)), 10_000);
          t.diagnostic(`${name}: hibernation in its log ${Date.now() - cutAt} ms after the cut (an upper bound: ejabberd writes its log lazily)`);
        }

        // The gap: bob writes to alice's full JID; his ping round trip shows the server has routed them.
        for (let i = 1; i <= GAP; i++) {
          await bob.send(xml("message", { to: aliceJid, type: "chat", id: `gap-${mode}-${i}` }, xml("body", {}, `gap ${mode} ${i}`)));
        }
        await serverRoundTrip(bob);
        if (mode === "silent") {
          // What the log shows so far (ejabberd writes it lazily: this can only miss a line, not invent one).
          assert.doesNotMatch(logSince(server, logFrom), HIBERNATING[server.kind], "a silent connection is not noticed (not yet)");
        }
        const gapBodies = Array.from({ length: GAP }, (_, i) => `gap ${mode} ${i + 1}`);
        const isGap = (body: string) => body.startsWith(`gap ${mode} `);
        assert.deepEqual(alice.messages(from).filter((m) => isGap(m.body)), [], "nothing reached alice while she was cut off");

        // The resumption.
        from = alice.mark();
        alice.send({ cmd: "reconnect" });
        const resumed = await alice.waitFor<CountedEvent>((e) => ["resumed", "sm_failed", "session_start"].includes(e.event), 15_000, from);
        assert.equal(resumed.event, "resumed", `the stream resumed, no new session: ${alice.describe()}`);
        assert.equal(resumed.previd, enabled.sm_id);
        assert.equal(resumed.last_ack, acked.h, "<resumed h/> is the h alice already had: the server handled the burst and nothing else");
        const resumedAt = alice.events.indexOf(resumed);
        if (mode === "silent") alice.send({ cmd: "release" });

        // Exactly once: a later message from bob comes after the gap's, and nothing repeats before it.
        await bob.send(xml("message", { to: aliceJid, type: "chat", id: `after-${mode}` }, xml("body", {}, `after ${mode}`)));
        await alice.waitFor((e) => e.event === "message" && e.body === `after ${mode}`, 10_000, resumedAt);
        const afterResume = alice.messages(resumedAt).map((m) => m.body).filter((b) => isGap(b) || b === `after ${mode}`);
        assert.deepEqual(afterResume, [...gapBodies, `after ${mode}`], "after <resumed/>: the gap's messages once each, in order, then the next one");
        assert.deepEqual(alice.messages().filter((m) => isGap(m.body)).map((m) => m.body), gapBodies, "and nowhere else");
        for (const m of alice.messages(resumedAt).filter((x) => isGap(x.body))) assert.equal(m.from, bob.jid);
        assert.equal(alice.events.slice(from).filter((e) => e.event === "session_start").length, 0, "no new session");

        // The counters agree with the server: alice acks what she handled, and her own stanzas are still all acked.
        from = alice.mark();
        alice.send({ cmd: "request_ack" });
        const after = await alice.waitFor<CountedEvent>((e) => e.event === "acked", 10_000, from);
        assert.equal(after.unacked, 0);
        assert.ok(after.handled >= GAP + 1, `alice counted the gap's messages and the next one as handled: ${JSON.stringify(after)}`);
        t.diagnostic(`${name} ${mode}: resumed with h=${String(resumed.last_ack)}; alice handled ${after.handled}; ` +
          `delay stamps on the gap's messages: ${alice.messages(resumedAt).filter((m) => isGap(m.body)).map((m) => m.delay ?? "none").join(", ")}`);

        assert.equal(await alice.close(), 0, "slix_sm exits cleanly");
        await bob.stop();
      });
    }
  });
}

suite("Prosody 0.12", () => startProsody({ debugLog: true }));
suite("ejabberd 23.01", () => startEjabberd());
