import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { StreamParser } from "../../../src/xml/parser.js";
import { HEADER, LIMITS, drip, parse } from "./helpers.js";

const H = Buffer.from(HEADER);
const bytesAfterHeader = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat([H, ...parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p)))]);

describe("parser: encoding (SPEC E2, RFC 6120 §11.6)", () => {
  const invalid: [string, number[]][] = [
    ["overlong '/'", [0xc0, 0xaf]],
    ["overlong 3-byte", [0xe0, 0x80, 0xaf]],
    ["UTF-16 surrogate", [0xed, 0xa0, 0x80]],
    ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["lone continuation byte", [0x80]],
    ["truncated sequence", [0xe2, 0x82]],
    ["0xFF", [0xff]],
  ];
  for (const [what, seq] of invalid) {
    it(`${what} → unsupported-encoding`, () => {
      const res = parse([bytesAfterHeader("<message><body>a", seq, "b</body></message>")]);
      assert.equal(res.error, "unsupported-encoding");
      assert.equal(res.elements.length, 0);
    });
  }

  it("multibyte characters split across reads decode correctly", () => {
    const res = parse(drip(bytesAfterHeader("<message><body>😀 中 é</body></message>")));
    assert.equal(res.error, null);
    assert.equal(res.elements[0]?.getChildText("body"), "😀 中 é");
  });

  it("an XML declaration naming another encoding → unsupported-encoding", () => {
    const res = parse(`<?xml version='1.0' encoding='ISO-8859-1'?>${HEADER.slice(HEADER.indexOf("<stream"))}`);
    assert.equal(res.error, "unsupported-encoding");
  });
});

describe("parser: well-formedness (SPEC E2, E3)", () => {
  const bad: [string, string][] = [
    ["undefined entity", "<message>&foo;</message>"],
    ["char ref to NUL", "<message>&#0;</message>"],
    ["char ref to a surrogate", "<message>&#xD800;</message>"],
    ["char ref beyond Unicode", "<message a='&#x110000;'/>"],
    ["mismatched tags", "<message><a></b></message>"],
    ["'<' in an attribute value", "<message a='<'/>"],
    ["unquoted attribute", "<message a=1/>"],
    ["duplicate attribute", "<message a='1' a='2'/>"],
    ["']]>' in text", "<message>]]></message>"],
    ["raw control character", "<message>\u0001</message>"],
    ["stanza closing the stream", "<message></stream:stream>"],
  ];
  for (const [what, xml] of bad) {
    it(`${what} → not-well-formed`, () => {
      const res = parse([bytesAfterHeader(xml)]);
      assert.equal(res.error, "not-well-formed");
      assert.equal(res.elements.length, 0);
    });
  }

  it("errors are reported once, and the parser is dead afterwards", () => {
    const res = parse([bytesAfterHeader("<message>&foo;</message>"), Buffer.from("<message/>")]);
    assert.equal(res.errors, 1);
    assert.equal(res.parser.failed, true);
    assert.deepEqual(res.events, ["open"]);
  });
});

describe("parser: stream header (RFC 6120 §4.8, §4.9.3)", () => {
  const S = "xmlns:stream='http://etherx.jabber.org/streams'";
  const cases: [string, string, string][] = [
    ["wrong stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:bogus'>", "invalid-namespace"],
    ["wrong content namespace", `<stream:stream xmlns='jabber:server' ${S}>`, "invalid-namespace"],
    ["no content namespace", `<stream:stream ${S}>`, "invalid-namespace"],
    ["wrong root name", `<stream:foo xmlns='jabber:client' ${S}>`, "invalid-namespace"],
    ["other stream prefix", "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>", "bad-namespace-prefix"],
    ["unbound prefix", "<stream:stream xmlns='jabber:client'>", "bad-namespace-prefix"],
  ];
  for (const [what, header, condition] of cases) {
    it(`${what} → ${condition}`, () => {
      assert.equal(parse(header).error, condition);
    });
  }

  it("reports header attributes as written, without namespace declarations", () => {
    let attrs: Record<string, string> = {};
    const p = new StreamParser(
      { onStreamOpen: (h) => (attrs = h.attrs), onElement: () => {}, onStreamClose: () => {}, onError: assert.fail },
      LIMITS,
    );
    p.write(Buffer.from(`<stream:stream xmlns='jabber:client' ${S} to='a.test' xml:lang='en' version='1.0'>`));
    assert.deepEqual(attrs, { to: "a.test", "xml:lang": "en", version: "1.0" });
  });

  it("contentNamespace option accepts jabber:server streams", () => {
    let opened = false;
    const p = new StreamParser(
      { onStreamOpen: () => (opened = true), onElement: () => {}, onStreamClose: () => {}, onError: assert.fail },
      LIMITS,
      { contentNamespace: "jabber:server" },
    );
    p.write(Buffer.from(`<stream:stream xmlns='jabber:server' ${S}>`));
    assert.equal(opened, true);
  });

  it("open, stanzas and close are reported in order", () => {
    const res = parse(`${HEADER}<presence/></stream:stream>`);
    assert.deepEqual(res.events, ["open", "el:<presence/>", "close"]);
  });
});
