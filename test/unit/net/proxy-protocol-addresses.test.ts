// Addresses for the PROXY protocol: strict IPv4/IPv6 text, RFC 5952 output, the
// trusted-CIDR list and its configuration errors.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { formatIPv6, parseCidr, parseIPv4, parseIPv6, TrustList } from "../../../src/net/ip-address.js";
import { loadConfig } from "../../../src/config/index.js";

describe("IP address text", () => {
  it("IPv4: four decimal octets, no leading zeros", () => {
    assert.deepEqual(parseIPv4("203.0.113.7"), Buffer.from([203, 0, 113, 7]));
    for (const bad of ["1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1.2.3.-1", "1.2.3.4 ", "a.b.c.d", "1..3.4", ""]) {
      assert.equal(parseIPv4(bad), undefined, bad);
    }
  });

  it("IPv6: parsed and printed as Node prints socket addresses (RFC 5952)", () => {
    const cases: [string, string][] = [
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["::", "::"],
      ["::1", "::1"],
      ["1::", "1::"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of two equal runs
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not compressed
      ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
      ["0:0:0:0:0:ffff:c000:201", "::ffff:192.0.2.1"],
      ["fe80::1:2:3:4", "fe80::1:2:3:4"],
    ];
    for (const [input, out] of cases) {
      const b = parseIPv6(input);
      assert.ok(b, input);
      assert.equal(formatIPv6(b), out, input);
    }
    for (const bad of [":::", "1:::2", "1::2::3", ":1::", "1::2:", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::1",
      "fe80::1%eth0", "1.2.3.4::", "::1.2.3", "::256.1.1.1", ""]) {
      assert.equal(parseIPv6(bad), undefined, bad);
    }
  });
});

describe("trusted proxies", () => {
  it("CIDRs and single addresses; refused forms say why", () => {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { address: "10.0.0.0", prefix: 8, family: 4 });
    assert.deepEqual(parseCidr("fd00::/8"), { address: "fd00::", prefix: 8, family: 6 });
    assert.deepEqual(parseCidr("192.0.2.7"), { address: "192.0.2.7", prefix: 32, family: 4 });
    assert.match(parseCidr("10.0.0.1/8") as string, /host bits set.*did you mean 10\.0\.0\.0\/8/);
    assert.match(parseCidr("10.0.0.0/33") as string, /prefix length 0–32/);
    assert.match(parseCidr("::/129") as string, /prefix length 0–128/);
    assert.match(parseCidr("10.0.0.0/08") as string, /prefix length/);
    assert.match(parseCidr("example.org") as string, /IPv4 or IPv6 address or CIDR/);
  });

  it("matches IPv4, IPv4-mapped (dual-stack listeners) and IPv6 peers; empty trusts nobody", () => {
    const t = new TrustList(["10.0.0.0/8", "2001:db8::/32"]);
    assert.equal(t.has("10.1.2.3"), true);
    assert.equal(t.has("::ffff:10.1.2.3"), true);
    assert.equal(t.has("11.0.0.1"), false);
    assert.equal(t.has("2001:db8::5"), true);
    assert.equal(t.has("2001:db9::5"), false);
    assert.equal(t.has("fe80::1%lo"), false);
    assert.equal(t.has(undefined), false);
    assert.equal(new TrustList([]).has("10.1.2.3"), false);
  });

  it("an IPv4 peer and its IPv4-mapped form are one address (node:net BlockList); IPv4-compatible is IPv6", () => {
    const v4 = new TrustList(["10.0.0.0/8"]);
    assert.equal(v4.has("::ffff:a01:203"), true); // ::ffff:10.1.2.3 in hex
    assert.equal(v4.has("::10.1.2.3"), false);
    const mapped = new TrustList(["::ffff:10.0.0.0/104"]);
    assert.deepEqual(["10.1.2.3", "::ffff:10.1.2.3", "11.1.2.3"].map((a) => mapped.has(a)), [true, true, false]);
    assert.equal(new TrustList(["::/0"]).has("192.0.2.1"), true); // ::/0 covers ::ffff:0:0/96
    assert.equal(new TrustList(["0.0.0.0/0"]).has("2001:db8::1"), false);
    assert.equal(new TrustList(["192.0.2.7"]).has("::ffff:192.0.2.7"), true);
  });

  it("the configuration validates proxyProtocol.trusted and upstream.proxyProtocol", () => {
    const ok = loadConfig({ flags: { domains: "example.test", "proxyProtocol.trusted": "10.0.0.0/8,fd00::/8", "upstream.proxyProtocol": "v2" } });
    assert.deepEqual(ok.proxyProtocol.trusted, ["10.0.0.0/8", "fd00::/8"]);
    assert.equal(ok.upstream.proxyProtocol, "v2");
    const defaults = loadConfig({ flags: { domains: "example.test" } });
    assert.deepEqual([defaults.proxyProtocol.trusted, defaults.upstream.proxyProtocol], [undefined, "off"]);
    assert.throws(() => loadConfig({ flags: { domains: "example.test", "proxyProtocol.trusted": "10.0.0.1/8" } }),
      /proxyProtocol\.trusted.*host bits set/s);
    assert.throws(() => loadConfig({ flags: { domains: "example.test", "upstream.proxyProtocol": "v1" } }),
      /upstream\.proxyProtocol.*must be one of off, v2/s);
  });
});
