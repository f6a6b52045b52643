// SCRAM terminated by mucmux in front of Prosody 0.12, checked with the raw SCRAM test client: -PLUS with
// tls-exporter and tls-server-end-point and XEP-0440 (SPEC A14), and malformed SCRAM messages of every kind and
// every length answered with clear SASL failures and counted, while mucmux keeps serving (SPEC A10).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient } from "../support/clients.js";
import { scramLogin, type ScramLoginOptions, type ScramLoginResult } from "../support/scram-client.js";
import { until } from "../support/wait.js";

let prosody: ProsodyServer;
let mux: TestMucmux;

before(async () => {
  prosody = await startProsody({ muc: false });
  mux = await startMucmux({ upstreamPort: prosody.port, extra: { sasl: { channelBinding: true } } });
  // One PLAIN login each: mucmux learns alice's and carol's SCRAM-SHA-1 verifiers (SPEC A11); bob never logs in with PLAIN.
  for (const user of ["alice", "carol"]) {
    const plain = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: user, password: `${user}pw` });
    await plain.stop();
    await until(`${user}'s verifier learned`, async () => ((await mux.app.store?.verifiers(`${user}@localhost`)) ?? []).length > 0, 10_000);
  }
});

after(async () => {
  await mux?.stop();
  await prosody?.stop();
});

const attempts: ScramLoginResult[] = [];
async function login(o: Partial<ScramLoginOptions>): Promise<ScramLoginResult> {
  const r = await scramLogin({ port: mux.directPort, transport: "direct", username: "alice", password: "alicepw", mechanism: "SCRAM-SHA-1", ...o });
  attempts.push(r);
  r.conn.close();
  return r;
}

const count = (name: string, labels: string) => metric(mux.adminPort, name, labels);

const failed = (r: ScramLoginResult) => (r.sasl.kind === "failure" ? r.sasl.condition : r.sasl.kind);

