// XEP-0198 with xmpp.js's own stream management through mucmux (SPEC F1, F5), in front of real Prosody 0.12: enabled inline in Bind2 at a SASL2 login, the connection lost, and the session resumed inline
// in the next SASL2 authentication, as Conversations and Monal do it; what was sent meanwhile arrives once.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import type { XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { until } from "../support/wait.js";

interface XmppSm { id: string; enabled: boolean; on(event: "resumed", f: () => void): void }
interface XmppEntity { streamManagement: XmppSm; reconnect: { start(): void; stop(): void; delay: number } }

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`xmpp.js stream management through mucmux, ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const open: TestClient[] = [];
    before(async () => {
      server = await start();
      mux = await startMucmux({ upstreamPort: server.port });
    });
    after(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
    });

    it("enables SM inline in Bind2, and resumes inline in SASL2 after the connection is lost", async () => {
      const a = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "alice", password: "alicepw", sasl2: true, sm: true });
      const bob = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "bob", password: "bobpw", resource: "b" });
      open.push(a, bob);
      await a.send(xml("presence"));
      await bob.send(xml("presence"));
      const entity = a.xmpp as unknown as XmppEntity;
      const sm = entity.streamManagement;
      await until("SM enabled inline", () => sm.enabled && sm.id !== "");
      assert.equal(await metric(mux.adminPort, "mucmux_sm_enabled_total", `resume="true"`), 1);
      const jid = a.jid;
      // The network goes away: no stream close. xmpp.js reconnects by itself and resumes in its SASL2 authenticate.
      const resumed = new Promise<void>((resolve) => sm.on("resumed", resolve));
      const sent: string[] = [];
      (a.xmpp as unknown as { on(event: "send", f: (el: { toString(): string }) => void): void }).on("send", (el) => void sent.push(el.toString()));
      entity.reconnect.delay = 500;
      entity.reconnect.start();
      // Cut at mucmux's end of the connection (destroying xmpp.js's socket under it races its own data handler).
      const link = [...mux.app.links].find((l) => l.jid === jid);
      assert.ok(link, "alice's session");
      link.client.socket.destroy();
      await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) === 1, 5000);
      const mark = a.received.length;
      for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: jid, type: "chat", id: `gap${i}` }, xml("body", {}, `gap ${i}`)));
      await resumed;
      await until("the gap's messages", () => a.received.slice(mark).filter((el) => el.getChildText("body")?.startsWith("gap ")).length >= 3, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      const bodies = a.received.slice(mark).map((el) => el.getChildText("body")).filter((b) => b?.startsWith("gap "));
      assert.deepEqual(bodies, ["gap 1", "gap 2", "gap 3"], "once each, in order");
      assert.ok(sent.some((x) => /^<authenticate [^]*<resume xmlns="urn:xmpp:sm:3"/.test(x)), "resumed inline in the SASL2 authenticate");
      assert.ok(!sent.some((x) => /^<resume /.test(x)), "not with a separate <resume/>");
      assert.equal(a.xmpp.jid?.toString(), jid, "the same session");
      assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="resumed"`), 1);
      entity.reconnect.stop();
    });
  });
}

// Prosody only: in front of ejabberd, xmpp.js 0.14 reconnects a second time right after about one resume in three
// and binds a new session (its own reconnect racing the resumed connection; mucmux logs the resume as complete).
// Resumption in front of ejabberd is covered with slixmpp (sm-slixmpp) and on the wire (sm-wire).
suite("Prosody 0.12", () => startProsody());
