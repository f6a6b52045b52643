// mucmux's own canonical serializer (not ltx's toString): everything forwarded is written here, so
// the escaping rules below are what keep a stanza from smuggling markup into a stream (SPEC E3).
import type { Element } from "@xmpp/xml";
import { NS_STREAMS } from "./ns.js";

export const STREAM_CLOSE = "</stream:stream>";

// Attribute values: quotes and markup characters, plus \t \n \r as character references, because
// attribute-value normalization would otherwise turn them into spaces (XML 1.0 §3.3.3).
const ATTR_TEST = /[&<>"'\t\n\r]/;
const ATTR_ALL = /[&<>"'\t\n\r]/g;
// Text: markup characters, plus \r, which end-of-line handling would otherwise drop (XML 1.0 §2.11).
// '>' is escaped too so that "]]>" can never appear in character data.
const TEXT_TEST = /[&<>\r]/;
const TEXT_ALL = /[&<>\r]/g;

const ENTITY: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
};

function entity(c: string): string {
  return ENTITY[c] ?? c;
}

export function escapeAttr(s: string): string {
  return ATTR_TEST.test(s) ? s.replace(ATTR_ALL, entity) : s;
}

export function escapeText(s: string): string {
  return TEXT_TEST.test(s) ? s.replace(TEXT_ALL, entity) : s;
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
