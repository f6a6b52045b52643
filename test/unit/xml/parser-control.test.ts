import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../../src/xml/parser.js";
import { serialize } from "../../../src/xml/serialize.js";
import { cutsArb, streamArb } from "./arbitraries.js";
import { HEADER, LIMITS, parse, split } from "./helpers.js";

const H = Buffer.from(HEADER);

describe("parser: control from handlers (RFC 6120 §4.3.3)", () => {
  it("reset() inside onElement restarts the stream mid-chunk (RFC 6120 §4.3.3)", () => {
    const events: string[] = [];
    const p: StreamParser = new StreamParser(
      {
        onStreamOpen: (h) => events.push(`open ${h.attrs.id ?? ""}`),
        onElement: (el: Element) => {
          events.push(serialize(el));
          if (el.name === "success") p.reset();
        },
        onStreamClose: () => events.push("close"),
        onError: (e) => events.push(`error ${e.condition}`),
      },
      LIMITS,
    );
    const second = HEADER.replace("to=", "id='2' to=");
    p.write(Buffer.from(`${HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>${second}<iq id='b'/>`));
    assert.deepEqual(events, ["open ", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "open 2", "<iq id='b'/>"]);
  });

  it("setLimits() inside a handler applies to the rest of the chunk", () => {
    const big = `<message><body>${"x".repeat(500)}</body></message>`;
    const res = parse(HEADER, { maxStanzaBytes: 300 });
    res.parser.setLimits({ maxStanzaBytes: 1000 });
    res.parser.write(Buffer.from(big));
    assert.equal(res.error, null);
    assert.equal(res.elements.length, 1);
  });

  it("stop() ignores the rest of the chunk and all future input, without an error", () => {
    const events: string[] = [];
    const p: StreamParser = new StreamParser(
      { onStreamOpen: () => {}, onElement: (el) => (events.push(el.name), p.stop()), onStreamClose: () => {}, onError: assert.fail },
      LIMITS,
    );
    p.write(Buffer.from(`${HEADER}<a/><b/>`));
    p.write(Buffer.from("<c/>"));
    assert.deepEqual(events, ["a"]);
    assert.equal(p.failed, false);
  });

  it("a throwing handler becomes internal-server-error; write() does not throw", () => {
    let condition = "";
    const p = new StreamParser(
      { onStreamOpen: () => {}, onElement: () => { throw new Error("boom"); }, onStreamClose: () => {}, onError: (e) => (condition = e.condition) },
      LIMITS,
    );
    p.write(Buffer.from(`${HEADER}<a/>`));
    assert.equal(condition, "internal-server-error");
  });
});

describe("parser: robustness (SPEC E1, E3)", () => {
  it("same events for any segmentation of a valid stream (SPEC E1)", () => {
    fc.assert(
      fc.property(streamArb.chain((s) => fc.tuple(fc.constant(s), cutsArb(s.bytes.length))), ([s, cuts]) => {
        const whole = parse([s.bytes], { maxDepth: 64, maxChildren: 64 });
        assert.equal(whole.error, null);
        assert.deepEqual(parse(split(s.bytes, cuts), { maxDepth: 64, maxChildren: 64 }).events, whole.events);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws and reports at most one error on random bytes", () => {
    const tail = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 100 }).map((s) => Buffer.from(s)));
    fc.assert(
      fc.property(fc.boolean(), tail, cutsArb(300), (withHeader, bytes, cuts) => {
        const input = Buffer.concat([withHeader ? H : Buffer.alloc(0), Buffer.from(bytes)]);
        const res = parse(split(input, cuts));
        assert.ok(res.errors <= 1);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("parser: mutated streams (SPEC E2)", () => {
  it("never throws and reports at most one error when valid streams are corrupted", () => {
    const mutated = streamArb.chain((s) =>
      fc.tuple(
        fc.constant(s.bytes),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        cutsArb(s.bytes.length),
      ),
    );
    fc.assert(
      fc.property(mutated, ([bytes, edits, cuts]) => {
        const copy = Buffer.from(bytes);
        for (const [at, value] of edits) copy[at % copy.length] = value;
        const res = parse(split(copy, cuts));
        assert.ok(res.errors <= 1);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("parser: performance guard (SPEC E1)", () => {
  it("the parser and its scanner keep fast properties after parsing (no dictionary-mode objects on the hot path)", () => {
    const script = [
      `import { StreamParser } from ${JSON.stringify(new URL("../../../src/xml/parser.ts", import.meta.url).href)};`,
      "const p = new StreamParser({ onStreamOpen() {}, onElement() {}, onStreamClose() {}, onError() {} }, { maxStanzaBytes: 4096, maxDepth: 8, maxAttributes: 8, maxChildren: 8 });",
      "p.write(Buffer.from(\"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message to='a@b' xmlns:p='urn:p' p:x='1'><body>hi &amp; bye</body></message>\"));",
      "console.log(%HasFastProperties(p), %HasFastProperties(p.scanner), %HasFastProperties(p.framer));",
    ].join("\n");
    const args = ["--allow-natives-syntax", "--import", "tsx", "--input-type=module", "-e", script];
    const cwd = new URL("../../../", import.meta.url);
    const out = execFileSync(process.execPath, args, { encoding: "utf8", cwd });
    assert.equal(out.trim(), "true true true");
  });
});

describe("element cap per stanza (SPEC E1)", () => {
  const stream = (body: string) =>
    Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>${body}`);
  const run = (body: string, maxElements?: number) => {
    const got: { elements: number; error?: string } = { elements: 0 };
    const p = new StreamParser(
      { onStreamOpen() {}, onElement() { got.elements++; }, onStreamClose() {}, onError(e) { got.error = `${e.condition}: ${e.message}`; } },
      { maxStanzaBytes: 100_000, maxDepth: 8, maxAttributes: 8, maxChildren: 1000, ...(maxElements === undefined ? {} : { maxElements }) },
    );
    p.write(stream(body));
    return got;
  };
  const stanza = (n: number) => `<message><x>${"<a/>".repeat(n - 2)}</x></message>`; // n elements in all

  it("a stanza of exactly maxElements passes; one more is a policy-violation; the count restarts per stanza", () => {
    assert.deepEqual(run(stanza(10) + stanza(10), 10), { elements: 2 });
    const over = run(stanza(11), 10);
    assert.equal(over.elements, 0);
    assert.match(over.error ?? "", /^policy-violation: more than 10 elements in one stanza/);
  });

  it("without maxElements there is no cap (the server's side)", () => {
    assert.deepEqual(run(stanza(500)), { elements: 1 });
  });
});
