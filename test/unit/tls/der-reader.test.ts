// The DER reader against the DER encoder (der.ts) and against inputs DER forbids (X.690 §10.1).
import { it } from "node:test";
import { strict as assert } from "node:assert";
import { childrenOf, DerError, readOid, readTlv } from "../../../src/net/tls/der-reader.js";
import { integer, octetString, oid, sequence } from "../../../src/net/tls/der.js";

it("reads back what the encoder wrote: nested sequences, OIDs, long lengths", () => {
  const big = octetString(Buffer.alloc(300, 7)); // two length octets
  const der = sequence(oid("1.2.840.10045.4.3.2"), sequence(integer(5), big), oid("2.16.840.1.101.3.4.2.10"));
  const top = readTlv(der);
  assert.equal(top.end, der.length);
  const [a, inner, b] = childrenOf(top);
  assert.equal(readOid(a!), "1.2.840.10045.4.3.2");
  assert.equal(readOid(b!), "2.16.840.1.101.3.4.2.10");
  const [n, bytes] = childrenOf(inner!);
  assert.deepEqual(n!.value, Buffer.from([5]));
  assert.equal(bytes!.value.length, 300);
});

it("rejects truncation, indefinite and non-minimal lengths, and a primitive read as constructed", () => {
  for (const hex of ["", "30", "3005020101", "3080", "30810100", "3082000100", "06"]) {
    assert.throws(() => childrenOf(readTlv(Buffer.from(hex, "hex"))), DerError, hex);
  }
  assert.throws(() => childrenOf(readTlv(Buffer.from("0401ff", "hex"))), DerError);
  assert.throws(() => readOid(readTlv(Buffer.from("0401ff", "hex"))), DerError);
  assert.throws(() => readOid(readTlv(Buffer.from("060186", "hex"))), DerError); // last arc unfinished
});
