// Where the stall from the worst-input stanza comes from, in-process (no sockets, no TLS, no other process):
// the max-size stanza of bench/scenarios/worst-input.ts through mucmux's own StreamParser, exactly as a Wire
// runs it (64-byte chunks, PARSE_SLICE_CHARS slices deferred with setImmediate), then serialize(), then the
// serialized copy through an upstream-side parser (the receiving session's leg; no element cap). Prints the
// longest synchronous step of each kind in CPU ms (process.cpuUsage) and the GC pauses (wall) seen meanwhile.
// `node --import tsx bench/tools/worst-stanza-steps.ts [ROUNDS]` (the tsx timings are close to the build's:
// the hot paths are saxes, the framer loop and string building).
import { PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";

import { PARSE_SLICE_CHARS } from "../../src/stream/wire.js";
import { StreamParser, type ParserLimits } from "../../src/xml/parser.js";
import { serialize } from "../../src/xml/serialize.js";
import type { Element } from "@xmpp/xml";
import { configLeaves } from "../../src/config/index.js";
import { defaultLimits, worstStanza } from "../scenarios/worst-input.js";

const rounds = Number(process.argv[2] ?? 5);
const num = (p: string) => Number(configLeaves().find((l) => l.path === p)?.defaultText);
const l = defaultLimits();
const clientLimits: ParserLimits = { maxStanzaBytes: l.maxStanzaBytes, maxDepth: num("limits.maxDepth"), maxAttributes: l.maxAttributes, maxChildren: num("limits.maxChildren"), maxElements: l.maxElements };
const upstreamLimits: ParserLimits = { ...clientLimits, maxStanzaBytes: Math.max(l.maxStanzaBytes * 4, 1 << 20) };
delete upstreamLimits.maxElements;
const header = Buffer.from("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");

// CPU time (ms, user + system, all threads: getrusage is exact, unlike schedstat's on-CPU column for a running
// thread), so that a busy shared machine does not inflate the steps. GC helper threads add a little.
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// GC pauses (wall ms) by kind: 1 minor (scavenge), 4 major (mark-compact), 8 incremental marking, 16 weak callbacks.
const gcs: number[] = [];
const gcByKind = new Map<number, number>();
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcs.push(e.duration);
    const kind = ((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind ?? 0;
    gcByKind.set(kind, Math.max(gcByKind.get(kind) ?? 0, e.duration));
  }
}).observe({ entryTypes: ["gc"] });

interface Steps { chunkMax: number; lastChunk: number; sliceMax: number; slices: number; lastSlice: number; total: number }

/** Feeds `xml` in `chunk`-byte pieces; resolves with the element and the step timings (ms). */
function parse(xml: Buffer, limits: ParserLimits, chunk: number): Promise<{ el: Element; steps: Steps }> {
  return new Promise((resolve, reject) => {
    const steps: Steps = { chunkMax: 0, lastChunk: 0, sliceMax: 0, slices: 0, lastSlice: 0, total: 0 };
    let el: Element | undefined;
    const p = new StreamParser(
      { onStreamOpen: () => {}, onElement: (e) => (el = e), onStreamClose: () => {}, onError: (e) => reject(e) },
      limits,
      {
        sliceChars: PARSE_SLICE_CHARS,
        defer: (fn) => void setImmediate(() => {
          const t = cpuMs();
          fn();
          const d = cpuMs() - t;
          steps.total += d;
          steps.slices++;
          steps.sliceMax = Math.max(steps.sliceMax, d);
          if (el) {
            steps.lastSlice = d;
            resolve({ el, steps });
          }
        }),
      },
    );
    p.write(header);
    for (let off = 0; off < xml.length; off += chunk) {
      const t = cpuMs();
      p.write(xml.subarray(off, off + chunk));
      const d = cpuMs() - t;
      steps.total += d;
      steps.chunkMax = Math.max(steps.chunkMax, d);
      steps.lastChunk = d;
    }
    if (el) resolve({ el, steps }); // small enough to be parsed at once
  });
}

const f = (v: number) => v.toFixed(2).padStart(7);
console.log(`stanza: ${l.maxStanzaBytes} bytes, ${l.maxElements} elements; slices of ${PARSE_SLICE_CHARS} chars`);
console.log("round | client: max 64-B chunk, last chunk (frame end), max slice, slices, last slice, total | serialize | upstream (1 chunk): max slice, total | GC max (by kind)");
for (let r = 0; r < rounds; r++) {
  gcs.length = 0;
  gcByKind.clear();
  const { xml } = worstStanza("wrecv@localhost", `w${r}`);
  const a = await parse(xml, clientLimits, 64);
  const t = cpuMs();
  const out = serialize(a.el);
  const ser = cpuMs() - t;
  const b = await parse(Buffer.from(out), upstreamLimits, 65536);
  await new Promise((res) => setTimeout(res, 20));
  console.log(`${String(r).padStart(5)} | ${f(a.steps.chunkMax)} ${f(a.steps.lastChunk)} ${f(a.steps.sliceMax)} ${String(a.steps.slices).padStart(4)} ${f(a.steps.lastSlice)} ${f(a.steps.total)} | ${f(ser)} | ${f(b.steps.sliceMax)} ${f(b.steps.total)} | ${f(Math.max(0, ...gcs))} (${[...gcByKind].map(([k, v]) => `${k}: ${v.toFixed(1)}`).join(", ")})`);
}
