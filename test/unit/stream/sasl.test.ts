// SASL termination and the upstream SASL client (SPEC A2).
import { test } from "node:test";
import assert from "node:assert/strict";
import { credentialAuth, StaleKey } from "../../../src/stream/sasl-client.js";
import { passwordCredentials } from "../../../src/account/credentials.js";
import { keysOf } from "../../../src/sasl/scram.js";
import { parsePlain, authzidAllowed, mapUpstreamFailure } from "../../../src/stream/sasl-server.js";

const pw = (username: string, password: string) => credentialAuth(passwordCredentials(username, password));
const start = (username: string, password: string, mech: string, nonce: string) =>
  credentialAuth(passwordCredentials(username, password), nonce).start(mech);

test("SPEC A2: SCRAM-SHA-1 matches the RFC 5802 §5 example", async () => {
  const c = start("user", "pencil", "SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL");
  assert.equal(c.initial(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  const final = await c.step("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  assert.equal(final, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  assert.equal(c.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), true);
  assert.equal(c.verify("v=AAAApqV8S7suAoZWja4dJRkFsKQ="), false);
});

test("SPEC A2: SCRAM-SHA-256 matches the RFC 7677 §3 example", async () => {
  const c = start("user", "pencil", "SCRAM-SHA-256", "rOprNGfwEbeRWgbNEkqO");
  const final = await c.step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  assert.equal(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  assert.equal(c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), true);
});

test("SPEC A2: SCRAM rejects a server nonce that does not extend ours and absurd iteration counts", async () => {
  await assert.rejects(start("user", "pencil", "SCRAM-SHA-1", "abc").step("r=xyz123,s=QSXCR+Q6sek8bf92,i=4096"), /server-first/);
  await assert.rejects(start("user", "pencil", "SCRAM-SHA-1", "abc").step("r=abc123,s=QSXCR+Q6sek8bf92,i=99999999"), /iteration/);
});

test("SPEC A2: strongest upstream mechanism first; PLAIN only where allowed", () => {
  assert.equal(pw("a", "b").choose(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"], true), "SCRAM-SHA-256");
  assert.equal(pw("a", "b").choose(["SCRAM-SHA-1", "SCRAM-SHA-512", "SCRAM-SHA-256"], true), "SCRAM-SHA-512");
  assert.equal(pw("a", "b").choose(["PLAIN", "SCRAM-SHA-1"], false), "SCRAM-SHA-1");
  assert.equal(pw("a", "b").choose(["PLAIN"], true), "PLAIN");
  assert.equal(pw("a", "b").choose(["PLAIN", "SCRAM-SHA-1-PLUS"], false), undefined);
});

test("SPEC A11: a SCRAM password login tells the upstream's salt and count; SPEC A12: a ClientKey logs in with them", async () => {
  const auth = credentialAuth(passwordCredentials("user", "pencil"), "fyko+d2lbbFgONRv9qkxdawL");
  await auth.start("SCRAM-SHA-1").step("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  const learned = auth.learned();
  assert.ok(learned);
  assert.equal(learned.iterations, 4096);
  const keys = keysOf("SHA-1", learned.salted);
  const withKey = credentialAuth({
    username: "user",
    secret: { kind: "client-key", hash: "SHA-1", clientKey: keys.clientKey, serverKey: keys.serverKey, salt: learned.salt, iterations: 4096 },
  }, "fyko+d2lbbFgONRv9qkxdawL");
  assert.equal(withKey.choose(["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"], true), "SCRAM-SHA-1", "a ClientKey only fits its own hash");
  assert.equal(withKey.choose(["SCRAM-SHA-256", "PLAIN"], true), undefined);
  const c = withKey.start("SCRAM-SHA-1");
  // The same proof as with the password: the RFC 5802 example, without ever knowing "pencil".
  assert.equal(await c.step("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"),
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  assert.equal(c.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), true);
  // SPEC A11: another salt upstream means the password changed there: stale, and no proof is sent.
  const again = withKey.start("SCRAM-SHA-1");
  again.initial();
  await assert.rejects(again.step("r=fyko+d2lbbFgONRv9qkxdawLxyz,s=AAAAAAAAAAAAAAAA,i=4096"), StaleKey);
});

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

test("SPEC A2: PLAIN messages from clients are parsed strictly", () => {
  assert.deepEqual(parsePlain(b64("\0alice\0secret")), { authzid: "", username: "alice", password: "secret" });
  assert.deepEqual(parsePlain(b64("alice@example.test\0alice\0pä ss")), { authzid: "alice@example.test", username: "alice", password: "pä ss" });
  assert.equal(parsePlain("***"), "incorrect-encoding");
  assert.equal(parsePlain(Buffer.from([0, 0x61, 0, 0xff]).toString("base64")), "incorrect-encoding");
  assert.equal(parsePlain(b64("alice\0secret")), "malformed-request");
  assert.equal(parsePlain("="), "malformed-request");
  assert.equal(parsePlain(b64("\0alice@evil\0secret")), "not-authorized");
  assert.equal(parsePlain(b64("\0\0secret")), "not-authorized");
});

test("SPEC A2: authzid may only name the account itself", () => {
  assert.equal(authzidAllowed("", "alice", "example.test"), true);
  assert.equal(authzidAllowed("Alice@Example.test", "alice", "example.test"), true);
  assert.equal(authzidAllowed("bob@example.test", "alice", "example.test"), false);
});

test("SPEC A2: upstream failures map to the client's conditions", () => {
  assert.equal(mapUpstreamFailure("not-authorized"), "not-authorized");
  assert.equal(mapUpstreamFailure("account-disabled"), "account-disabled");
  assert.equal(mapUpstreamFailure("invalid-mechanism"), "temporary-auth-failure");
  assert.equal(mapUpstreamFailure("something-new"), "temporary-auth-failure");
});
