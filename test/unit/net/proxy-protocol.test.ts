// PROXY protocol decoder and encoder, against haproxy doc/proxy-protocol.txt: valid v1/v2
// headers of every kind, any segmentation, the client's bytes after the header, and every malformed form.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { decodeProxyHeader, encodeProxyV2, PROXY_V2_LOCAL, ProxyHeaderDecoder, V2_MAX_BYTES, type ProxyHeader } from "../../../src/net/proxy-protocol.js";

const SIG = "0d0a0d0a000d0a515549540a";
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const ascii = (s: string) => Buffer.from(s, "latin1");
const FIRST_BYTES = ascii("<?xml version='1.0'?><stream:stream to='localhost'>");
const CLIENT_HELLO = hex("16030100f8010000f40303"); // the start of a TLS ClientHello

const proxy = (version: 1 | 2, src: string, sport: number, dst: string, dport: number): ProxyHeader =>
  ({ version, command: "proxy", source: { address: src, port: sport }, destination: { address: dst, port: dport } });

/** Valid headers and what they decode to (the v2 TCP4 bytes are haproxy's, as captured in the wild). */
const VALID: { name: string; bytes: Buffer; header: ProxyHeader }[] = [
  { name: "v1 TCP4", bytes: ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), header: proxy(1, "192.168.0.1", 56324, "192.168.0.11", 443) },
  { name: "v1 TCP4 extremes", bytes: ascii("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"), header: proxy(1, "255.255.255.255", 65535, "0.0.0.0", 0) },
  { name: "v1 TCP6 (canonicalized)", bytes: ascii("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 40000 5222\r\n"), header: proxy(1, "2001:db8::1", 40000, "::1", 5222) },
  {
    name: "v1 TCP6 longest (104 bytes)",
    bytes: ascii("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n"),
    header: proxy(1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
  },
  { name: "v1 TCP6 IPv4-mapped", bytes: ascii("PROXY TCP6 ::ffff:203.0.113.7 ::ffff:10.0.0.1 1 2\r\n"), header: proxy(1, "::ffff:203.0.113.7", 1, "::ffff:10.0.0.1", 2) },
  { name: "v1 UNKNOWN short", bytes: ascii("PROXY UNKNOWN\r\n"), header: { version: 1, command: "local" } },
  {
    name: "v1 UNKNOWN longest (107 bytes, the rest ignored)",
    bytes: ascii("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
    header: { version: 1, command: "local" },
  },
  { name: "v2 TCP4", bytes: hex(`${SIG} 21 11 000c ac130001 ac130003 a652 0050`), header: proxy(2, "172.19.0.1", 42578, "172.19.0.3", 80) },
  {
    name: "v2 TCP6",
    bytes: hex(`${SIG} 21 21 0024 20010db8000000000000000000000007 20010db8000000000000000000000001 9c40 1466`),
    header: proxy(2, "2001:db8::7", 40000, "2001:db8::1", 5222),
  },
  {
    name: "v2 TCP4 with TLVs (NOOP, AUTHORITY, a cloud vendor's 0xEA, empty NOOP)",
    bytes: hex(`${SIG} 21 11 0028 cb007107 0a000001 9c41 1467 04 0002 0000 02 0009 ${ascii("localhost").toString("hex")} ea 0005 0176706365 04 0000`),
    header: proxy(2, "203.0.113.7", 40001, "10.0.0.1", 5223),
  },
  { name: "v2 LOCAL", bytes: hex(`${SIG} 20 00 0000`), header: { version: 2, command: "local" } },
  { name: "v2 LOCAL with an address block (ignored)", bytes: hex(`${SIG} 20 11 000c 7f000001 7f000001 0001 0002`), header: { version: 2, command: "local" } },
  { name: "v2 PROXY UNSPEC (real endpoints)", bytes: hex(`${SIG} 21 00 0003 aabbcc`), header: { version: 2, command: "local" } },
  { name: "v2 PROXY UDP over IPv4 (falls back to UNSPEC)", bytes: hex(`${SIG} 21 12 000c 01020304 05060708 0001 0002`), header: { version: 2, command: "local" } },
  { name: "v2 PROXY UNIX stream (falls back to UNSPEC)", bytes: Buffer.concat([hex(`${SIG} 21 31 00d8`), Buffer.alloc(216)]), header: { version: 2, command: "local" } },
];

/** Malformed headers (signature present): each must be refused. */
const INVALID: [string, Buffer][] = [
  ["v1 LF without CR", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")],
  ["v1 CR without LF", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX")],
  ["v1 unknown protocol", ascii("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 lower-case protocol", ascii("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 UNKNOWN glued to more", ascii("PROXY UNKNOWNX\r\n")],
  ["v1 two spaces", ascii("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 trailing space", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n")],
  ["v1 missing port", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")],
  ["v1 extra field", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n")],
  ["v1 octet > 255", ascii("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 leading zero in an octet", ascii("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 three octets", ascii("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")],
  ["v1 empty octet", ascii("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n")],
  ["v1 port > 65535", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")],
  ["v1 leading zero in a port", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n")],
  ["v1 hex port", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n")],
  ["v1 negative port", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n")],
  ["v1 TCP4 with an IPv6 address", ascii("PROXY TCP4 ::1 5.6.7.8 1 2\r\n")],
  ["v1 TCP6 with an IPv4 address", ascii("PROXY TCP6 1.2.3.4 ::1 1 2\r\n")],
  ["v1 two ::", ascii("PROXY TCP6 2001::db8::1 ::1 1 2\r\n")],
  ["v1 ::: ", ascii("PROXY TCP6 2001:::1 ::1 1 2\r\n")],
  ["v1 nine groups", ascii("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n")],
  ["v1 seven groups without ::", ascii("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n")],
  ["v1 five hex digits", ascii("PROXY TCP6 12345::1 ::1 1 2\r\n")],
  ["v1 zone id", ascii("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n")],
  ["v1 dotted part not at the end", ascii("PROXY TCP6 1.2.3.4::1 ::1 1 2\r\n")],
  ["v1 non-ASCII bytes", Buffer.concat([ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), hex("c2a0"), ascii("\r\n")])],
  ["v1 no CRLF within 107 bytes", ascii(`PROXY UNKNOWN ${"a".repeat(92)}\r\n`)],
  ["v1 XML where addresses belong", ascii("PROXY TCP4 <stream:stream>")],
  ["v2 version 1", hex(`${SIG} 11 11 000c 01020304 05060708 0001 0002`)],
  ["v2 version 3", hex(`${SIG} 31 11 000c 01020304 05060708 0001 0002`)],
  ["v2 command 2", hex(`${SIG} 22 11 000c 01020304 05060708 0001 0002`)],
  ["v2 command 15", hex(`${SIG} 2f 11 000c 01020304 05060708 0001 0002`)],
  ["v2 family 4", hex(`${SIG} 21 41 000c 01020304 05060708 0001 0002`)],
  ["v2 transport 3", hex(`${SIG} 21 13 000c 01020304 05060708 0001 0002`)],
  ["v2 UNSPEC family with a STREAM transport", hex(`${SIG} 21 01 0000`)],
  ["v2 IPv4 block too short", hex(`${SIG} 21 11 000b 01020304 05060708 0001 00`)],
  ["v2 IPv6 block too short", Buffer.concat([hex(`${SIG} 21 21 0023`), Buffer.alloc(35)])],
  ["v2 UNIX block too short", Buffer.concat([hex(`${SIG} 21 31 00d7`), Buffer.alloc(215)])],
  ["v2 truncated TLV header", hex(`${SIG} 21 11 000e 01020304 05060708 0001 0002 0400`)],
  ["v2 TLV longer than the header", hex(`${SIG} 21 11 0010 01020304 05060708 0001 0002 04 0002 00`)],
];

/** Not a PROXY header at all (what a client that bypassed the balancer sends). */
const MISSING: [string, Buffer][] = [
  ["an XML stream", FIRST_BYTES],
  ["a TLS ClientHello", CLIENT_HELLO],
  ["lower-case proxy", ascii("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["PROXY without its space", ascii("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["a v2 signature with one byte wrong", hex(`0d0a0d0a000d0a515549580a 21 11 000c 01020304 05060708 0001 0002`)],
  ["a v2 signature broken at its 5th byte", hex("0d0a0d0a0a")],
  ["an HTTP request", ascii("GET / HTTP/1.1\r\n")],
];

/** Feeds `parts` to a fresh decoder; returns the first non-incomplete result (or incomplete). */
function feed(parts: Buffer[]) {
  const d = new ProxyHeaderDecoder();
  for (const p of parts) {
    const r = d.push(p);
    if (r.kind !== "incomplete") return r;
  }
  return { kind: "incomplete" as const };
}

describe("PROXY protocol decoder: valid headers", () => {
  for (const v of VALID) {
    it(`${v.name}: decoded, and the bytes after it are the client's`, () => {
      const whole = decodeProxyHeader(v.bytes);
      assert.deepEqual(whole, { kind: "header", header: v.header, length: v.bytes.length });
      for (const after of [FIRST_BYTES, CLIENT_HELLO]) {
        const r = feed([Buffer.concat([v.bytes, after])]);
        assert.equal(r.kind, "header");
        if (r.kind === "header") assert.deepEqual([r.header, r.rest], [v.header, after]);
      }
    });

    it(`${v.name}: split at every byte offset (and dripped) gives the same header and remainder`, () => {
      const stream = Buffer.concat([v.bytes, FIRST_BYTES]);
      for (let cut = 1; cut < stream.length; cut++) {
        const r = feed([stream.subarray(0, cut), stream.subarray(cut)]);
        assert.equal(r.kind, "header", `cut at ${cut}`);
        if (r.kind !== "header") continue;
        assert.deepEqual(r.header, v.header, `cut at ${cut}`);
        // The part of the split that completed the header carries the remainder.
        const expected = cut >= v.bytes.length ? stream.subarray(v.bytes.length, cut) : FIRST_BYTES;
        assert.deepEqual(r.rest, expected, `cut at ${cut}`);
      }
      for (let n = 1; n < v.bytes.length; n++) {
        assert.deepEqual(decodeProxyHeader(v.bytes.subarray(0, n)), { kind: "incomplete" }, `prefix of ${n} bytes`);
      }
      const drip = feed([...v.bytes].map((b) => Buffer.from([b])));
      assert.equal(drip.kind, "header");
      if (drip.kind === "header") assert.deepEqual([drip.header, drip.rest.length], [v.header, 0]);
    });
  }
});

describe("PROXY protocol decoder: refused input", () => {
  for (const [name, bytes] of INVALID) {
    it(`${name} → invalid (at once, and at any split)`, () => {
      const r = decodeProxyHeader(bytes);
      assert.equal(r.kind, "invalid", `${name}: ${JSON.stringify(r)}`);
      if (r.kind === "invalid") assert.equal(r.signature, true);
      for (let cut = 1; cut < bytes.length; cut++) {
        assert.equal(feed([bytes.subarray(0, cut), bytes.subarray(cut)]).kind, "invalid", `cut at ${cut}`);
      }
    });
  }
  for (const [name, bytes] of MISSING) {
    it(`${name} → no signature, refused on its first differing byte`, () => {
      const r = decodeProxyHeader(bytes);
      assert.equal(r.kind, "invalid");
      if (r.kind === "invalid") assert.equal(r.signature, false);
    });
  }

  it("garbage is refused before the line limit: an unfinished v1 line stops at its first impossible byte", () => {
    assert.equal(decodeProxyHeader(ascii("PROXY TCP4 1.2.3.4 <")).kind, "invalid");
    assert.equal(decodeProxyHeader(ascii("PROXY FOO")).kind, "invalid");
    assert.equal(decodeProxyHeader(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3")).kind, "invalid");
    assert.equal(decodeProxyHeader(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2")).kind, "incomplete");
    assert.equal(decodeProxyHeader(ascii("PROXY UNKNOWN anything <at> all")).kind, "incomplete");
  });

  it(`a v2 header announcing more than ${V2_MAX_BYTES} bytes is refused from its 16 first bytes`, () => {
    const len = V2_MAX_BYTES - 16 + 1;
    assert.equal(decodeProxyHeader(hex(`${SIG} 21 11 ${len.toString(16).padStart(4, "0")}`)).kind, "invalid");
    assert.equal(decodeProxyHeader(hex(`${SIG} 21 11 ffff`)).kind, "invalid");
    const max = Buffer.concat([hex(`${SIG} 21 11 ${(len - 1).toString(16).padStart(4, "0")} 01020304 05060708 0001 0002`),
      hex(`04 ${(len - 1 - 12 - 3).toString(16).padStart(4, "0")}`), Buffer.alloc(len - 1 - 12 - 3)]);
    assert.equal(max.length, V2_MAX_BYTES);
    assert.equal(decodeProxyHeader(max).kind, "header", "exactly at the bound");
  });

  it("an unfinished v1 line at the 107-byte bound is refused, one byte shorter still waits", () => {
    const line = ascii(`PROXY UNKNOWN ${"a".repeat(91)}`); // 105 bytes
    assert.equal(decodeProxyHeader(line).kind, "incomplete");
    assert.equal(decodeProxyHeader(Buffer.concat([line, ascii("\r")])).kind, "incomplete");
    assert.equal(decodeProxyHeader(Buffer.concat([line, ascii("\r\n")])).kind, "header");
    assert.equal(decodeProxyHeader(Buffer.concat([line, ascii("aa")])).kind, "invalid");
  });
});

describe("PROXY protocol v2 encoder (upstream)", () => {
  it("LOCAL for mucmux's own streams, with the connection's endpoints as an address block (COMPAT ejabberd 23.01)", () => {
    assert.deepEqual(PROXY_V2_LOCAL, hex(`${SIG} 20 00 0000`));
    const b = encodeProxyV2({ source: { address: "10.0.0.5", port: 50000 }, destination: { address: "10.0.0.9", port: 5222 } }, "local");
    assert.deepEqual(b, hex(`${SIG} 20 11 000c 0a000005 0a000009 c350 1466`));
    assert.deepEqual(decodeProxyHeader(b as Buffer), { kind: "header", header: { version: 2, command: "local" }, length: 28 });
  });

  it("TCP over IPv4, byte for byte", () => {
    const b = encodeProxyV2({ source: { address: "203.0.113.7", port: 40001 }, destination: { address: "10.0.0.1", port: 5222 } });
    assert.deepEqual(b, hex(`${SIG} 21 11 000c cb007107 0a000001 9c41 1466`));
  });

  it("TCP over IPv6, byte for byte", () => {
    const b = encodeProxyV2({ source: { address: "2001:db8::7", port: 1 }, destination: { address: "::1", port: 65535 } });
    assert.deepEqual(b, hex(`${SIG} 21 21 0024 20010db8000000000000000000000007 00000000000000000000000000000001 0001 ffff`));
  });

  it("IPv4-mapped addresses (a dual-stack listener) are sent as IPv4; mixed families as IPv6", () => {
    const mapped = encodeProxyV2({ source: { address: "::ffff:203.0.113.7", port: 1 }, destination: { address: "::ffff:10.0.0.1", port: 2 } });
    assert.deepEqual(mapped, hex(`${SIG} 21 11 000c cb007107 0a000001 0001 0002`));
    const mixed = encodeProxyV2({ source: { address: "203.0.113.7", port: 1 }, destination: { address: "2001:db8::1", port: 2 } });
    assert.deepEqual(mixed, hex(`${SIG} 21 21 0024 00000000000000000000ffffcb007107 20010db8000000000000000000000001 0001 0002`));
  });

  it("an endpoint that is no IP address and port → no header (never a made-up address)", () => {
    for (const [address, port] of [["", 1], ["localhost", 1], ["1.2.3.4", 70000], ["1.2.3.4", -1], ["1.2.3.4", 1.5]] as const) {
      assert.equal(encodeProxyV2({ source: { address, port }, destination: { address: "10.0.0.1", port: 2 } }), undefined);
      assert.equal(encodeProxyV2({ source: { address: "10.0.0.1", port: 2 }, destination: { address, port } }, "local"), undefined);
    }
  });

  it("round trip: decode(encode(x)) = x", () => {
    for (const [src, dst] of [["198.51.100.9", "192.0.2.1"], ["2001:db8:1:2:3:4:5:6", "fe80::1"], ["::", "::1"]] as const) {
      const endpoints = { source: { address: src, port: 12345 }, destination: { address: dst, port: 443 } };
      const b = encodeProxyV2(endpoints) as Buffer;
      assert.deepEqual(decodeProxyHeader(b), { kind: "header", header: { version: 2, command: "proxy", ...endpoints }, length: b.length });
    }
  });
});
