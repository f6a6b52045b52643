// Shared helpers for unit tests of the chain, the account registry and the stages: stanzas parsed the way
// mucmux parses them (canonical elements from its own StreamParser), a logger that records its lines, and
// a turn of the event loop to let settled promises run (no sleeping).
import type { Element } from "@xmpp/xml";
import assert from "node:assert/strict";
import { parseStanza } from "../support/stanzas.js";
import { IqError } from "../../src/protocol/iq-tracker.js";
import { createLogger, type Logger } from "../../src/log.js";

/** One stanza (jabber:client) from XML text, as mucmux's parser would hand it on. */
export const stanza = (xmlText: string): Element => parseStanza(xmlText, "stanza()");

/** Settles to the IqError condition the promise rejected with (fails the test if it resolved). */
export async function iqErrorCondition(p: Promise<Element>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof IqError, String(err));
    return err.condition;
  }
  assert.fail("resolved, expected a rejection");
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
