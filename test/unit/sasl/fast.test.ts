// FAST tokens (SPEC A15) in a real SQLite store: what the client proves unlocks the sealed secret; replays,
// expiry, revocation and rotation.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { FastTokens, parseHtResponse } from "../../../src/sasl/fast.js";
import { SqliteStore } from "../../../src/store/sqlite.js";

const DAY = 86_400_000;
const initiator = (token: string) => createHmac("sha256", token).update("Initiator").digest();

function setup() {
  let now = 1_800_000_000_000;
  const store = new SqliteStore(":memory:");
  const fast = new FastTokens({ store: () => store, ttlMs: 14 * DAY, now: () => now });
  return { store, fast, advance: (ms: number) => { now += ms; } };
}

describe("SPEC A15: FAST tokens", () => {
  it("a token unlocks the secret it was issued with; the server answers HMAC(token, 'Responder'); nothing clear is stored", async () => {
    const { store, fast } = setup();
    const issued = await fast.issue("alice@x", "ua-1", { kind: "password", password: "alicepw" });
    assert.ok(issued);
    const found = await fast.check("alice@x", initiator(issued.token), undefined);
    assert.deepEqual(found?.secret, { kind: "password", password: "alicepw" });
    assert.deepEqual(found?.responder, createHmac("sha256", issued.token).update("Responder").digest());
    const row = await store.fastToken("alice@x", createHash("sha256").update(initiator(issued.token)).digest(), 0);
    assert.ok(row);
    for (const blob of [row.hash, row.sealed, row.responder]) {
      assert.equal(blob.includes(Buffer.from("alicepw")), false);
      assert.equal(blob.includes(Buffer.from(issued.token)), false);
      assert.equal(blob.includes(initiator(issued.token)), false);
    }
    assert.equal(await fast.check("alice@x", initiator(`${issued.token}x`), undefined), undefined, "another token");
    assert.equal(await fast.check("bob@x", initiator(issued.token), undefined), undefined, "another account");
  });

  it("a ClientKey secret (imported verifier) survives the seal", async () => {
    const { fast } = setup();
    const secret = { kind: "client-key" as const, hash: "SHA-1" as const, clientKey: Buffer.alloc(20, 1), serverKey: Buffer.alloc(20, 2), salt: Buffer.alloc(16, 3), iterations: 4096 };
    const issued = await fast.issue("alice@x", "", secret);
    assert.deepEqual((await fast.check("alice@x", initiator(issued!.token), undefined))?.secret, secret);
  });

  it("count must grow; an expired or revoked token is refused", async () => {
    const { fast, advance } = setup();
    const issued = (await fast.issue("alice@x", "ua", { kind: "password", password: "pw" }))!;
    const proof = initiator(issued.token);
    assert.ok(await fast.check("alice@x", proof, 5));
    assert.equal(await fast.check("alice@x", proof, 5), undefined, "a replay");
    assert.equal(await fast.check("alice@x", proof, 4), undefined);
    assert.ok(await fast.check("alice@x", proof, 6));
    advance(14 * DAY + 1);
    assert.equal(await fast.check("alice@x", proof, 7), undefined, "expired");
    const again = (await fast.issue("alice@x", "ua", { kind: "password", password: "pw" }))!;
    await fast.revoke("alice@x", initiator(again.token));
    assert.equal(await fast.check("alice@x", initiator(again.token), undefined), undefined, "revoked");
  });

  it("rotation keeps the newest two tokens per account and client", async () => {
    const { fast, advance } = setup();
    const tokens = [];
    for (let i = 0; i < 3; i++) {
      tokens.push((await fast.issue("alice@x", "ua", { kind: "password", password: "pw" }))!.token);
      advance(1);
    }
    const other = (await fast.issue("alice@x", "other-client", { kind: "password", password: "pw" }))!.token;
    assert.equal(await fast.check("alice@x", initiator(tokens[0]!), undefined), undefined, "the oldest went");
    assert.ok(await fast.check("alice@x", initiator(tokens[1]!), undefined));
    assert.ok(await fast.check("alice@x", initiator(tokens[2]!), undefined));
    assert.ok(await fast.check("alice@x", initiator(other), undefined), "another client's token stays");
  });

  it("parses the HT initial response strictly; FAST off issues nothing", async () => {
    const proof = Buffer.alloc(32, 7);
    assert.deepEqual(parseHtResponse(Buffer.concat([Buffer.from("alice\0"), proof])), { username: "alice", initiator: proof });
    assert.equal(parseHtResponse(Buffer.concat([Buffer.from("alice\0"), proof.subarray(1)])), undefined, "short proof");
    assert.equal(parseHtResponse(Buffer.concat([Buffer.from("\0"), proof])), undefined, "no username");
    assert.equal(parseHtResponse(proof), undefined, "no separator");
    assert.equal(parseHtResponse(Buffer.concat([Buffer.from([0xff, 0]), proof])), undefined, "not UTF-8");
    const off = new FastTokens({ store: () => new SqliteStore(":memory:"), ttlMs: 0 });
    assert.equal(off.enabled, false);
    assert.equal(await off.issue("a@x", "", { kind: "password", password: "pw" }), undefined);
  });
});
