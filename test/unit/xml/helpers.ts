// Shared helpers for the XML layer tests.
import type { Element } from "@xmpp/xml";
import { Framer } from "../../../src/xml/framer.js";
import type { FrameKind } from "../../../src/xml/framer.js";
import { StreamParser } from "../../../src/xml/parser.js";
import type { ParserLimits } from "../../../src/xml/parser.js";
import { serialize } from "../../../src/xml/serialize.js";

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  `xmlns:stream='${NS_STREAMS}' to='example.test' version='1.0'>`;

export const LIMITS: ParserLimits = { maxStanzaBytes: 10_000, maxDepth: 8, maxAttributes: 8, maxChildren: 8 };

/** Splits `bytes` at the given cut points (any order, any values; clamped and deduplicated). */
export function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(bytes.length, c))))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(prev, p));
    prev = p;
  }
  return parts;
}

export function drip(bytes: Buffer): Buffer[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

export interface FramerResult {
  frames: string[]; // "kind:text"
  error: string | null; // "condition" or "condition/app-condition"
  errors: number;
}

export function frame(chunks: Buffer[], maxBytes = 10_000, maxAttributes = 8): FramerResult {
  const res: FramerResult = { frames: [], error: null, errors: 0 };
  const f = new Framer(
    {
      onFrame: (kind: FrameKind, bytes) => res.frames.push(`${kind}:${bytes.toString("utf8")}`),
      onError: (err) => {
        res.errors++;
        res.error = err.appCondition ? `${err.condition}/${err.appCondition.name}` : err.condition;
      },
    },
    { maxBytes, maxAttributes },
  );
  for (const c of chunks) f.push(c);
  return res;
}

export interface ParseResult {
  events: string[]; // "open", "el:<canonical xml>", "close"
  elements: Element[];
  error: string | null;
  errors: number;
  parser: StreamParser;
}

export function parse(chunks: Buffer[] | string, limits: Partial<ParserLimits> = {}): ParseResult {
  const res: ParseResult = { events: [], elements: [], error: null, errors: 0, parser: undefined as never };
  res.parser = new StreamParser(
    {
      onStreamOpen: () => res.events.push("open"),
      onElement: (el) => {
        res.elements.push(el);
        res.events.push(`el:${serialize(el)}`);
      },
      onStreamClose: () => res.events.push("close"),
      onError: (err) => {
        res.errors++;
        res.error = err.condition;
      },
    },
    { ...LIMITS, ...limits },
  );
  for (const c of typeof chunks === "string" ? [Buffer.from(chunks)] : chunks) res.parser.write(c);
  return res;
}

/** Plain structural view of an Element, for deepStrictEqual. */
export interface Plain {
  name: string;
  attrs: Record<string, string>;
  children: (Plain | string)[];
}

export function plain(el: Element): Plain {
  return {
    name: el.name,
    attrs: { ...el.attrs },
    children: el.children.map((c) => (typeof c === "string" ? c : plain(c))),
  };
}
