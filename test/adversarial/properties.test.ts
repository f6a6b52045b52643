// Segmentation invariance and canonical round trip at the parser level (SPEC E2, E3; fast-check, ≥ 10 000 runs for segmentation):
// - valid streams: any segmentation, with or without time-slicing of large frames, yields the same
//   events (the forwarded stanza sequence);
// - invalid streams (mutated valid ones): any segmentation raises the same error;
// - canonical round trip: serialize(parse(x)) re-parses to the same tree, including \t\n\r&<>"' in
//   attribute values and text, "]]>" and CDATA.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { StreamParser, type ParserLimits } from "../../src/xml/parser.js";
import { serialize } from "../../src/xml/serialize.js";
import { cutsArb, streamArb, STREAM_HEADER } from "../unit/xml/arbitraries.js";
import { plain, split } from "../unit/xml/helpers.js";

const LIMITS: ParserLimits = { maxStanzaBytes: 10_000, maxDepth: 64, maxAttributes: 16, maxChildren: 64 };

interface Run { events: string[]; error: string | null; errors: number }

/** Parses `chunks`; with `slice`, frames longer than `slice` chars go through the sliced path (run to completion here). */
function run(chunks: Buffer[], slice?: number): Run {
  const res: Run = { events: [], error: null, errors: 0 };
  const tasks: (() => void)[] = [];
  const p = new StreamParser(
    {
      onStreamOpen: (h) => res.events.push(`open ${JSON.stringify(h.attrs)}`),
      onElement: (el, n) => res.events.push(`el ${n} ${serialize(el)}`),
      onStreamClose: () => res.events.push("close"),
      onError: (e) => { res.errors++; res.error = e.condition; },
    },
    LIMITS,
    slice === undefined ? {} : { sliceChars: slice, defer: (fn) => void tasks.push(fn) },
  );
  for (const c of chunks) {
    p.write(c);
    for (let t = tasks.shift(); t; t = tasks.shift()) t();
  }
  return res;
}

describe("SPEC E2: segmentation invariance", () => {
  it("valid streams: same events for any segmentation, sliced or not (10 000 runs)", () => {
    fc.assert(
      fc.property(streamArb.chain((s) => fc.tuple(fc.constant(s), cutsArb(s.bytes.length), fc.integer({ min: 1, max: 64 }))), ([s, cuts, slice]) => {
        const whole = run([s.bytes]);
        assert.equal(whole.error, null);
        assert.deepEqual(run(split(s.bytes, cuts)).events, whole.events);
        assert.deepEqual(run(split(s.bytes, cuts), slice).events, whole.events);
      }),
      { numRuns: 10_000 },
    );
  });

  it("invalid streams: the same error for any segmentation, sliced or not (10 000 runs)", () => {
    const mutated = streamArb.chain((s) =>
      fc.tuple(
        fc.constant(s.bytes),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        cutsArb(s.bytes.length),
        fc.integer({ min: 1, max: 64 }),
      ),
    );
    fc.assert(
      fc.property(mutated, ([bytes, edits, cuts, slice]) => {
        const copy = Buffer.from(bytes);
        for (const [at, value] of edits) copy[at % copy.length] = value;
        const whole = run([copy]);
        const parts = run(split(copy, cuts));
        const sliced = run(split(copy, cuts), slice);
        assert.ok(whole.errors <= 1);
        assert.deepEqual(parts, whole);
        assert.deepEqual(sliced, whole);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe("SPEC E3: canonical round trip", () => {
  const chars = fc.constantFrom("\t", "\n", "\r", "&", "<", ">", '"', "'", "]]>", "]", "a", "é", "😀", " ");
  const str = fc.array(chars, { maxLength: 10 }).map((a) => a.join(""));
  const esc = (s: string, attr: boolean) => s.replace(/[&<>"'\t\n\r]/g, (c) => attr || "&<>\r".includes(c) ? `&#${c.charCodeAt(0)};` : c);
  const node: fc.Arbitrary<string> = fc.letrec<{ el: string }>((tie) => ({
    el: fc.record({
      name: fc.constantFrom("message", "body", "x", "y:z"),
      attrs: fc.uniqueArray(fc.tuple(fc.constantFrom("id", "to", "type", "y:a"), str), { maxLength: 3, selector: (t) => t[0] }),
      kids: fc.array(fc.oneof({ depthSize: "small" }, str.map((t) => esc(t, false)), str.filter((t) => !t.includes("]]>")).map((t) => `<![CDATA[${t}]]>`), tie("el")), { maxLength: 4 }),
    }).map(({ name, attrs, kids }) => `<${name}${attrs.map(([k, v]) => ` ${k}='${esc(v, true)}'`).join("")}>${kids.join("")}</${name}>`),
  })).el;

  it("serialize(parse(x)) re-parses to the same tree (5 000 runs)", () => {
    const header = STREAM_HEADER.replace("xmlns:x='urn:x'", "xmlns:y='urn:y'");
    const parseOne = (text: string) => {
      const els: ReturnType<typeof plain>[] = [];
      let error: string | null = null;
      const p = new StreamParser({ onStreamOpen: () => {}, onElement: (el) => void els.push(plain(el)), onStreamClose: () => {}, onError: (e) => void (error = e.condition) }, LIMITS);
      p.write(Buffer.from(header + text));
      return { els, error, serialized: "" };
    };
    fc.assert(
      fc.property(node.filter((x) => Buffer.byteLength(x) < 9000), (x) => {
        const first = parseOne(x);
        assert.equal(first.error, null, x);
        assert.equal(first.els.length, 1);
        const p2: string[] = [];
        const p = new StreamParser({ onStreamOpen: () => {}, onElement: (el) => void p2.push(serialize(el)), onStreamClose: () => {}, onError: assert.fail }, LIMITS);
        p.write(Buffer.from(header + x));
        const again = parseOne(p2[0] as string);
        assert.equal(again.error, null);
        assert.deepEqual(again.els, first.els);
      }),
      { numRuns: 5_000 },
    );
  });
});
