// SPEC E1: the start-time warm-up runs every stanza of its synthetic stream, the large sliced one included,
// through the real parser and serializer (a warm-up that silently failed early would warm nothing).
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { warmUpXml } from "../../../src/xml/warmup.js";
import { PARSE_SLICE_CHARS } from "../../../src/stream/wire.js";

describe("XML warm-up at start (SPEC E1)", () => {
  it("parses and serializes all 51 stanzas per round under the default limits", () => {
    const limits = { maxStanzaBytes: 262144, maxDepth: 32, maxAttributes: 64, maxChildren: 10000, maxElements: 10000 };
    assert.equal(warmUpXml(limits, PARSE_SLICE_CHARS, 3), 3 * 51);
  });

  it("with small limits, the large stanza is left out and the rest still runs", () => {
    const limits = { maxStanzaBytes: 4096, maxDepth: 32, maxAttributes: 64, maxChildren: 100, maxElements: 100 };
    assert.equal(warmUpXml(limits, PARSE_SLICE_CHARS, 1), 50);
  });
});
