// Self-test of the SCRAM test client (test/support/scram-client.ts), used for the SPEC A14 tests, against
// real servers and not through mucmux: Prosody 0.12 and ejabberd 23.01 (plain password storage, so it
// offers SCRAM-SHA-1, -256 and -512). Every SCRAM hash a server offers logs in (server signature verified,
// resource bound), a wrong password gets not-authorized, and the hooks for malformed input reach the wire.
// Neither server here does tls-exporter or tls-server-end-point, so -PLUS is not exercised here.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEjabberd } from "../support/ejabberd.js";
import { startProsody } from "../support/prosody.js";
import { readFeatures, scramLogin, type ScramLoginOptions, type ScramLoginResult, type ScramMechanism } from "../support/scram-client.js";
import type { XmppTestServer } from "../support/server.js";
import { parseStanza } from "../support/stanzas.js";

const PLAIN_SCRAM = /^SCRAM-SHA-(1|256|512)$/;

function selfTest(name: string, start: () => Promise<XmppTestServer>, mustOffer: ScramMechanism[]): void {
  describe(`scram-client against ${name}`, () => {
    let server: XmppTestServer;
    const open: ScramLoginResult[] = [];
    before(async () => { server = await start(); });
    after(async () => {
      for (const r of open) r.conn.close();
      await server?.stop();
    });

    const login = async (o: Partial<ScramLoginOptions> & Pick<ScramLoginOptions, "mechanism">): Promise<ScramLoginResult> => {
      const transport = o.transport ?? "starttls";
      const port = transport === "direct" ? server.directTlsPort : server.port;
      assert.ok(port, "server has the port");
      const r = await scramLogin({ username: "alice", password: "alicepw", bind: false, ...o, transport, port });
      open.push(r);
      return r;
    };

    it(`offers ${mustOffer.join(", ")}; each SCRAM hash it offers logs in over STARTTLS and direct TLS and binds`, async () => {
      const probe = await login({ mechanism: "SCRAM-SHA-1" });
      const offered = probe.features.mechanisms.filter((m): m is ScramMechanism => PLAIN_SCRAM.test(m));
      for (const m of mustOffer) assert.ok(offered.includes(m), `${m} offered (got ${probe.features.mechanisms.join(" ")})`);
      assert.ok(probe.tlsProtocol, "STARTTLS was negotiated");
      for (const mechanism of offered) {
        for (const transport of ["starttls", "direct"] as const) {
          const resource = `${mechanism}-${transport}`;
          const r = await login({ mechanism, transport, bind: resource });
          assert.equal(r.sasl.kind, "success", `${mechanism} over ${transport}: ${JSON.stringify(r.sasl)}`);
          assert.equal(r.jid, `alice@localhost/${resource}`);
          assert.ok(r.postAuthFeatures?.element.getChild("bind", "urn:ietf:params:xml:ns:xmpp-bind"), "post-auth features offer bind");
        }
      }
    });

    it("a wrong password fails with not-authorized, for each SCRAM hash offered", async () => {
      const probe = await login({ mechanism: "SCRAM-SHA-1", password: "wrong" });
      assert.equal(probe.sasl.kind === "failure" && probe.sasl.condition, "not-authorized");
      for (const mechanism of probe.features.mechanisms.filter((m): m is ScramMechanism => PLAIN_SCRAM.test(m))) {
        const r = await login({ mechanism, password: "wrong" });
        assert.equal(r.sasl.kind === "failure" && r.sasl.condition, "not-authorized", `${mechanism}: ${JSON.stringify(r.sasl)}`);
      }
    });

    it("the malformed-input hooks reach the server: a bad proof, a changed nonce, garbage base64, a raw <auth>", async () => {
      const badProof = await login({ mechanism: "SCRAM-SHA-1", clientFinal: (m) => m.replace(/p=[^,]*$/, "p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=") });
      assert.equal(badProof.sasl.kind === "failure" && badProof.sasl.condition, "not-authorized");
      // The proof is computed over the rewritten message, so only the nonce check can catch it.
      const badNonce = await login({ mechanism: "SCRAM-SHA-1", clientFinalWithoutProof: (m) => m.replace(/r=/, "r=x") });
      assert.equal(badNonce.sasl.kind, "failure", JSON.stringify(badNonce.sasl));
      const garbage = await login({ mechanism: "SCRAM-SHA-1", authText: "not base64!" });
      assert.ok(garbage.sasl.kind === "failure" || garbage.sasl.kind === "stream-error", JSON.stringify(garbage.sasl));
      const raw = await login({ mechanism: "SCRAM-SHA-1", authElement: "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/>" });
      assert.equal(raw.sasl.kind === "failure" && raw.sasl.condition, "invalid-mechanism");
    });

    it("after binding, the connection is a raw stream: an IQ round trip, then close", async () => {
      const r = await login({ mechanism: "SCRAM-SHA-1", bind: "raw" });
      r.conn.send("<iq type='get' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>");
      const answer = await r.conn.waitFor((el) => el.name === "iq" && el.attrs.id === "ping-1");
      assert.equal(answer.attrs.type, "result");
      r.conn.close();
      await r.conn.waitClosed();
    });
  });
}

selfTest("Prosody 0.12", () => startProsody({ muc: false }), ["SCRAM-SHA-1"]);
selfTest("ejabberd 23.01", () => startEjabberd({ muc: false, passwordFormat: "plain" }), ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"]);

describe("scram-client reads stream features", () => {
  it("mechanisms, STARTTLS and XEP-0440 channel-binding types", () => {
    const f = readFeatures(parseStanza("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>" +
      "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>" +
      "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/></sasl-channel-binding>" +
      "</stream:features>"));
    assert.deepEqual(f.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    assert.deepEqual(f.channelBindings, ["tls-exporter", "tls-server-end-point"]);
    assert.equal(f.starttls, false);
  });
});
