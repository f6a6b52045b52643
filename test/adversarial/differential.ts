// Differential fuzzing of mucmux's strict scanner against saxes (SPEC E2, E3): the same bytes, cut the same
// way, go through src/xml/parser.ts (framer → UTF-8 → scanner) and through the saxes-based parser mucmux
// used before (test/support/saxes-oracle: same framer → UTF-8 → saxes → tree builder). Both must produce
// the same transcript: the same header attributes, the same canonical stanzas with the same byte counts,
// the same close, and the same error condition at the same point. A parser differential is how stanza
// smuggling happens, so any difference is a failure.
//
// Inputs come from three generators: the mutation fuzzer's seeds and mutations (fuzz.ts), a grammar of
// near-valid XML built from the constructs where XML parsers disagree (names, qualified names, namespace
// declarations, entity and character references, end-of-line and attribute-value normalization, CDATA,
// XML declarations), and mutations of those. `npm run fuzz -- --differential N` runs N inputs;
// differential.test.ts runs 10 000 in the suite.
import type { ParserHandlers, ParserLimits, ParserOptions } from "../../src/xml/parser.js";
import { StreamParser } from "../../src/xml/parser.js";
import { serialize } from "../../src/xml/serialize.js";
import { SaxesStreamParser } from "../support/saxes-oracle/parser.js";
import { mutate, rng, segments, SEEDS } from "./fuzz.js";

type ParserClass = new (h: ParserHandlers, l: ParserLimits, o?: ParserOptions) => { write(b: Buffer): void };

export const DIFF_LIMITS: ParserLimits = { maxStanzaBytes: 4096, maxDepth: 8, maxAttributes: 12, maxChildren: 16, maxElements: 40 };

/** What a parser reported for `cuts`, fed one by one; with `sliceChars`, big frames are scanned in slices. */
export function transcript(Parser: ParserClass, cuts: Buffer[], sliceChars: number, limits = DIFF_LIMITS): string[] {
  const out: string[] = [];
  const tasks: (() => void)[] = [];
  const p = new Parser(
    {
      onStreamOpen: (h) => void out.push(`open ${JSON.stringify(h.attrs)}`),
      onElement: (el, n) => void out.push(`el ${n} ${serialize(el)}`),
      onStreamClose: () => void out.push("close"),
      onError: (e) => void out.push(`error ${e.condition}`),
    },
    limits,
    sliceChars > 0 ? { sliceChars, defer: (fn) => void tasks.push(fn) } : {},
  );
  for (const c of cuts) {
    p.write(c);
    for (let t = tasks.shift(); t; t = tasks.shift()) t();
  }
  return out;
}

/** The first difference between the two parsers on `cuts` (null: none), and whether the input was refused. */
export function differ(cuts: Buffer[], sliceChars: number): { diff: string | null; rejected: boolean } {
  const mine = transcript(StreamParser, cuts, sliceChars);
  const oracle = transcript(SaxesStreamParser, cuts, sliceChars);
  const rejected = mine.some((e) => e.startsWith("error"));
  const n = Math.max(mine.length, oracle.length);
  for (let i = 0; i < n; i++) {
    if (mine[i] !== oracle[i]) return { diff: `event ${i}: scanner ${JSON.stringify(mine[i])}, saxes ${JSON.stringify(oracle[i])}`, rejected };
  }
  return { diff: null, rejected };
}

// --- the grammar of near-valid XML -------------------------------------------------------------------

const HEADER_NS = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";
// Each list: the valid forms first, then (after the `|` index) forms a parser must refuse or handle with care.
const NAMES = split(["message", "body", "x", "a", "é", "中", "a-b", "a.b", "_a", "a1", "a·", "𐀀", "a\u0300", "p:a", "x:y", "stream:x", "stream:features", "a\u00b7", "\u2070"],
  ["1a", "-a", ".a", "·a", ":a", "a:", "a:b:c", "q:b", "xmlns:a", "xml:a", "\u037e", "\u00d7", "\udb80\udc00"]);
const ATTR_NAMES = split(["to", "from", "id", "type", "a", "b", "x:a", "p:a", "xml:lang", "xml:space", "xmlns", "xmlns:p", "xmlns:q", "xmlns:x", "é"],
  ["q:a", "y:a", "xmlns:xml", "xmlns:xmlns", "xmlns:stream", "xmlns:", ":a", "a:", "a:b:c"]);
const URIS = split(["urn:p", "urn:q", "urn:x", " urn:p ", "jabber:client", "jabber:server", "urn:p&amp;", "\turn:p\n", "http://etherx.jabber.org/streams"],
  ["", " ", "http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/xmlns/"]);
