import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { HEADER, LIMITS, parse } from "./helpers.js";

describe("parser: canonicalization (SPEC E3)", () => {
  const canon = (xml: string, header = HEADER): string[] => {
    const res = parse(header + xml);
    assert.equal(res.error, null);
    return res.events.slice(1);
  };

  it("a prefixed content-namespace stanza becomes a plain one", () => {
    assert.deepEqual(canon("<c:message xmlns:c='jabber:client' to='a@b'><c:body>hi</c:body></c:message>"), [
      "el:<message to='a@b'><body>hi</body></message>",
    ]);
  });

  it("redundant and unused namespace declarations are dropped; needed ones regenerated", () => {
    assert.deepEqual(
      canon("<iq xmlns='jabber:client' xmlns:u='urn:unused'><q:query xmlns:q='urn:q'><item xmlns='urn:q'/></q:query></iq>"),
      ["el:<iq><query xmlns='urn:q'><item/></query></iq>"],
    );
  });

  it("a prefix declared only on the stream header and used by an attribute survives", () => {
    const header = HEADER.replace("to=", "xmlns:x='urn:x' to=");
    assert.deepEqual(canon("<message x:a='1'><body x:b='2'/></message>", header), [
      "el:<message xmlns:x='urn:x' x:a='1'><body x:b='2'/></message>",
    ]);
  });

  it("a prefix rebound to another URI below is redeclared there", () => {
    assert.deepEqual(canon("<m xmlns:p='urn:1' p:a='1'><n xmlns:p='urn:2' p:b='2'><o xmlns:p='urn:1' p:c='3'/></n></m>"), [
      "el:<m xmlns:p='urn:1' p:a='1'><n xmlns:p='urn:2' p:b='2'><o xmlns:p='urn:1' p:c='3'/></n></m>",
    ]);
  });

  it("streams-namespace elements are stream:<local> without xmlns; their children keep the default", () => {
    const xml = "<s:features xmlns:s='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><x/></s:features>";
    assert.deepEqual(canon(xml), ["el:<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><x/></stream:features>"]);
  });

  it("xml:lang keeps its prefix; CDATA becomes text merged with its neighbours", () => {
    assert.deepEqual(canon("<message xml:lang='de'><body>a<![CDATA[<b>&]]>c</body></message>"), [
      "el:<message xml:lang='de'><body>a&lt;b&gt;&amp;c</body></message>",
    ]);
  });

  it("binding the 'stream' prefix to another namespace → bad-namespace-prefix", () => {
    assert.equal(parse(`${HEADER}<message xmlns:stream='urn:evil'/>`).error, "bad-namespace-prefix");
  });
});

describe("parser: limits (SPEC E1)", () => {
  const nest = (n: number): string => "<a>".repeat(n) + "</a>".repeat(n);
  const attrs = (n: number): string => `<a ${Array.from({ length: n }, (_, i) => `a${i}='1'`).join(" ")}/>`;
  const kids = (n: number): string => `<a>${"<b/>".repeat(n)}</a>`;
  for (const [what, make, limit] of [
    ["depth", nest, LIMITS.maxDepth],
    ["attributes", attrs, LIMITS.maxAttributes],
    ["children", kids, LIMITS.maxChildren],
  ] as const) {
    it(`${what} at the limit passes; one more → policy-violation`, () => {
      assert.equal(parse(HEADER + make(limit)).error, null);
      assert.equal(parse(HEADER + make(limit + 1)).error, "policy-violation");
    });
  }

  it("maxStanzaBytes is enforced before parsing (SPEC E1)", () => {
    const stanza = `<message><body>${"x".repeat(200)}</body></message>`;
    assert.equal(parse(HEADER + stanza, { maxStanzaBytes: stanza.length }).error, null);
    assert.equal(parse(HEADER + stanza, { maxStanzaBytes: stanza.length - 1 }).error, "policy-violation");
  });
});
