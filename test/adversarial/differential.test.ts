// SPEC E2, E3: mucmux's strict scanner and saxes (the oracle, test/support/saxes-oracle) make the same
// decisions and build the same trees: 10 000 generated and mutated inputs here (the fuzzer's seeds and
// mutations, the near-valid grammar of differential.ts), plus the valid streams of the property tests with
// byte edits; `npm run fuzz -- --differential` runs a million.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { differ, differentialFuzz } from "./differential.js";
import { cutsArb, streamArb } from "../unit/xml/arbitraries.js";
import { split } from "../unit/xml/helpers.js";

describe("SPEC E2, E3: the scanner against saxes", () => {
  it("10 000 fuzzed inputs: the same events, trees and error conditions", (t) => {
    const seed = Number(process.env.MUCMUX_FUZZ_SEED ?? 20261205);
    const stats = differentialFuzz(10_000, seed);
    t.diagnostic(`seed ${seed}: ${stats.inputs} inputs, ${stats.accepted} accepted, ${stats.rejected} refused`);
    assert.deepEqual(stats.failures, []);
    assert.equal(stats.inputs, 10_000);
    // Both kinds are exercised in earnest: a generator that only produced garbage would prove little.
    assert.ok(stats.accepted > 2000 && stats.rejected > 2000, JSON.stringify(stats));
  });

  it("valid streams with byte edits, any segmentation, sliced or not (2 000 runs)", () => {
    fc.assert(
      fc.property(
        streamArb.chain((s) =>
          fc.tuple(
            fc.constant(s.bytes),
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
            cutsArb(s.bytes.length),
            fc.integer({ min: 0, max: 64 }),
          ),
        ),
        ([bytes, edits, cuts, slice]) => {
          const copy = Buffer.from(bytes);
          for (const [at, value] of edits) copy[at % copy.length] = value;
          assert.equal(differ(split(copy, cuts), slice).diff, null);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("the oracle is not blind: a scanner that let ']]>' through would be caught", () => {
    // The transcript compares real events: a known differential input shows up as one.
    const input = Buffer.from("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><a>]]></a>");
    const { diff, rejected } = differ([input], 0);
    assert.equal(diff, null);
    assert.equal(rejected, true); // both refuse it
  });
});