describe("SPEC A14: channel binding", () => {
  it("offers SCRAM-SHA-1-PLUS and XEP-0440 types for the connection: tls-exporter only on TLS 1.3", async () => {
    const r13 = await login({ bind: false });
    assert.equal(r13.tlsProtocol, "TLSv1.3");
    assert.deepEqual(r13.features.mechanisms, ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]);
    assert.deepEqual(r13.features.channelBindings, ["tls-exporter", "tls-server-end-point"]);
    const r12 = await login({ bind: false, maxTlsVersion: "TLSv1.2" });
    assert.equal(r12.tlsProtocol, "TLSv1.2");
    assert.deepEqual(r12.features.channelBindings, ["tls-server-end-point"]);
  });

  for (const [type, tlsVersion] of [["tls-exporter", undefined], ["tls-server-end-point", undefined], ["tls-server-end-point", "TLSv1.2"]] as const) {
    it(`SCRAM-SHA-1-PLUS with ${type}${tlsVersion ? ` on ${tlsVersion}` : ""} logs in and binds`, async () => {
      const before = await count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1-PLUS",path="terminated",result="success"');
      const r = await login({ mechanism: "SCRAM-SHA-1-PLUS", channelBinding: type, ...(tlsVersion ? { maxTlsVersion: tlsVersion } : {}) });
      assert.equal(r.sasl.kind, "success", JSON.stringify(r.sasl));
      assert.match(r.jid ?? "", /^alice@localhost\//);
      assert.equal(await count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1-PLUS",path="terminated",result="success"'), before + 1);
    });
  }

  it("binding data of another connection, a type this connection cannot give, and 'y' while -PLUS is offered all fail", async () => {
    assert.equal(failed(await login({ mechanism: "SCRAM-SHA-1-PLUS", channelBindingData: Buffer.alloc(32, 7) })), "not-authorized");
    assert.equal(failed(await login({ mechanism: "SCRAM-SHA-1-PLUS", channelBinding: "tls-exporter", maxTlsVersion: "TLSv1.2", bind: false })), "malformed-request");
    assert.equal(failed(await login({ mechanism: "SCRAM-SHA-1-PLUS", channelBinding: "tls-unique", channelBindingData: Buffer.alloc(12) })), "malformed-request");
    assert.equal(failed(await login({ clientFirst: (m) => `y${m.slice(1)}` })), "malformed-request", "RFC 5802: a downgrade");
  });

  it("-PLUS for an account without a verifier cannot be relayed: not-authorized; SCRAM-SHA-1 for it is relayed", async () => {
    assert.equal(failed(await login({ username: "bob", password: "bobpw", mechanism: "SCRAM-SHA-1-PLUS" })), "not-authorized");
    const r = await login({ username: "bob", password: "bobpw" });
    assert.equal(r.sasl.kind, "success", JSON.stringify(r.sasl));
    assert.equal(await count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1",path="relayed",result="success"') >= 1, true);
  });
});

describe("SPEC A10: malformed SCRAM messages get clear SASL failures; mucmux keeps serving", () => {
  const CLEAR = new Set(["malformed-request", "incorrect-encoding", "not-authorized", "invalid-authzid", "client-abort", "success"]);

  // A wrong proof makes alice's verifier suspect (SPEC A11): her next logins would be relayed. So the cases that
  // reach the proof check come last, and the relayed path gets its own test with bob (no verifier).
  it("every field of client-first and client-final broken (terminated: alice has a verifier)", async () => {
    const cases: [string, Partial<ScramLoginOptions>, string][] = [
      ["no gs2 flag", { clientFirst: (m) => m.slice(1) }, "malformed-request"],
      ["unknown gs2 flag", { clientFirst: (m) => `x${m.slice(1)}` }, "malformed-request"],
      ["authzid of another account", { clientFirst: (m) => m.replace(/^n,,/, "n,a=bob@localhost,") }, "invalid-authzid"],
      ["bad saslname escape", { clientFirst: (m) => m.replace("n=alice", "n=al=ice") }, "malformed-request"],
      ["mandatory extension m=", { clientFirst: (m) => m.replace("n=alice", "m=x,n=alice") }, "malformed-request"],
      ["empty nonce", { clientFirst: (m) => m.replace(/r=[^,]*/, "r=") }, "malformed-request"],
      ["no username", { clientFirst: (m) => m.replace("n=alice,", "") }, "malformed-request"],
      ["not base64", { authText: "!!!not base64!!!" }, "incorrect-encoding"],
      ["not UTF-8", { authText: Buffer.from([0x6e, 0x2c, 0x2c, 0xff, 0xfe]).toString("base64") }, "incorrect-encoding"],
      ["empty", { authText: "=" }, "malformed-request"],
      ["huge", { authText: Buffer.from(`n,,n=alice,r=${"a".repeat(5000)}`).toString("base64") }, "malformed-request"],
      ["final: nonce changed", { clientFinalWithoutProof: (m) => m.replace(/r=([^,]*)/, "r=$1x") }, "malformed-request"],
      ["final: channel binding of another header", { clientFinalWithoutProof: (m) => m.replace(/^c=[^,]*/, "c=eSws") }, "not-authorized"],
      ["final: no proof", { clientFinal: (m) => m.replace(/,p=.*$/, "") }, "malformed-request"],
      ["final: proof not base64", { clientFinal: (m) => m.replace(/p=.*$/, "p=***") }, "malformed-request"],
      ["final: not base64", { responseText: "%%%" }, "incorrect-encoding"],
      ["final: cut short", { clientFinal: (m) => m.slice(0, 40) }, "malformed-request"],
      ["final: short proof", { clientFinal: (m) => m.replace(/p=.*$/, "p=AAAA") }, "not-authorized"],
    ];
    for (const [what, o, want] of cases) {
      assert.equal(failed(await login({ bind: false, ...o })), want, what);
    }
    assert.ok(await count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1",path="none",result="malformed-request"') > 0);
    assert.ok(await count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1",path="terminated",result="not-authorized"') > 0);
  });

  it("SPEC A11: after a wrong proof the right password is relayed, proves the stored verifier right: it stays, the next login is terminated", async () => {
    const relayed = () => count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1",path="relayed",result="success"');
    const terminated = () => count("mucmux_client_auth_total", 'mechanism="SCRAM-SHA-1",path="terminated",result="success"');
    assert.equal(failed(await login({ password: "typo", bind: false })), "not-authorized");
    const [r0, t0] = [await relayed(), await terminated()];
    assert.equal((await login({ bind: false })).sasl.kind, "success");
    assert.equal(await relayed(), r0 + 1, "relayed while suspect");
    assert.equal(((await mux.app.store?.verifiers("alice@localhost")) ?? []).length, 1, "the verifier stays: the relayed proof matched it");
    assert.equal((await login({ bind: false })).sasl.kind, "success");
    assert.equal(await terminated(), t0 + 1, "trusted again: terminated");
    // -PLUS is never relayed: while suspect it is still checked against the stored verifier.
    assert.equal(failed(await login({ password: "typo", bind: false })), "not-authorized");
    assert.equal((await login({ mechanism: "SCRAM-SHA-1-PLUS", bind: false })).sasl.kind, "success");
  });

  it("client-first cut at every length, client-final at every third (terminated, then relayed after the first wrong proof)", async () => {
    const whole = "n,,n=carol,r=fyko+d2lbbFgONRv9qkxdawL";
    for (let n = 0; n < whole.length; n++) {
      const r = await login({ username: "carol", password: "carolpw", bind: false, nonce: "fyko+d2lbbFgONRv9qkxdawL", clientFirst: () => whole.slice(0, n) });
      assert.ok(CLEAR.has(failed(r)), `client-first cut at ${n}: ${JSON.stringify(r.sasl)}`);
    }
    for (let n = 0; n < 120; n += 3) {
      const r = await login({ username: "carol", password: "carolpw", bind: false, clientFinal: (m) => m.slice(0, n) });
      assert.ok(CLEAR.has(failed(r)), `client-final cut at ${n}: ${JSON.stringify(r.sasl)}`);
    }
  });

  it("relayed (bob has no verifier): the server's verdict on broken messages reaches the client as a SASL failure", async () => {
    for (const o of [
      { clientFinal: (m: string) => m.replace(/p=.*$/, "p=***") },
      { clientFinal: (m: string) => m.replace(/,p=.*$/, "") },
      { clientFinalWithoutProof: (m: string) => m.replace(/r=([^,]*)/, "r=$1x") },
      { responseText: "%%%" },
      { password: "wrong" },
    ]) {
      const r = await login({ username: "bob", password: "bobpw", bind: false, ...o });
      assert.ok(CLEAR.has(failed(r)) || failed(r) === "temporary-auth-failure", JSON.stringify(r.sasl));
    }
  });

  it("after all of it, a good SCRAM login still works, and a wrong password is not-authorized", async () => {
    const r = await login({ username: "bob", password: "bobpw" });
    assert.equal(r.sasl.kind, "success");
    assert.match(r.jid ?? "", /^bob@localhost\//);
    assert.equal(failed(await login({ password: "wrong", bind: false })), "not-authorized");
    assert.equal(failed(await login({ username: "nobody", password: "nobodypw", bind: false })), "not-authorized", "an unknown user (relayed)");
  });
});
