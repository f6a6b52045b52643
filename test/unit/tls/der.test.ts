// The DER encoder against hand-checked encodings (X.690).
import { it } from "node:test";
import { strict as assert } from "node:assert";
import { integer, oid, sequence, time } from "../../../src/net/tls/der.js";

const hex = (b: Buffer) => b.toString("hex");

it("encodes INTEGERs minimally and positive", () => {
  assert.equal(hex(integer(0)), "020100");
  assert.equal(hex(integer(2)), "020102");
  assert.equal(hex(integer(127)), "02017f");
  assert.equal(hex(integer(128)), "02020080");
  assert.equal(hex(integer(65535)), "020300ffff");
  assert.equal(hex(integer(Buffer.from([0, 0, 1]))), "020101");
  assert.equal(hex(integer(Buffer.from([0, 0x80]))), "02020080");
  assert.equal(hex(integer(Buffer.from([0xff]))), "020200ff");
});

it("encodes OBJECT IDENTIFIERs with base-128 arcs", () => {
  assert.equal(hex(oid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
  assert.equal(hex(oid("2.5.29.17")), "0603551d11");
});

it("uses the long length form from 128 bytes", () => {
  assert.equal(hex(sequence(Buffer.alloc(127)).subarray(0, 2)), "307f");
  assert.equal(hex(sequence(Buffer.alloc(200)).subarray(0, 3)), "3081c8");
  assert.equal(hex(sequence(Buffer.alloc(300)).subarray(0, 4)), "3082012c");
});

it("switches from UTCTime to GeneralizedTime in 2050 (RFC 5280 §4.1.2.5)", () => {
  assert.equal(time(new Date("2049-12-31T23:59:59.900Z")).toString("latin1"), "\x17\x0d491231235959Z");
  assert.equal(time(new Date("2050-01-01T00:00:00Z")).toString("latin1"), "\x18\x0f20500101000000Z");
});
