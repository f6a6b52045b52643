// SASL2 + Bind2 + FAST toward clients (SPEC A15), with xmpp.js's own SASL2, Bind2 and FAST (HT-SHA-256-NONE)
// implementations, in front of a real Prosody 0.12 and ejabberd 23.01 (neither speaks SASL2 itself: mucmux logs in
// upstream with SASL1 and binds the resource classically).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { xml } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type ConnectOptions, type FastToken, type TestClient } from "../support/clients.js";
import { TEST_TMP } from "../support/certs.js";
import { until } from "../support/wait.js";
import { join } from "./muc-support.js";
import { RawClient } from "../support/raw-client.js";
import { addTestSecret } from "../support/log-audit.js";

const authCount = (mux: TestMucmux, labels: string) => metric(mux.adminPort, "mucmux_client_auth_total", labels);

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`SASL2, Bind2 and FAST on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    let dir: string;
    const open: TestClient[] = [];
    const startMux = () => startMucmux({ upstreamPort: server.port, storePath: path.join(dir, "mucmux.sqlite") });
    const login = async (o: Partial<ConnectOptions> & { username: string }) => {
      const c = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", password: `${o.username}pw`, sasl2: true, ...o });
      open.push(c);
      return c;
    };

    before(async () => {
      server = await start();
      dir = mkdtempSync(path.join(TEST_TMP, "sasl2-"));
      mux = await startMux();
    });
    after(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("SPEC A15: PLAIN over SASL2 with Bind2: the resource comes from the tag, carbons are on from the start", async () => {
      const before = await authCount(mux, 'mechanism="PLAIN",path="plain",result="success"');
      const phone = await login({ username: "alice", resource: "phone", carbons: true });
      assert.match(phone.jid, /^alice@localhost\/phone\.[A-Za-z0-9_-]{8}$/, "XEP-0386: tag plus a generated part");
      assert.equal(await authCount(mux, 'mechanism="PLAIN",path="plain",result="success"'), before + 1);
      const desk = await login({ username: "alice", resource: "desk", sasl2: false });
      const bob = await login({ username: "bob", resource: "b", sasl2: false });
      // ejabberd copies only to available resources.
      for (const c of [phone, desk]) await c.send(xml("presence"));
      // bob writes to alice's other session: the Bind2 session gets the carbon without an IQ of its own (inline enable).
      await bob.send(xml("message", { to: desk.jid, type: "chat", id: "c1" }, xml("body", {}, "to the desk")));
      const carbon = await phone.waitFor((el) => el.name === "message" && !!el.getChild("received", "urn:xmpp:carbons:2"), 5000);
      assert.equal(carbon.getChild("received")?.getChild("forwarded")?.getChild("message")?.getChildText("body"), "to the desk");
      assert.equal(phone.received.some((el) => el.name === "iq" && (el.attrs.id ?? "").startsWith("mm")), false, "mucmux's own bind and carbons IQs stay with mucmux");
    });

    it("SPEC A15: FAST: a token from the first login logs in without the password, also after a mucmux restart; the anchor comes up from it", async () => {
      let token: FastToken | undefined;
      // The log audit fails the test if a token ever shows up in mucmux's log (SPEC A3).
      await login({ username: "carol", resource: "c1", fast: { onToken: (t) => { token = t; addTestSecret(t.token); } } });
      assert.ok(token, "the server issued a FAST token");
      assert.equal(token.mechanism, "HT-SHA-256-NONE");
      const stored = await mux.app.store?.fastToken("carol@localhost", Buffer.alloc(32), Date.now());
      assert.equal(stored, undefined);
      const fastOk = () => authCount(mux, 'mechanism="HT-SHA-256-NONE",path="fast",result="success"');
      const c2 = await login({ username: "carol", password: "not-the-password", resource: "c2", fast: { token } });
      assert.match(c2.jid, /^carol@localhost\/c2\./);
      assert.equal(await fastOk(), 1);

      await Promise.allSettled(open.splice(0).map((c) => c.stop()));
      await mux.stop();
      mux = await startMux();
      const c3 = await login({ username: "carol", password: "not-the-password", resource: "c3", fast: { token } });
      assert.equal(await fastOk(), 1, "the restarted mucmux counts from zero: this is its first FAST login");
      // SPEC A15: the secret the token unlocks is the account's key: the anchor logs in with it.
      await join(c3, `fast${Date.now().toString(36)}@conference.localhost`, "carol");
      assert.equal(mux.app.accounts.get("carol@localhost")?.anchor?.state, "online");

      // A token that is not one mucmux issued: not-authorized, and xmpp.js falls back to the password.
      const before = await authCount(mux, 'mechanism="HT-SHA-256-NONE",path="fast",result="not-authorized"');
      const c4 = await login({ username: "carol", resource: "c4", fast: { token: { ...token, token: `${token.token}x` } } });
      assert.match(c4.jid, /^carol@localhost\/c4\./);
      assert.equal(await authCount(mux, 'mechanism="HT-SHA-256-NONE",path="fast",result="not-authorized"'), before + 1);
    });

    it("SPEC A15: malformed SASL2 and FAST input gets SASL2 failures with the SASL condition; mucmux keeps serving", async () => {
      const AUTH = "urn:xmpp:sasl:2";
      const cases: [string, string][] = [
        [`<authenticate xmlns='${AUTH}' mechanism='X-NOPE'><initial-response>AAAA</initial-response></authenticate>`, "invalid-mechanism"],
        [`<authenticate xmlns='${AUTH}' mechanism='HT-SHA-256-NONE'><initial-response>***</initial-response><fast xmlns='urn:xmpp:fast:0'/></authenticate>`, "incorrect-encoding"],
        [`<authenticate xmlns='${AUTH}' mechanism='HT-SHA-256-NONE'><initial-response>${Buffer.from("alice\0short").toString("base64")}</initial-response><fast xmlns='urn:xmpp:fast:0'/></authenticate>`, "malformed-request"],
        [`<authenticate xmlns='${AUTH}' mechanism='HT-SHA-256-NONE'><initial-response>${Buffer.concat([Buffer.from("alice\0"), Buffer.alloc(32)]).toString("base64")}</initial-response><fast xmlns='urn:xmpp:fast:0' count='1'/></authenticate>`, "not-authorized"],
        [`<authenticate xmlns='${AUTH}' mechanism='PLAIN'><initial-response>${Buffer.from("\0alice\0wrong").toString("base64")}</initial-response></authenticate>`, "not-authorized"],
        [`<authenticate xmlns='${AUTH}' mechanism='SCRAM-SHA-1'><initial-response>${Buffer.from("n,,n=alice").toString("base64")}</initial-response></authenticate>`, "malformed-request"],
        [`<authenticate xmlns='${AUTH}' mechanism='PLAIN'><initial-response>=</initial-response></authenticate>`, "malformed-request"],
      ];
      for (const [auth, condition] of cases) {
        const raw = await RawClient.connect(mux.directPort);
        raw.open();
        await raw.waitFor(/<authentication xmlns='urn:xmpp:sasl:2'>/);
        raw.send(auth);
        const m = await raw.waitFor(/<failure xmlns='urn:xmpp:sasl:2'><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-sasl'\/>/);
        assert.equal(m[1], condition, auth);
        raw.close();
      }
      const c = await login({ username: "alice", resource: "after" });
      assert.match(c.jid, /^alice@localhost\/after\./);
    });

    it("SPEC A15: SCRAM over SASL2: terminated with a learned verifier (xmpp.js checks the signature); relayed without one, and then no token", async () => {
      await until("alice's verifier learned", async () => ((await mux.app.store?.verifiers("alice@localhost")) ?? []).length > 0, 10_000);
      const terminated = await login({ username: "alice", resource: "s", mechanism: "SCRAM-SHA-1" });
      assert.match(terminated.jid, /^alice@localhost\/s\./);
      assert.equal(await authCount(mux, 'mechanism="SCRAM-SHA-1",path="terminated",result="success"'), 1);
      let token: FastToken | undefined;
      await server.register("dave", "davepw"); // never logged in with PLAIN: no verifier
      const relayed = await login({ username: "dave", resource: "r", mechanism: "SCRAM-SHA-1", fast: { onToken: (t) => { token = t; } } });
      assert.match(relayed.jid, /^dave@localhost\/r\./);
      assert.equal(await authCount(mux, 'mechanism="SCRAM-SHA-1",path="relayed",result="success"'), 1);
      assert.equal(token, undefined, "a relayed login gives mucmux no key, so no token that could log in upstream");
    });
  });
}

suite("Prosody 0.12", () => startProsody({ muc: true }));
suite("ejabberd 23.01", () => startEjabberd({ muc: true }));
