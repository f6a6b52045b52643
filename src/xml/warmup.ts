// JIT warm-up of the XML hot paths at start (SPEC E1): V8 compiles a function with its optimizing tiers only
// after it has run for a while, so the first large stanza after a start ran the scanner and the serializer
// unoptimized and stalled the event loop several times longer than later ones (docs/benchmarks.md, worst
// input, "first max-size stanza after start"). Before the listeners open, a synthetic stream with every
// construct the scanner and the serializer handle (attributes and text with references, CDATA, prefixes,
// nesting, a large sliced frame) goes through the same StreamParser and serialize() a few times.
import type { Element } from "@xmpp/xml";
import { StreamParser, type ParserLimits } from "./parser.js";
import { serialize } from "./serialize.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " +
  "xmlns:w='urn:mucmux:warmup' to='warmup.invalid' version='1.0'>";

function stanza(i: number, children: number): string {
  let kids = "";
  for (let k = 0; k < children; k++) {
    kids += `<e a='&lt;${k}' b="&amp;x" c='plain value ${k}' w:d='1'/>`;
  }
  return `<message to='a@warmup.invalid/r' from='b@warmup.invalid/s' type='chat' id='w-${i}'>` +
    `<body>text &lt;b&gt; &amp; more ${i}<![CDATA[<not markup>]]> tail\r\n</body>` +
    `<x xmlns='urn:mucmux:warmup:x' xml:lang='en'>${kids}<p:y xmlns:p='urn:p'><p:z p:q='2'>deep</p:z></p:y></x></message>`;
}

/** Runs the synthetic stream `rounds` times; returns the stanzas parsed and serialized. */
export function warmUpXml(limits: ParserLimits, sliceChars: number, rounds = 3): number {
  let count = 0;
  const big = stanza(-1, Math.max(1, Math.min(1000, (limits.maxElements ?? 1000) - 10)));
  const text = HEADER + Array.from({ length: 50 }, (_, i) => stanza(i, 8)).join("") + (big.length <= limits.maxStanzaBytes ? big : "");
  const bytes = Buffer.from(text, "utf8");
  for (let r = 0; r < rounds; r++) {
    const tasks: (() => void)[] = [];
    const done: Element[] = [];
    const p = new StreamParser(
      { onStreamOpen: () => {}, onElement: (el) => void done.push(el), onStreamClose: () => {}, onError: () => {} },
      limits,
      { sliceChars, defer: (fn) => void tasks.push(fn) },
    );
    for (let i = 0; i < bytes.length; i += 4096) {
      p.write(bytes.subarray(i, i + 4096));
      for (let t = tasks.shift(); t; t = tasks.shift()) t();
    }
    for (const el of done) if (serialize(el).length > 0) count++;
  }
  return count;
}
