// mucmux's own canonical serializer (not ltx's toString): everything forwarded is written here, so
// the escaping rules below are what keep a stanza from smuggling markup into a stream (SPEC E3).
import type { Element } from "@xmpp/xml";
import { NS_STREAMS } from "./ns.js";

export const STREAM_CLOSE = "</stream:stream>";

// Attribute values: quotes and markup characters, plus \t \n \r as character references, because
// attribute-value normalization would otherwise turn them into spaces (XML 1.0 §3.3.3).
const ATTR_TEST = /[&<>"'\t\n\r]/;
// Text: markup characters, plus \r, which end-of-line handling would otherwise drop (XML 1.0 §2.11).
// '>' is escaped too so that "]]>" can never appear in character data.
const TEXT_TEST = /[&<>\r]/;

/** The slow path: `s` has at least one character to escape; one pass, no callback per match. */
function escapeSlow(s: string, attr: boolean): string {
  let out = "";
  let last = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let rep: string;
    switch (s.charCodeAt(i)) {
      case 0x26: rep = "&amp;"; break;
      case 0x3c: rep = "&lt;"; break;
      case 0x3e: rep = "&gt;"; break;
      case 0x0d: rep = "&#13;"; break;
      case 0x22: if (!attr) continue; rep = "&quot;"; break;
      case 0x27: if (!attr) continue; rep = "&apos;"; break;
      case 0x09: if (!attr) continue; rep = "&#9;"; break;
      case 0x0a: if (!attr) continue; rep = "&#10;"; break;
      default: continue;
    }
    out += s.slice(last, i) + rep;
    last = i + 1;
  }
  return out + s.slice(last);
}

export function escapeAttr(s: string): string {
  return ATTR_TEST.test(s) ? escapeSlow(s, true) : s;
}

export function escapeText(s: string): string {
  return TEXT_TEST.test(s) ? escapeSlow(s, false) : s;
}

// Names are not escapable, so a name that is not an XML Name (e.g. one built from user data by a
// stage) is a programming error: refuse to write it rather than emit broken or injected markup.
const NAME =
  /^[:A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}][-.0-9:A-Z_a-z\u00B7\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u037D\u037F-\u1FFF\u200C-\u200D\u203F\u2040\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}]*$/u;
const knownNames = new Set<string>();
const MAX_KNOWN_NAMES = 4096;

function checkName(name: string): string {
  if (knownNames.has(name)) return name;
  if (!NAME.test(name)) throw new TypeError(`not an XML name: ${JSON.stringify(name)}`);
  if (knownNames.size < MAX_KNOWN_NAMES) knownNames.add(name);
  return name;
}

function attributes(attrs: Record<string, unknown>): string {
  let s = "";
  for (const key in attrs) {
    const v = attrs[key];
    if (v === undefined || v === null) continue;
    s += ` ${checkName(key)}='${escapeAttr(String(v))}'`;
  }
  return s;
}

function element(el: Element): string {
  const name = checkName(el.name);
  const open = `<${name}${attributes(el.attrs)}`;
  const kids = el.children;
  if (kids.length === 0) return `${open}/>`;
  let s = `${open}>`;
  for (const child of kids) {
    s += typeof child === "string" ? escapeText(child) : element(child);
  }
  return `${s}</${name}>`;
}

/** Canonical XML for one element and its subtree. Throws TypeError on a name that is not an XML Name. */
export function serialize(el: Element): string {
  return element(el);
}

/** Opening of an outgoing stream; the `stream` prefix it declares is what `stream:*` elements rely on. */
export function streamHeader(attrs: Record<string, string | undefined>): string {
  const { xmlns, "xmlns:stream": _ignored, ...rest } = attrs;
  const all = { xmlns: xmlns ?? "jabber:client", "xmlns:stream": NS_STREAMS, ...rest };
  return `<?xml version='1.0'?><stream:stream${attributes(all)}>`;
}
