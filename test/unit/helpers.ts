// Shared helpers for unit tests of the chain, the account registry and the stages: stanzas parsed the way
// mucmux parses them (canonical elements from its own StreamParser), a logger that records its lines, and
// a turn of the event loop to let settled promises run (no sleeping).
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";
import { createLogger, type Logger } from "../../src/log.js";

const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 100, maxChildren: 1000 };
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/** One stanza (jabber:client) from XML text, as mucmux's parser would hand it on. */
export function stanza(xmlText: string): Element {
  const out: Element[] = [];
  let error: string | undefined;
  const p = new StreamParser({
    onStreamOpen: () => {},
    onElement: (el) => void out.push(el),
    onStreamClose: () => {},
    onError: (e) => { error = `${e.condition}: ${e.message}`; },
  }, LIMITS);
  p.write(Buffer.from(HEADER + xmlText, "utf8"));
  if (error !== undefined || out.length !== 1) throw new Error(`stanza(): expected one stanza (${error ?? `${out.length} parsed`}): ${xmlText}`);
  return out[0] as Element;
}

/** A logger whose JSON lines are kept (level `debug` and up unless told). */
export function recordingLog(level = "debug"): { log: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const log = createLogger(level, { write: (l: string) => void raw.push(l) });
  return { log, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** Let promise reactions and I/O callbacks queued so far run (one macrotask turn; not a timer). */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A promise with its settle functions, for holding a stage or a lookup until the test lets it go. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}
