import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Framer } from "../../../src/xml/framer.js";
import { STREAM_HEADER, cutsArb, streamArb } from "./arbitraries.js";
import { drip, frame, split } from "./helpers.js";

const H = Buffer.from(STREAM_HEADER);
const withHeader = (s: string): Buffer => Buffer.concat([H, Buffer.from(s)]);

describe("framer: segmentation independence (SPEC E1, E2)", () => {
  it("any split of any valid stream yields the same frames", () => {
    fc.assert(
      fc.property(
        streamArb.chain((s) => fc.tuple(fc.constant(s), cutsArb(s.bytes.length))),
        ([s, cuts]) => {
          const whole = frame([s.bytes]);
          assert.equal(whole.error, null);
          assert.deepEqual(whole.frames, s.frames);
          assert.deepEqual(frame(split(s.bytes, cuts)), whole);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a 1-byte drip yields the same frames", () => {
    fc.assert(
      fc.property(streamArb, (s) => {
        assert.deepEqual(frame(drip(s.bytes)).frames, s.frames);
      }),
      { numRuns: 200 },
    );
  });

  it("multibyte characters split across reads stay intact (SPEC E2)", () => {
    const bytes = withHeader("<message><body>😀€é</body></message>");
    const res = frame(drip(bytes));
    assert.equal(res.frames[1], "element:<message><body>😀€é</body></message>");
  });
});

describe("framer: structure (SPEC E1)", () => {
  it("quoted '>' and '/' do not end a tag; self-closing and nested elements", () => {
    const res = frame([withHeader(`<a x='>/' y="/>"/><b><c/><d e='1'>t</d></b>`)]);
    assert.deepEqual(res.frames.slice(1), [`element:<a x='>/' y="/>"/>`, "element:<b><c/><d e='1'>t</d></b>"]);
  });

  it("CDATA may hold '<', '>' and ']' and ends at the first ']]>', wherever the reads split", () => {
    const stanza = "<a><![CDATA[</a><b>]>]]]></a>";
    const bytes = withHeader(stanza);
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (const cut2 of [cut, cut + 1, cut + 2]) {
        assert.deepEqual(frame(split(bytes, [cut, cut2])).frames.slice(1), [`element:${stanza}`]);
      }
    }
  });

  it("whitespace keepalives between stanzas are dropped and counted against no stanza (SPEC E1)", () => {
    const res = frame([withHeader(" \n\t\r <a/>   \n <b/>  ")], H.length + 5);
    assert.deepEqual(res.frames.slice(1), ["element:<a/>", "element:<b/>"]);
    assert.equal(res.error, null);
  });

  it("self-closing stream header opens and closes the stream", () => {
    const res = frame([Buffer.from("<stream:stream xmlns='jabber:client'/><a/>")]);
    assert.deepEqual(res.frames, ["header:<stream:stream xmlns='jabber:client'/>"]);
  });

  it("input after the stream close is ignored", () => {
    const res = frame([withHeader("<a/></stream:stream>junk<!--")]);
    assert.deepEqual(res.frames.slice(1), ["element:<a/>", "close:</stream:stream>"]);
    assert.equal(res.error, null);
  });

  it("reset() from inside onFrame parses the rest of the chunk as a new stream", () => {
    const frames: string[] = [];
    const f: Framer = new Framer(
      {
        onFrame: (kind, bytes) => {
          frames.push(`${kind}:${bytes.toString()}`);
          if (kind === "element") f.reset();
        },
        onError: () => assert.fail("no error expected"),
      },
      { maxBytes: 1000, maxAttributes: 8 },
    );
    f.push(withHeader(`<success/><?xml version='1.0'?>${STREAM_HEADER}`));
    assert.deepEqual(frames.slice(1), ["element:<success/>", "decl:<?xml version='1.0'?>", `header:${STREAM_HEADER}`]);
  });
});

describe("framer: byte cap (SPEC E1)", () => {
  const stanza = "<message><body>" + "x".repeat(300) + "</body></message>";
  const cap = Buffer.byteLength(stanza); // larger than the header, which the cap also bounds

  it("a stanza of exactly maxStanzaBytes passes, in any segmentation", () => {
    for (const chunks of [[withHeader(stanza)], drip(withHeader(stanza))]) {
      const res = frame(chunks, cap);
      assert.equal(res.error, null);
      assert.equal(res.frames[1], `element:${stanza}`);
    }
  });

  it("maxStanzaBytes + 1 is policy-violation with stanza-too-big", () => {
    const big = stanza.replace("xx", "xxx");
    assert.equal(frame([withHeader(big)], cap).error, "policy-violation/stanza-too-big");
    assert.equal(frame(drip(withHeader(big)), cap).error, "policy-violation/stanza-too-big");
  });

  it("raises as soon as the count passes the cap, before the element ends", () => {
    let errorAt = -1;
    let pushed = 0;
    const f = new Framer({ onFrame: () => {}, onError: () => (errorAt = pushed) }, { maxBytes: 200, maxAttributes: 8 });
    f.push(H);
    for (const b of drip(Buffer.from("<message>" + "y".repeat(1000)))) {
      pushed++;
      f.push(b);
      if (errorAt >= 0) break;
    }
    assert.equal(errorAt, 201);
  });

  it("the cap wins over a later error in the same frame, whatever the segmentation", () => {
    const bytes = withHeader("<a>" + "z".repeat(H.length) + "<!-- -->");
    assert.equal(frame([bytes], H.length).error, "policy-violation/stanza-too-big");
    assert.equal(frame(drip(bytes), H.length).error, "policy-violation/stanza-too-big");
  });

  it("an oversized stream header or XML declaration is policy-violation", () => {
    assert.equal(frame([H], H.length - 1).error, "policy-violation");
    assert.equal(frame([Buffer.from(`<?xml version='1.0'${" ".repeat(50)}?>`)], 20).error, "policy-violation");
  });
});

describe("framer: attribute count (SPEC E1)", () => {
  const tag = (n: number): string => `<a ${Array.from({ length: n }, (_, i) => `k${i}="'>${i}"`).join(" ")}/>`;

  it("maxAttributes passes; one more → policy-violation before saxes sees the tag", () => {
    assert.equal(frame([withHeader(tag(8))], 10_000, 8).error, null);
    assert.equal(frame([withHeader(tag(9))], 10_000, 8).error, "policy-violation");
    assert.equal(frame(drip(withHeader(tag(9))), 10_000, 8).error, "policy-violation");
  });

  it("the count is per start tag", () => {
    assert.equal(frame([withHeader(`<a>${tag(8)}${tag(8)}</a>`)], 10_000, 8).error, null);
  });
});

describe("framer: restricted XML (SPEC E2, RFC 6120 §11.1)", () => {
  const cases: [string, Buffer][] = [
    ["comment at stream level", withHeader("<!-- hi -->")],
    ["comment inside a stanza", withHeader("<message><!-- hi --></message>")],
    ["DOCTYPE before the header", Buffer.from("<!DOCTYPE stream>")],
    ["DOCTYPE after the XML declaration", Buffer.from("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>")],
    ["processing instruction before the header", Buffer.from("<?php echo 1 ?>")],
    ["processing instruction after the header", withHeader("<?foo bar?>")],
    ["processing instruction inside a stanza", withHeader("<message><?foo bar?></message>")],
    ["XML declaration mid-stream", withHeader("<a/><?xml version='1.0'?>")],
    ["second XML declaration", Buffer.from("<?xml version='1.0'?><?xml version='1.0'?>")],
    ["other markup declaration inside a stanza", withHeader("<message><!ENTITY x 'y'></message>")],
  ];
  for (const [what, bytes] of cases) {
    it(`${what} → restricted-xml, in any segmentation`, () => {
      assert.equal(frame([bytes]).error, "restricted-xml");
      assert.equal(frame(drip(bytes)).error, "restricted-xml");
    });
  }
});

describe("framer: bad input (SPEC E2)", () => {
  it("non-whitespace text at stream level → bad-format (SPEC E2)", () => {
    assert.equal(frame([withHeader("<a/>hello<b/>")]).error, "bad-format");
  });

  it("text before the stream header → not-well-formed", () => {
    assert.equal(frame([Buffer.from("\x16\x03\x01\x02\x00")]).error, "not-well-formed");
  });

  it("malformed tag start → not-well-formed", () => {
    assert.equal(frame([withHeader("< a/>")]).error, "not-well-formed");
  });

  it("after an error the framer reports once and ignores further input", () => {
    const res = frame([withHeader("text"), Buffer.from("<a/>"), Buffer.from("more")]);
    assert.equal(res.errors, 1);
    assert.equal(res.frames.length, 1);
  });
});
