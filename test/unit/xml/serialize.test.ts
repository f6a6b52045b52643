import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Element, xml } from "@xmpp/xml";
import { STREAM_CLOSE, serialize, streamHeader } from "../../../src/xml/serialize.js";
import { HEADER, parse, plain } from "./helpers.js";
import type { Plain } from "./helpers.js";

describe("serialize: escaping (SPEC E3)", () => {
  it("attribute values escape & < > \" ' and \\t \\n \\r", () => {
    const el = xml("a", { v: `&<>"'\t\n\r` });
    assert.equal(serialize(el), "<a v='&amp;&lt;&gt;&quot;&apos;&#9;&#10;&#13;'/>");
  });

  it("text escapes & < > and \\r only", () => {
    const el = xml("a", {}, `&<>"'\t\n\r]]>`);
    assert.equal(serialize(el), "<a>&amp;&lt;&gt;\"'\t\n&#13;]]&gt;</a>");
  });

  it("empty elements are self-closing; undefined attributes are skipped", () => {
    const el = xml("iq", { id: "1", to: undefined }, xml("query", { xmlns: "urn:q" }));
    assert.equal(serialize(el), "<iq id='1'><query xmlns='urn:q'/></iq>");
  });

  it("a stanza can never smuggle a second stanza or a stream element", () => {
    const evil = "</body></message></stream:stream><message to='victim'><body>";
    const el = xml("message", { to: `x'/><iq type='set'` }, xml("body", {}, evil));
    const res = parse(HEADER + serialize(el));
    assert.equal(res.error, null);
    assert.equal(res.elements.length, 1);
    assert.equal(res.elements[0]?.attrs.to, `x'/><iq type='set'`);
    assert.equal(res.elements[0]?.getChildText("body"), evil);
  });

  it("names that are not XML names are refused", () => {
    assert.throws(() => serialize(new Element("a><b")), TypeError);
    assert.throws(() => serialize(xml("a", { "x='1' y": "2" })), TypeError);
  });

  it("names with characters from the supplementary planes are XML names (U+10000–U+EFFFF)", () => {
    assert.equal(serialize(xml("\u{10000}a", { "b\u{EFFFF}": "1" })), "<\u{10000}a b\u{EFFFF}='1'/>");
    assert.throws(() => serialize(new Element("\u{F0000}")), TypeError); // plane 15 is not a name character
  });
});

describe("serialize: stream framing", () => {
  it("streamHeader declares the content and stream namespaces and escapes attributes", () => {
    assert.equal(
      streamHeader({ to: "a.test", from: undefined, id: "x'y", version: "1.0" }),
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
        "xmlns:stream='http://etherx.jabber.org/streams' to='a.test' id='x&apos;y' version='1.0'>",
    );
    assert.equal(STREAM_CLOSE, "</stream:stream>");
  });

  it("streamHeader output is accepted by the parser", () => {
    const res = parse(`${streamHeader({ to: "a.test", "xml:lang": "en" })}<presence/>${STREAM_CLOSE}`);
    assert.deepEqual(res.events, ["open", "el:<presence/>", "close"]);
  });
});

// Generated canonical trees: xmlns only where the namespace changes, prefixed attributes declared
// on their element with a prefix unique to the depth (so no ancestor already declares it).
const tricky = ["a", " ", "\t", "\n", "\r", "\r\n", "&", "<", ">", '"', "'", "]]>", "]]", "é", "😀", "&amp;", "\u00a0"];
const strArb = fc.array(fc.constantFrom(...tricky), { maxLength: 6 }).map((a) => a.join(""));
const nsArb = fc.constantFrom("jabber:client", "urn:a", "urn:b", "");

function treeArb(depth: number, parentNs: string): fc.Arbitrary<Element> {
  const kid = depth >= 3 ? strArb : fc.oneof(strArb, fc.constant(null));
  return fc
    .record({
      name: fc.constantFrom("message", "body", "x", "é", "a-b.c"),
      ns: nsArb,
      attrs: fc.dictionary(fc.constantFrom("to", "id", "type", "xml:lang"), strArb, { maxKeys: 3 }),
      prefixed: fc.option(strArb),
      kids: fc.array(kid, { maxLength: 3 }),
    })
    .chain((r) => {
      const el = new Element(r.name);
      if (r.ns !== parentNs) el.attrs.xmlns = r.ns;
      Object.assign(el.attrs, r.attrs);
      if (r.prefixed !== null) {
        el.attrs[`xmlns:p${depth}`] = `urn:p${depth}`;
        el.attrs[`p${depth}:k`] = r.prefixed;
      }
      const kids = r.kids.map((k) => (k === null ? treeArb(depth + 1, r.ns) : fc.constant(k)));
      return fc.tuple(...kids).map((children) => {
        for (const c of children) {
          if (typeof c !== "string") c.parent = el;
          el.children.push(c);
        }
        return el;
      });
    });
}

/** What the parser must give back: adjacent text merged, empty text dropped. */
function normalize(p: Plain): Plain {
  const children: (Plain | string)[] = [];
  for (const c of p.children) {
    const last = children[children.length - 1];
    if (typeof c !== "string") children.push(normalize(c));
    else if (c === "") continue;
    else if (typeof last === "string") children[children.length - 1] = last + c;
    else children.push(c);
  }
  return { ...p, children };
}

describe("serialize: round trip (SPEC E3)", () => {
  it("parse(serialize(x)) equals x for generated trees", () => {
    const top = fc.oneof(
      treeArb(0, "jabber:client"),
      treeArb(1, "jabber:client").map((inner) => {
        const el = new Element("stream:features");
        el.children.push(inner);
        inner.parent = el;
        return el;
      }),
    );
    fc.assert(
      fc.property(top, (el) => {
        const res = parse(HEADER + serialize(el), { maxDepth: 64, maxChildren: 64, maxAttributes: 64 });
        assert.equal(res.error, null);
        assert.equal(res.elements.length, 1);
        assert.deepEqual(plain(res.elements[0] as Element), normalize(plain(el)));
      }),
      { numRuns: 1000 },
    );
  });
});
