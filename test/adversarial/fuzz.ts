// Mutation fuzzing of the stream parser (SPEC E1–E3; framer → UTF-8 → saxes → tree builder →
// serializer). Seeds are XEP-style examples and the hostile inputs of the adversarial suite; mutations
// are byte flips, inserts, deletions, duplications and dictionary tokens; every input is fed with a
// random segmentation, with and without time-slicing. Checked: nothing throws out of write(), at most
// one error, every accepted element re-serializes and re-parses, per-input time < 50 ms, no heap growth.
// `npm run fuzz [-- seconds [seed]]` runs it for longer; test/adversarial/fuzz.test.ts runs ~15 s.
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { StreamParser, type ParserLimits } from "../../src/xml/parser.js";
import { serialize } from "../../src/xml/serialize.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' to='localhost' version='1.0'>";

export const SEEDS: string[] = [
  `${HEADER}<message to='romeo@example.net' from='juliet@example.com/balcony' type='chat' xml:lang='en'><body>Wherefore art thou, Romeo?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>`,
  `${HEADER}<presence to='coven@chat.shakespeare.lit/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='20'/></x></presence>`,
  `${HEADER}<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`,
  `${HEADER}<message type='groupchat' to='room@conference.localhost'><body>&lt;&amp;&gt;&quot;&apos; &#x1F600; é 中</body><x:y x:a='1'/></message></stream:stream>`,
  `${HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlcHc=</auth>`,
  `${HEADER}<message><body><![CDATA[<b>not markup</b> ]] > ]]></body></message><c:message xmlns:c='jabber:client' from='victim@localhost'/>`,
  `${HEADER}<message to='a@b'><body>${"<a/>".repeat(5)}</body><!-- c --></message><?pi x?><!DOCTYPE x>`,
  `${HEADER}<message to='a@b'><body>&foo;&#0;&#xD800;</body></message>hello<message></messag>`,
  `<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong'><stream:features/>`,
  `${HEADER}<message><body>\u00e9\u20ac</body></message>`,
];

const DICT = ["<", ">", "/>", "</", "<!--", "-->", "<?", "?>", "<![CDATA[", "]]>", "&", "&amp;", "&#", "&#x", ";", "'", '"', "=", "xmlns", "xmlns:", "stream:", ":", " ", "\0", "\r\n", "<message>", "</message>", "</stream:stream>", "<stream:stream>", "<!DOCTYPE", "<!ENTITY", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xff"];

/** Small deterministic PRNG (mulberry32) so that a failure is reproducible from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mutate(input: Buffer, r: () => number): Buffer {
  let b: Buffer = Buffer.from(input);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (b.length + 1));
    switch (Math.floor(r() * 6)) {
      case 0: if (b.length) b[Math.min(at, b.length - 1)] = Math.floor(r() * 256); break;
      case 1: b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(r() * 256)]), b.subarray(at)]); break;
      case 2: {
        const tok = DICT[Math.floor(r() * DICT.length)] as string;
        b = Buffer.concat([b.subarray(0, at), Buffer.from(tok, /[\x80-\xff]/.test(tok) ? "latin1" : "utf8"), b.subarray(at)]);
        break;
      }
      case 3: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(r() * 8)))]); break;
      case 4: { const len = Math.floor(r() * 32); b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); break; }
      default: if (b.length) { const k = Math.min(at, b.length - 1); b[k] = (b[k] as number) ^ (1 << Math.floor(r() * 8)); }
    }
  }
  return b;
}

export function segments(b: Buffer, r: () => number): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  const mode = r();
  while (i < b.length) {
    const len = mode < 0.1 ? 1 : 1 + Math.floor(r() * (mode < 0.5 ? 16 : 256));
    out.push(b.subarray(i, i + len));
    i += len;
  }
  return out;
}

const LIMITS: ParserLimits = { maxStanzaBytes: 4096, maxDepth: 16, maxAttributes: 16, maxChildren: 64 };

export interface FuzzStats { inputs: number; errors: number; elements: number; maxMs: number; heapGrowthMiB: number; failures: string[] }

function feed(cuts: Buffer[], sliceChars: number): { errors: number; accepted: string[]; ms: number; threw: string | null } {
  const tasks: (() => void)[] = [];
  let errors = 0;
  let threw: string | null = null;
  const accepted: string[] = [];
  const started = performance.now();
  try {
    const p = new StreamParser(
      {
        onStreamOpen: () => {},
        onElement: (el) => void accepted.push(serialize(el)),
        onStreamClose: () => {},
        onError: () => void errors++,
      },
      LIMITS,
      sliceChars > 0 ? { sliceChars, defer: (fn) => void tasks.push(fn) } : {},
    );
    for (const seg of cuts) {
      p.write(seg);
      for (let t = tasks.shift(); t; t = tasks.shift()) t();
    }
  } catch (err) {
    threw = String(err);
  }
  return { errors, accepted, ms: performance.now() - started, threw };
}

export function fuzz(opts: { durationMs: number; seed?: number }): FuzzStats {
  const seed = opts.seed ?? 1;
  const r = rng(seed);
  v8.setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as (() => void) | undefined;
  const stats: FuzzStats = { inputs: 0, errors: 0, elements: 0, maxMs: 0, heapGrowthMiB: 0, failures: [] };
  const corpus: Buffer[] = SEEDS.map((s) => Buffer.from(s, "utf8"));
  const t0 = performance.now();
  let heap0 = -1;
  while (performance.now() - t0 < opts.durationMs && stats.failures.length < 10) {
    if (heap0 < 0 && performance.now() - t0 > opts.durationMs * 0.1) {
      gc?.();
      heap0 = process.memoryUsage().heapUsed;
    }
    const base = corpus[Math.floor(r() * corpus.length)] as Buffer;
    const input = mutate(base, r);
    const sliced = r() < 0.3;
    const sliceChars = 1 + Math.floor(r() * 64);
    const cuts = segments(input, r);
    const first = feed(cuts, sliced ? sliceChars : 0);
    const { errors, accepted, threw } = first;
    let ms = first.ms;
    // A GC pause or a busy machine is not the input's cost: an input over budget is re-timed, and fails
    // only if it stays over budget (its cost is deterministic).
    for (let retry = 0; retry < 5 && ms >= 50; retry++) ms = Math.min(ms, feed(cuts, sliced ? sliceChars : 0).ms);
    if (threw !== null) stats.failures.push(`write threw ${threw} on ${input.toString("base64")}`);
    stats.maxMs = Math.max(stats.maxMs, ms);
    if (ms >= 50) stats.failures.push(`${ms.toFixed(1)} ms on ${input.toString("base64")}`);
    if (errors > 1) stats.failures.push(`${errors} errors on ${input.toString("base64")}`);
    // Whatever was accepted re-parses to itself (the canonical form is a fixed point).
    for (const text of accepted) {
      const again: string[] = [];
      const q = new StreamParser({ onStreamOpen: () => {}, onElement: (el) => void again.push(serialize(el)), onStreamClose: () => {}, onError: () => {} }, { ...LIMITS, maxStanzaBytes: 1 << 20 });
      q.write(Buffer.from(HEADER + text));
      if (again[0] !== text) stats.failures.push(`not canonical: ${text}`);
    }
    stats.inputs++;
    stats.errors += errors;
    stats.elements += accepted.length;
    if (accepted.length > 0 && errors === 0 && corpus.length < 200 && r() < 0.05) corpus.push(input); // keep interesting valid inputs
  }
  gc?.();
  stats.heapGrowthMiB = heap0 < 0 ? 0 : (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  return stats;
}
