// The SCRAM server pieces (SPEC A10) and the verifier book (SPEC A11): RFC 5802's example from the server's side,
// the strict grammar, and learned verifiers with their sealed password in a real SQLite store.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  checkProof, decodePayload, keysOf, parseClientFinal, parseClientFirst, saltedPassword, serverFirstMessage, type Verifier,
} from "../../../src/sasl/scram.js";
import { VerifierBook, seal, unseal } from "../../../src/sasl/verifiers.js";
import { parseHtResponse } from "../../../src/sasl/fast.js";
import fc from "fast-check";
import { SqliteStore } from "../../../src/store/sqlite.js";
import { createLogger } from "../../../src/log.js";

const SALT = Buffer.from("QSXCR+Q6sek8bf92", "base64");

async function rfcVerifier(): Promise<Verifier & { clientKey: Buffer }> {
  const keys = keysOf("SHA-1", await saltedPassword("SHA-1", "pencil", SALT, 4096));
  return { hash: "SHA-1", salt: SALT, iterations: 4096, storedKey: keys.storedKey, serverKey: keys.serverKey, clientKey: keys.clientKey };
}

describe("SPEC A10: SCRAM server", () => {
  it("checks RFC 5802 §5's proof, recovers ClientKey and signs like the RFC's server", async () => {
    const v = await rfcVerifier();
    const first = parseClientFirst("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    assert.ok(typeof first === "object");
    const serverFirst = serverFirstMessage("fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", v);
    assert.equal(serverFirst, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    const final = parseClientFinal("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    assert.ok(typeof final === "object");
    assert.equal(final.binding.toString(), "n,,");
    const proven = checkProof(v, `${first.bare},${serverFirst},${final.withoutProof}`, final.proof);
    assert.ok(proven);
    assert.deepEqual(proven.clientKey, v.clientKey);
    assert.equal(proven.serverSignature.toString("base64"), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    assert.equal(checkProof(v, `${first.bare},${serverFirst},${final.withoutProof}x`, final.proof), undefined, "another AuthMessage");
    assert.equal(checkProof(v, "m", Buffer.alloc(19)), undefined, "a proof of the wrong length");
  });

  it("parses client-first strictly", () => {
    assert.deepEqual(parseClientFirst("p=tls-exporter,a=alice@example.test,n=alice,r=abc"), {
      binding: { type: "tls-exporter" }, gs2Header: "p=tls-exporter,a=alice@example.test,", authzid: "alice@example.test",
      username: "alice", nonce: "abc", bare: "n=alice,r=abc",
    });
    assert.equal((parseClientFirst("y,,n=a=2Cb=3Dc,r=x") as { username: string }).username, "a,b=c");
    for (const bad of ["", "n", "n,", "n,,", "n,,n=", "n,,n=a", "n,,n=a,r=", "n,,r=x,n=a", "n,,m=x,n=a,r=b", "q,,n=a,r=b",
      "n,,n=a=b,r=c", "n,,n=a,r=b,c", "n,,n=a,r=b c", "n,b=x,n=a,r=b", `n,,n=a,r=${"x".repeat(5000)}`]) {
      assert.equal(typeof parseClientFirst(bad), "string", JSON.stringify(bad));
    }
  });

  it("parses client-final strictly", () => {
    for (const bad of ["", "c=biws", "c=biws,r=x", "c=biws,r=x,p=", "r=x,c=biws,p=AAAA", "c=***,r=x,p=AAAA", "c=biws,r=x,p=***",
      "c=biws,r=,p=AAAA", "c=biws,r=x,zz,p=AAAA"]) {
      assert.equal(typeof parseClientFinal(bad), "string", JSON.stringify(bad));
    }
  });

  it("decodes payloads: base64 of UTF-8 only", () => {
    assert.deepEqual(decodePayload(Buffer.from("n,,n=ä,r=x").toString("base64")), { text: "n,,n=ä,r=x" });
    assert.deepEqual(decodePayload("="), { error: "malformed-request" });
    assert.deepEqual(decodePayload("a b"), { error: "incorrect-encoding" });
    assert.deepEqual(decodePayload(Buffer.from([0xff, 0xfe]).toString("base64")), { error: "incorrect-encoding" });
  });
});

describe("SPEC A11: the verifier book", () => {
  const setup = () => {
    const store = new SqliteStore(":memory:");
    const changes: string[] = [];
    const book = new VerifierBook({ store: () => store, iterations: 4096, log: createLogger("silent"), onChange: (c, h) => void changes.push(`${c} ${h}`) });
    return { store, book, changes };
  };

  it("learns a verifier per offered hash: the upstream's salt for the hash it used, its own for the others; sealed", async () => {
    const { store, book, changes } = setup();
    const upstreamSalted = await saltedPassword("SHA-1", "pencil", SALT, 4096);
    await book.learn("user@example.test", "pencil", { hash: "SHA-1", salt: SALT, iterations: 4096, salted: upstreamSalted }, ["SHA-256", "SHA-1"]);
    const vs = await store.verifiers("user@example.test");
    assert.deepEqual(vs.map((v) => v.hash).sort(), ["SHA-1", "SHA-256"]);
    const sha1 = vs.find((v) => v.hash === "SHA-1")!;
    const rfc = await rfcVerifier();
    assert.deepEqual([sha1.salt, sha1.iterations, sha1.storedKey, sha1.serverKey, sha1.upstream], [SALT, 4096, rfc.storedKey, rfc.serverKey, true]);
    const sha256 = vs.find((v) => v.hash === "SHA-256")!;
    assert.equal(sha256.upstream, false);
    assert.notDeepEqual(sha256.salt, SALT);
    assert.equal(sha256.iterations, 4096);
    for (const v of vs) assert.equal(v.sealed?.includes(Buffer.from("pencil")), false, "never in clear");
    assert.deepEqual(book.secretFor(sha1, rfc.clientKey), { kind: "password", password: "pencil" });
    assert.deepEqual(changes, ["learned SHA-256", "learned SHA-1"]);
    // The same password again changes nothing; a new one replaces both.
    await book.learn("user@example.test", "pencil", undefined, ["SHA-256", "SHA-1"]);
    assert.equal(changes.length, 2);
    await book.learn("user@example.test", "newpencil", undefined, ["SHA-256", "SHA-1"]);
    assert.deepEqual(changes.slice(2), ["learned SHA-256", "learned SHA-1"]);
    assert.equal((await store.verifiers("user@example.test")).find((v) => v.hash === "SHA-1")?.upstream, false);
  });

  it("a sealed password opens only with its ClientKey and in its own row", async () => {
    const rfc = await rfcVerifier();
    const row = { account: "a@x", hash: "SHA-1" as const, salt: SALT, iterations: 4096, storedKey: rfc.storedKey, serverKey: rfc.serverKey,
      source: "learned" as const, upstream: true, sealed: undefined as Buffer | undefined, updatedAt: 0 };
    row.sealed = seal(row, rfc.clientKey, "pencil");
    assert.equal(unseal(row, rfc.clientKey), "pencil");
    assert.equal(unseal(row, Buffer.alloc(20)), undefined);
    assert.equal(unseal({ ...row, account: "b@x" }, rfc.clientKey), undefined);
    assert.equal(unseal({ ...row, sealed: Buffer.from([1, 2, 3]) }, rfc.clientKey), undefined);
    // An imported verifier (no seal) gives the ClientKey itself, for SCRAM upstream with the same salt.
    assert.equal(new VerifierBook({ store: () => undefined, iterations: 4096, log: createLogger("silent") })
      .secretFor({ ...row, sealed: undefined, source: "imported" }, rfc.clientKey)?.kind, "client-key");
  });

  it("a suspect verifier is not used for 10 minutes; drop removes it", async () => {
    let now = 1_000_000;
    const store = new SqliteStore(":memory:");
    const book = new VerifierBook({ store: () => store, iterations: 4096, log: createLogger("silent"), now: () => now });
    await book.learn("u@x", "pw", undefined, ["SHA-1"]);
    assert.ok(await book.find("u@x", "SHA-1"));
    book.suspect("u@x", "SHA-1");
    assert.equal(await book.find("u@x", "SHA-1"), undefined);
    now += 10 * 60_000 + 1;
    assert.ok(await book.find("u@x", "SHA-1"));
    await book.drop("u@x", "SHA-1");
    assert.equal(await book.find("u@x", "SHA-1"), undefined);
  });
});

describe("SPEC A10/A15: any client SASL payload is parsed without throwing", () => {
  // Arbitrary bytes and SCRAM-shaped text (the grammar's own pieces, shuffled and cut): every parser answers with
  // a value or a SASL condition, never an exception, whatever the client sends.
  const piece = fc.constantFrom("n", "y", "p=tls-exporter", "a=alice@x", "n=alice", "r=abc", "c=biws", "p=AAAA", "m=x", "=", ",", "=2C", "=3D", "\0", "é", "");
  const scramText = fc.array(piece, { maxLength: 12 }).map((a) => a.join(","));
  it("decodePayload, parseClientFirst, parseClientFinal, parseHtResponse", () => {
    fc.assert(fc.property(fc.oneof(scramText, fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1"))), (text) => {
      const d = decodePayload(text);
      assert.ok("text" in d || "error" in d);
      for (const parsed of [parseClientFirst(text), parseClientFinal(text)]) assert.ok(typeof parsed === "string" || typeof parsed === "object");
      const ht = parseHtResponse(Buffer.from(text, "latin1"));
      assert.ok(ht === undefined || ht.initiator.length === 32);
    }), { numRuns: 10_000 });
  });
});
