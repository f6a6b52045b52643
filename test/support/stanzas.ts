// Stanzas from XML text, parsed the way mucmux parses them (its own StreamParser, canonical elements, in the
// jabber:client namespace): shared by the transcript DSL and the unit tests.
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";

/** Parser limits of the tests: roomier than mucmux's defaults (big scripted bursts). */
export const STANZA_LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 100, maxChildren: 20_000 };
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/** One or more stanzas; throws on bad or incomplete XML, naming `who`. */
export function parseStanzas(xmlText: string, who = "parseStanzas"): Element[] {
  const out: Element[] = [];
  let error: string | undefined;
  const p = new StreamParser({
    onStreamOpen: () => {},
    onElement: (el) => void out.push(el),
    onStreamClose: () => {},
    onError: (e) => { error = `${e.condition}: ${e.message}`; },
  }, STANZA_LIMITS);
  p.write(Buffer.from(HEADER + xmlText, "utf8"));
  if (error !== undefined) throw new Error(`${who}: bad XML (${error}): ${xmlText}`);
  if (out.length === 0 && xmlText.trim() !== "") throw new Error(`${who}: incomplete XML: ${xmlText}`);
  return out;
}

/** Exactly one stanza. */
export function parseStanza(xmlText: string, who = "parseStanza"): Element {
  const els = parseStanzas(xmlText, who);
  if (els.length !== 1) throw new Error(`${who}: expected exactly one stanza, got ${els.length}: ${xmlText}`);
  return els[0] as Element;
}