const VALUE_PARTS = split(["a", " ", "\t", "\n", "\r", "\r\n", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#9;", "&#10;", "&#13;", "&#x20;", "&#x1F600;", "&#65;", "&#0065;", ">", "]]>", "é", "😀", "\u0085", "\u2028", "\ufeff", "\u007f", "\u00a0", "?"],
  ["&#0;", "&#x0;", "&#xD800;", "&#xFFFE;", "&#x110000;", "&#X41;", "&#x;", "&#;", "&;", "&foo;", "&amp", "&", "<", "\u0001", "\uffff", "'", '"']);
const TEXT_PARTS = split([...VALUE_PARTS.ok.filter((p) => p !== "]]>"), "]]", "]", "]]&gt;", "<![CDATA[x]]>", "<![CDATA[]]>", "<![CDATA[a\r\nb\rc]]>", "<![CDATA[<&]]]>", "<![CDATA[]]]]>"],
  [...VALUE_PARTS.odd, "]]>", "]]]>", "<!-- c -->", "<?pi?>"]);
const SPACES = [" ", "  ", "\n", "\t", "\r\n", "\r", ""];
const DECLS = split([
  "<?xml version='1.0'?>", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<?xml version='1.0' encoding='utf-8' standalone='yes'?>",
  "<?xml version='1.1'?>", "<?xml version='1.0' standalone='no'?>", "<?xml version = '1.0' ?>", "<?xml  version='1.0'\r\n?>"], [
  "<?xml version='1.0' encoding='ISO-8859-1'?>", "<?xml version='2.0'?>",
  "<?xml encoding='UTF-8'?>", "<?xml version='1.0'encoding='UTF-8'?>", "<?xml version = '1.0' ?>", "<?xml version='1.0' standalone='maybe'?>",
  "<?xml version='1.0' standalone='yes' encoding='UTF-8'?>", "<?xml version='1.0' version='1.0'?>", "<?xml version='1.0' foo='bar'?>",
  "<?xml version=1.0?>", "<?xml version='1.0' encoding='-x'?>", "<?xml version='1.0'??>", "<?xml version='1.?'?>"]);

interface Forms { ok: string[]; odd: string[] }

function split(ok: string[], odd: string[]): Forms {
  return { ok, odd };
}

function pick<T>(r: () => number, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)] as T;
}

/** Mostly a valid form; one time in 150 an odd one. */
function form(r: () => number, f: Forms): string {
  return pick(r, r() < 0.0067 ? f.odd : f.ok);
}

function value(r: () => number, parts: Forms): string {
  let s = "";
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) s += form(r, parts);
  return s;
}

function attributes(r: () => number): string {
  let s = "";
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const name = form(r, ATTR_NAMES);
    const v = name.startsWith("xmlns") && r() < 0.8 ? form(r, URIS) : value(r, VALUE_PARTS);
    const q = r() < 0.5 ? "'" : '"';
    const vq = q === "'" ? v.replace(/'/g, "") : v.replace(/"/g, "");
    s += `${i === 0 || r() < 0.99 ? pick(r, SPACES.slice(0, 6)) : ""}${name}${r() < 0.1 ? " " : ""}=${r() < 0.1 ? "\n" : ""}${q}${vq}${q}`;
  }
  return s;
}

function element(r: () => number, depth: number): string {
  const name = form(r, NAMES);
  const attrs = attributes(r);
  const trail = r() < 0.2 ? pick(r, SPACES) : "";
  if (depth > 3 || r() < 0.3) return `<${name}${attrs}${trail}/>`;
  let kids = "";
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) kids += r() < 0.5 ? element(r, depth + 1) : value(r, TEXT_PARTS);
  const close = r() < 0.01 ? form(r, NAMES) : name;
  return `<${name}${attrs}${trail}>${kids}</${close}${r() < 0.1 ? pick(r, SPACES) : ""}>`;
}

/** A stream of near-valid XML: a declaration, a header (sometimes odd), stanzas, sometimes a close. */
export function grammarInput(r: () => number): Buffer {
  let s = r() < 0.5 ? "" : form(r, DECLS);
  const headerExtra = r() < 0.9 ? ` xmlns:p='urn:p'${r() < 0.9 ? ` xmlns:x='${form(r, URIS)}'` : ""}` : "";
  const header = r() < 0.97 ? `<stream:stream ${HEADER_NS}${headerExtra} to='example.test' version='1.0'${r() < 0.1 ? attributes(r) : ""}>` : `<${form(r, NAMES)}${attributes(r)}>`;
  s += header;
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) s += element(r, 1) + (r() < 0.2 ? pick(r, SPACES) : "");
  if (r() < 0.3) s += r() < 0.9 ? "</stream:stream>" : `</stream:stream${pick(r, SPACES)}>`;
  return Buffer.from(s, "utf8");
}

export interface DiffStats { inputs: number; accepted: number; rejected: number; failures: string[] }

/** `count` inputs from the three generators, each checked sliced or whole with a random segmentation. */
export function differentialFuzz(count: number, seed: number): DiffStats {
  const r = rng(seed);
  const stats: DiffStats = { inputs: 0, accepted: 0, rejected: 0, failures: [] };
  const seeds = SEEDS.map((s) => Buffer.from(s, "utf8"));
  for (let i = 0; i < count && stats.failures.length < 10; i++) {
    const kind = r();
    const input = kind < 0.35 ? mutate(pick(r, seeds), r) : kind < 0.75 ? grammarInput(r) : mutate(grammarInput(r), r);
    const cuts = segments(input, r);
    const slice = r() < 0.3 ? 1 + Math.floor(r() * 64) : 0;
    const { diff, rejected } = differ(cuts, slice);
    stats.inputs++;
    if (diff !== null) stats.failures.push(`${diff} on ${JSON.stringify(input.toString("utf8"))} (base64 ${input.toString("base64")})`);
    else if (rejected) stats.rejected++;
    else stats.accepted++;
  }
  return stats;
}
