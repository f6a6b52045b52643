// Parse one stanza from text mucmux wrote earlier (e.g. the durable offline queue) through the same strict
// stack as the wire (SPEC E1–E3), so that stored text can never smuggle markup into a client stream.
import type { Element } from "@xmpp/xml";
import { StreamParser, type ParserLimits } from "./parser.js";
import { NS_STREAMS } from "./ns.js";

const HEADER = `<stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}' version='1.0'>`;

/** The single stanza in `text`, or undefined when it is anything else (several, none, malformed, a stream close). */
export function parseStanza(text: string, limits: ParserLimits): Element | undefined {
  const found: Element[] = [];
  let failed = false;
  let closed = false;
  const parser = new StreamParser(
    {
      onStreamOpen: () => {},
      onElement: (el) => void found.push(el),
      onStreamClose: () => void (closed = true),
      onError: () => void (failed = true),
    },
    limits,
  );
  parser.write(Buffer.from(`${HEADER}${text}`));
  if (closed) return undefined; // the text itself closed the stream
  parser.write(Buffer.from("</stream:stream>")); // only a clean close proves nothing dangles
  parser.stop();
  return !failed && closed && found.length === 1 ? found[0] : undefined;
}
