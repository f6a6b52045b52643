// The strict XML scanner: one pass over the decoded text of one frame (the framer found its bounds and
// counted its bytes) that validates it and builds the canonical Element in the same pass. It accepts
// exactly the XML that RFC 6120 §11 allows on a stream, and the framer has already refused at byte level
// what §11.1 forbids (comments, processing instructions, DTDs): XML 1.0 names and characters, the five
// predefined entities and character references, CDATA sections, Namespaces in XML 1.0 (prefixes bound,
// no undeclaring, `xml` and `xmlns` reserved), no duplicate attribute (by qualified and by expanded name),
// end-of-line and attribute-value normalization. Its accept/reject decision and its trees are checked
// against saxes, a general-purpose conforming parser, by differential fuzzing (test/adversarial).
//
// Canonical form (SPEC E3: what mucmux forwards must be exactly what it understood; the 2022
// stanza-smuggling bugs were parser differentials):
// - element names are local names; elements in the streams namespace are named `stream:<local>` and
//   rely on the `stream` prefix every stream header declares (RFC 6120 §4.8.5);
// - every input namespace declaration is dropped and regenerated: `xmlns` appears exactly where the
//   namespace differs from the default namespace in scope in the output; a prefixed attribute keeps its
//   prefix and gets an `xmlns:p` declaration unless the nearest output declaration of `p` already binds
//   the same URI (so prefixes declared only on the stream header survive);
// - text is plain strings, adjacent runs merged, CDATA turned into text.
//
// Errors are thrown as XmlStreamError, the first one in document order, with the condition a saxes-based
// parser reported for it: prefix misuse is bad-namespace-prefix (RFC 6120 §4.9.3.2), the limits are
// policy-violation (SPEC E1), everything else is not-well-formed.
import { Element } from "@xmpp/xml";
import { XmlStreamError } from "./errors.js";
import type { StreamErrorCondition } from "./errors.js";
import { NS_STREAMS, NS_XML, NS_XMLNS } from "./ns.js";

export interface ScanLimits {
  maxDepth: number;
  maxAttributes: number;
  maxChildren: number;
  /** Elements in one top-level element, itself included; unset: no cap (SPEC E1: bounds the tree that
   * one stanza builds, and so the time its serialization and collection take). */
  maxElements?: number;
}

export interface ScannedHeader {
  /** Header attributes as written (to, from, id, version, xml:lang, ...), without namespace declarations. */
  attrs: Record<string, string>;
  /** `<stream:stream .../>`: the stream opened and closed at once. */
  closed: boolean;
}

// ASCII name characters (XML 1.0 fifth edition §2.3): 1 = NameStartChar, 2 = NameChar only.
const ASCII_NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (c === 0x3a || c === 0x5f || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) ASCII_NAME[c] = 1;
  else if (c === 0x2d || c === 0x2e || (c >= 0x30 && c <= 0x39)) ASCII_NAME[c] = 2;
}

/** NameStartChar for a BMP code unit ≥ 0x80 that is not a surrogate. */
function nameStartBmp(c: number): boolean {
  return (
    (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) ||
    (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) || c === 0x200c || c === 0x200d ||
    (c >= 0x2070 && c <= 0x218f) || (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff) ||
    (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd)
  );
}

/** NameChar that is not a NameStartChar, for a code unit ≥ 0x80. */
function nameOnlyBmp(c: number): boolean {
  return c === 0xb7 || (c >= 0x300 && c <= 0x36f) || c === 0x203f || c === 0x2040;
}

// High surrogates D800–DB7F start the pairs of U+10000–U+EFFFF, which are name characters; the decoder
// (fatal UTF-8) guarantees that every high surrogate is followed by a low one.
const isSupplementaryName = (c: number): boolean => c >= 0xd800 && c <= 0xdb7f;

function isNameStartAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 0x80) return ASCII_NAME[c] === 1;
  if (c >= 0xd800 && c <= 0xdfff) return isSupplementaryName(c);
  return nameStartBmp(c); // NaN (past the end) is false here
}

/** The index after the run of NameChars starting at `i`. */
function nameEnd(s: string, i: number): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (ASCII_NAME[c] === 0) return i;
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      if (!isSupplementaryName(c)) return i;
      i += 2;
    } else if (nameStartBmp(c) || nameOnlyBmp(c)) {
      i++;
    } else {
      return i;
    }
  }
  return i;
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

/** colons[] values of a prefix declaration (`xmlns:p`) and of a default namespace declaration (`xmlns`). */
const DECLARATION = -2;
const DEFAULT_DECLARATION = -3;

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const BANG = 0x21;
const DQ = 0x22;
const SQ = 0x27;
const EQ = 0x3d;
const QUEST = 0x3f;

// XML 1.0 §2.2 Char, for the code units a fatal UTF-8 decoder can produce (no lone surrogates).
// One test per text run or attribute value finds whether it needs a closer look (a forbidden character,
// a reference, a line end, ']' of a possible "]]>", '<' in a value); most runs need none.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const FORBIDDEN_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;
// eslint-disable-next-line no-control-regex
const TEXT_SPECIAL = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF&\r\]]/;
// eslint-disable-next-line no-control-regex
const ATTR_SPECIAL = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF&\r\n\t<]/;
const CR_ANY = /\r\n?/g;
const HEX_REF = /^#x[0-9a-fA-F]+$/;
const DEC_REF = /^#[0-9]+$/;
const VERSION = /^1\.[0-9]+$/;
const ENCODING = /^[A-Za-z][A-Za-z0-9._-]*$/;

function isXmlChar(n: number): boolean {
  return n === 0x9 || n === 0xa || n === 0xd || (n >= 0x20 && n <= 0xd7ff) || (n >= 0xe000 && n <= 0xfffd) || (n >= 0x10000 && n <= 0x10ffff);
}

function fail(message: string, condition: StreamErrorCondition = "not-well-formed"): never {
  throw new XmlStreamError(condition, message);
}

function checkChars(raw: string): void {
  if (FORBIDDEN_CHAR.test(raw)) fail("disallowed character");
}

function entity(name: string): string {
  switch (name) {
    case "amp": return "&";
    case "lt": return "<";
    case "gt": return ">";
    case "quot": return '"';
    case "apos": return "'";
  }
  let n = Number.NaN;
  if (HEX_REF.test(name)) n = parseInt(name.slice(2), 16);
  else if (DEC_REF.test(name)) n = parseInt(name.slice(1), 10);
  if (!isXmlChar(n)) fail(name.startsWith("#") ? "malformed character reference" : "undefined entity");
  return String.fromCodePoint(n);
}

/** Entity and character references resolved; end-of-line handling (XML 1.0 §2.11) and, in an attribute
 * value, whitespace normalization (§3.3.3: literal tab, newline and carriage return become spaces). */
function decode(raw: string, attr: boolean): string {
  let out = "";
  let start = 0;
  const n = raw.length;
  for (let k = 0; k < n; k++) {
    const c = raw.charCodeAt(k);
    if (c === 0x26) {
      const semi = raw.indexOf(";", k + 1);
      if (semi === -1) fail("unterminated entity reference");
      out += raw.slice(start, k) + entity(raw.slice(k + 1, semi));
      k = semi;
      start = k + 1;
    } else if (c === 0x0d) {
      out += raw.slice(start, k) + (attr ? " " : "\n");
      if (raw.charCodeAt(k + 1) === 0x0a) k++;
      start = k + 1;
    } else if (attr && (c === 0x0a || c === 0x09)) {
      out += `${raw.slice(start, k)} `;
      start = k + 1;
    }
  }
  return out + raw.slice(start);
}

/** Namespaces in XML 1.0 §3 constraints on one declaration (prefix "" is the default namespace). */
function checkDeclaration(prefix: string, uri: string): void {
  if (prefix === "xml" && uri !== NS_XML) fail(`xml prefix must be bound to ${NS_XML}`, "bad-namespace-prefix");
  if (prefix === "xmlns") fail("the xmlns prefix may not be declared", "bad-namespace-prefix");
  if (uri === NS_XMLNS) {
    if (prefix === "") fail(`the default namespace may not be set to ${uri}`);
    fail(`may not assign a prefix to ${NS_XMLNS}`, "bad-namespace-prefix");
  }
  if (uri === NS_XML && prefix !== "xml") {
    if (prefix === "") fail(`the default namespace may not be set to ${uri}`);
    fail("may not assign the xml namespace to another prefix", "bad-namespace-prefix");
  }
}

/** The local part of a prefixed attribute name, given its colons[] entry. */
function localOf(name: string, colon: number): string {
  return name.slice(colon === DECLARATION ? 6 : colon + 1);
}

/** "p:local" → "p" ("" without a colon); a malformed qualified name is not well-formed. */
function prefixOf(qname: string): string {
  const colon = qname.indexOf(":");
  if (colon === -1) return "";
  if (colon === 0 || colon === qname.length - 1 || qname.indexOf(":", colon + 1) !== -1) fail(`malformed name: ${qname}`);
  return qname.slice(0, colon);
}

/** An element open in the frame being scanned. */
interface Open {
  el: Element;
  qname: string;
  /** Default namespace in scope for this element's children in the output. */
  ns: string;
  /** Element children so far. */
  children: number;
  /** Namespace bindings in scope before this element's own declarations. */
  mark: number;
}

export class Scanner {
  // Namespace bindings in scope, innermost last; the first rootMark are the stream header's.
  private prefixes: string[] = [];
  private uris: string[] = [];
  private rootMark = 0;
  private rootName = "";

  // The element frame being scanned.
  private s = "";
  private pos = 0;
  private stack: Open[] = [];
  private elements = 0;
  private done: Element | null = null;

  // The start tag being read: attributes as written, decoded, and their namespaces.
  private names: string[] = [];
  private values: string[] = [];
  private attrUris: string[] = [];
  /** Index of the colon in each name, -1 for none, DECLARATION for `xmlns` and `xmlns:*`. */
  private colons: number[] = [];
  private count = 0;
  /** Index of the first declaration that rebinds `stream` elsewhere, -1 for none. */
  private streamRebind = -1;
  // The start tag just read.
  private tagName = "";
  private tagUri = "";
  private tagSelfClosing = false;
  /** Its prefix and local name (prefix "" when it has none). */
  private tagPrefix = "";
  private tagLocal = "";

  constructor(
    private readonly limits: ScanLimits, // shared with the parser, so setLimits() applies at once
    private readonly contentNs: string,
  ) {}

  /** Stream restart: the header's bindings are gone. */
  resetStream(): void {
    this.prefixes.length = 0;
    this.uris.length = 0;
    this.rootMark = 0;
    this.rootName = "";
    this.stack = [];
    this.s = "";
    this.done = null;
  }

  /** `<?xml version=… encoding=… standalone=…?>` (XML 1.0 §2.8); returns the encoding, if declared. */
  declaration(s: string): string | undefined {
    checkChars(s);
    const n = s.length;
    let i = 5; // after "<?xml", which the framer matched
    let expect = 0; // 0: version; 1: encoding or standalone; 2: standalone; 3: nothing more
    let encoding: string | undefined;
    for (;;) {
      let c = s.charCodeAt(i);
      if (c === QUEST) break;
      if (!isSpace(c)) fail("XML declaration: whitespace required");
      while (isSpace(s.charCodeAt(i))) i++;
      c = s.charCodeAt(i);
      if (c === QUEST) break;
      let j = i;
      while (j < n && !isSpace(s.charCodeAt(j)) && s.charCodeAt(j) !== EQ && s.charCodeAt(j) !== QUEST) j++;
      const name = s.slice(i, j);
      const ok = name === "version" ? expect === 0 : name === "encoding" ? expect === 1 : name === "standalone" && (expect === 1 || expect === 2);
      if (!ok) fail("XML declaration: unexpected name");
      i = j;
      while (isSpace(s.charCodeAt(i))) i++;
      if (s.charCodeAt(i) !== EQ) fail("XML declaration: value required");
      i++;
      while (isSpace(s.charCodeAt(i))) i++;
      const q = s.charCodeAt(i);
      if (q !== DQ && q !== SQ) fail("XML declaration: value must be quoted");
      const end = s.indexOf(q === DQ ? '"' : "'", i + 1);
      if (end === -1) fail("XML declaration is incomplete");
      const value = s.slice(i + 1, end);
      if (value.includes("?")) fail("XML declaration is incomplete");
      if (name === "version") {
        if (!VERSION.test(value)) fail("XML declaration: bad version");
        expect = 1;
      } else if (name === "encoding") {
        if (!ENCODING.test(value)) fail("XML declaration: bad encoding name");
        encoding = value;
        expect = 2;
      } else {
        if (value !== "yes" && value !== "no") fail("XML declaration: bad standalone value");
        expect = 3;
      }
      i = end + 1;
    }
    if (s.charCodeAt(i + 1) !== GT || i + 2 !== n) fail("XML declaration: '?' is not allowed in it");
    if (expect === 0) fail("XML declaration must contain a version");
    return encoding;
  }

  /** The stream header (RFC 6120 §4.8): its bindings become the scope of every later frame. */
  header(s: string): ScannedHeader {
    this.s = s;
    this.stack = [];
    if (s.charCodeAt(0) !== LT) fail("malformed stream header");
    if (this.startTag(1) !== s.length) fail("malformed stream header");
    const { tagName: qname, tagUri: uri, tagSelfClosing: selfClosing } = this;
    // RFC 6120 §4.8.1-4.8.5 and §4.9.3.2/§4.9.3.10: stream namespace, content namespace, `stream` prefix.
    const local = this.tagLocal;
    if (local !== "stream" || uri !== NS_STREAMS) fail("stream header: invalid-namespace", "invalid-namespace");
    let ownDefault: string | undefined;
    for (let k = this.prefixes.length - 1; k >= 0 && ownDefault === undefined; k--) {
      if (this.prefixes[k] === "") ownDefault = this.uris[k];
    }
    if (ownDefault !== this.contentNs) fail("stream header: invalid-namespace", "invalid-namespace");
    if (this.tagPrefix !== "stream") fail("stream header: bad-namespace-prefix", "bad-namespace-prefix");
    const attrs: Record<string, string> = {};
    for (let k = 0; k < this.count; k++) {
      const name = this.names[k] as string;
      if (name !== "xmlns" && !name.startsWith("xmlns:")) attrs[name] = this.values[k] as string;
    }
    this.rootMark = this.prefixes.length;
    this.rootName = qname;
    this.s = "";
    return { attrs, closed: selfClosing };
  }

  /** The stream close: `</stream:stream>` as the header named it. */
  close(s: string): void {
    checkChars(s);
    const ne = nameEnd(s, 2);
    let i = ne;
    while (isSpace(s.charCodeAt(i))) i++;
    if (s.charCodeAt(i) !== GT || i + 1 !== s.length) fail("disallowed character in closing tag");
    if (s.slice(2, ne) !== this.rootName) fail("malformed stream close");
  }

  /** Starts scanning one top-level child of the stream; then run() until it returns true, then take(). */
  begin(s: string): void {
    this.s = s;
    this.pos = 0;
    this.stack = [];
    this.done = null;
  }

  /** Scans until the element is complete (true) or, at a markup boundary, past `limit` (false). */
  run(limit: number): boolean {
    const s = this.s;
    const n = s.length;
    let i = this.pos;
    while (i < n && this.done === null) {
      if (i >= limit) {
        this.pos = i;
        return false;
      }
      if (s.charCodeAt(i) !== LT) {
        i = this.text(i);
        continue;
      }
      const c = s.charCodeAt(i + 1);
      if (c === SLASH) i = this.endTag(i + 2);
      else if (c === BANG) i = this.cdata(i + 2);
      else i = this.element(i + 1);
    }
    if (this.done === null || i !== n) fail("malformed stanza");
    this.pos = n;
    return true;
  }

  /** Where the frame being scanned has got to (for time slicing). */
  get position(): number {
    return this.pos;
  }

  take(): Element | null {
    const el = this.done;
    this.done = null;
    this.s = "";
    this.stack = [];
    return el;
  }

  private text(i: number): number {
    const s = this.s;
    let j = s.indexOf("<", i);
    if (j === -1) j = s.length;
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) fail("text outside an element");
    const raw = s.slice(i, j);
    if (!TEXT_SPECIAL.test(raw)) {
      this.append(top, raw);
      return j;
    }
    checkChars(raw);
    if (raw.includes("]]>")) fail('"]]>" in character data');
    this.append(top, decode(raw, false));
    return j;
  }

  private cdata(i: number): number {
    const s = this.s;
    const top = this.stack[this.stack.length - 1];
    if (top === undefined || !s.startsWith("[CDATA[", i)) fail("markup declaration", "restricted-xml");
    const end = s.indexOf("]]>", i + 7);
    if (end === -1) fail("unterminated CDATA section");
    const raw = s.slice(i + 7, end);
    checkChars(raw);
    this.append(top, raw.includes("\r") ? raw.replace(CR_ANY, "\n") : raw);
    return end + 3;
  }

  private append(top: Open, t: string): void {
    if (t === "") return;
    const kids = top.el.children;
    const last = kids.length - 1;
    const prev = kids[last];
    if (typeof prev === "string") kids[last] = prev + t;
    else kids.push(t);
  }

  private endTag(i: number): number {
    const s = this.s;
    const ne = nameEnd(s, i);
    const name = s.slice(i, ne);
    i = ne;
    while (isSpace(s.charCodeAt(i))) i++;
    if (s.charCodeAt(i) !== GT) fail("disallowed character in closing tag");
    if (name === "") fail("empty closing tag");
    const top = this.stack[this.stack.length - 1];
    if (top === undefined || top.qname !== name) fail(`unmatched closing tag: ${name}`);
    this.pop();
    return i + 1;
  }

  private pop(): void {
    const top = this.stack.pop() as Open;
    if (this.prefixes.length !== top.mark) {
      this.prefixes.length = top.mark;
      this.uris.length = top.mark;
    }
    if (this.stack.length === 0) this.done = top.el;
  }

  /** A start tag inside the frame; returns the index after it. */
  private element(i: number): number {
    const mark = this.prefixes.length;
    const end = this.startTag(i);
    const { tagName: qname, tagUri: uri, tagSelfClosing: selfClosing } = this;
    const parent = this.stack[this.stack.length - 1];
    this.checkLimits(parent);
    const inherited = parent === undefined ? this.contentNs : parent.ns;
    const inStreams = uri === NS_STREAMS;
    const local = this.tagLocal;
    const el = new Element(inStreams ? `stream:${local}` : local);
    const attrs: Record<string, string> = {};
    if (!inStreams && uri !== inherited) attrs.xmlns = uri;
    for (let k = 0; k < this.count; k++) {
      const c = this.colons[k] as number;
      if (c <= DECLARATION) continue; // declarations are regenerated
      const name = this.names[k] as string;
      if (c !== -1) {
        const prefix = name.slice(0, c);
        const attrUri = this.attrUris[k] as string;
        if (prefix !== "xml" && this.outputBinding(prefix, attrs) !== attrUri) attrs[`xmlns:${prefix}`] = attrUri;
      }
      attrs[name] = this.values[k] as string;
    }
    el.attrs = attrs;
    if (parent !== undefined) {
      parent.el.children.push(el);
      el.parent = parent.el;
    }
    this.stack.push({ el, qname, ns: inStreams ? inherited : uri, children: 0, mark });
    if (selfClosing) this.pop();
    return end;
  }

  /** The URI the output binds `prefix` to at the element being built, if any. */
  private outputBinding(prefix: string, own: Record<string, string>): string | undefined {
    const decl = `xmlns:${prefix}`;
    if (own[decl] !== undefined) return own[decl];
    for (let k = this.stack.length - 1; k >= 0; k--) {
      const uri = this.stack[k]?.el.attrs[decl] as string | undefined;
      if (uri !== undefined) return uri;
    }
    return undefined;
  }

  /** SPEC E1 limits, in the order the tree builder always checked them. */
  private checkLimits(parent: Open | undefined): void {
    const { maxDepth, maxAttributes, maxChildren, maxElements } = this.limits;
    if (this.stack.length + 1 > maxDepth) fail(`element nesting deeper than ${maxDepth}`, "policy-violation");
    // In attribute order: the rebinding of `stream` if it comes before the attribute over the cap.
    if (this.streamRebind !== -1 && this.streamRebind < maxAttributes) {
      fail("prefix 'stream' bound to another namespace", "bad-namespace-prefix");
    }
    if (this.count > maxAttributes) fail(`more than ${maxAttributes} attributes`, "policy-violation");
    if (parent !== undefined && ++parent.children > maxChildren) fail(`more than ${maxChildren} child elements`, "policy-violation");
    if (parent === undefined) this.elements = 0;
    if (maxElements !== undefined && ++this.elements > maxElements) fail(`more than ${maxElements} elements in one stanza`, "policy-violation");
  }

  /**
   * Reads a start tag from its name at `i` (after '<'): the attributes into names/values/attrUris, the
   * tag's namespace declarations onto the binding stack. Namespace-resolved, not yet limit-checked.
   */
  private startTag(i: number): number {
    const s = this.s;
    if (!isNameStartAt(s, i)) fail("disallowed character in tag name");
    const ne = nameEnd(s, i);
    const qname = s.slice(i, ne);
    i = ne;
    this.count = 0;
    this.streamRebind = -1;
    let selfClosing = false;
    let c = s.charCodeAt(i);
    for (;;) {
      if (c === GT) {
        i++;
        break;
      }
      if (c === SLASH) {
        if (s.charCodeAt(i + 1) !== GT) fail("forward-slash in opening tag not followed by >");
        i += 2;
        selfClosing = true;
        break;
      }
      if (!isSpace(c)) fail(this.count === 0 ? "disallowed character in tag name" : "disallowed character in attribute name");
      do i++; while (isSpace(s.charCodeAt(i)));
      c = s.charCodeAt(i);
      if (c === GT || c === SLASH) continue;
      if (!isNameStartAt(s, i)) fail("disallowed character in attribute name");
      const an = nameEnd(s, i);
      const name = s.slice(i, an);
      i = an;
      while (isSpace(s.charCodeAt(i))) i++;
      if (s.charCodeAt(i) !== EQ) fail("attribute without value");
      i++;
      while (isSpace(s.charCodeAt(i))) i++;
      const q = s.charCodeAt(i);
      if (q !== DQ && q !== SQ) fail("unquoted attribute value");
      const end = s.indexOf(q === DQ ? '"' : "'", i + 1);
      if (end === -1) fail("unterminated attribute value");
      const raw = s.slice(i + 1, end);
      if (ATTR_SPECIAL.test(raw)) {
        checkChars(raw);
        if (raw.includes("<")) fail("'<' in an attribute value");
        this.attribute(name, decode(raw, true));
      } else {
        this.attribute(name, raw);
      }
      i = end + 1;
      c = s.charCodeAt(i);
      if (c !== GT && c !== SLASH && !isSpace(c)) {
        fail(isNameStartAt(s, i) ? "no whitespace between attributes" : "disallowed character in attribute name");
      }
    }
    // The tag's own names, now that all its declarations are known (Namespaces in XML 1.0 §5, §6).
    const prefix = prefixOf(qname);
    let uri: string;
    if (prefix === "") {
      uri = this.resolve("") ?? "";
    } else {
      if (prefix === "xmlns") fail('tags may not have "xmlns" as prefix', "bad-namespace-prefix");
      const bound = this.resolve(prefix);
      if (bound === undefined || bound === "") fail(`unbound namespace prefix: ${prefix}`, "bad-namespace-prefix");
      uri = bound;
    }
    for (let k = 0; k < this.count; k++) {
      const name = this.names[k] as string;
      const colon = this.colons[k] as number;
      let attrUri = colon <= DECLARATION ? NS_XMLNS : "";
      if (colon >= 0) {
        const bound = this.resolve(name.slice(0, colon));
        if (bound === undefined) fail(`unbound namespace prefix: ${name.slice(0, colon)}`, "bad-namespace-prefix");
        attrUri = bound;
      }
      // Attributes are few (the framer caps them): each is compared with those before it, by qualified
      // name and, for two prefixed ones (prefix declarations included), by expanded name.
      const prefixed = colon >= 0 || colon === DECLARATION;
      for (let m = 0; m < k; m++) {
        const other = this.names[m] as string;
        if (other === name) fail(`duplicate attribute: ${name}`);
        const oc = this.colons[m] as number;
        if (prefixed && (oc >= 0 || oc === DECLARATION) && this.attrUris[m] === attrUri && localOf(other, oc) === localOf(name, colon)) {
          fail(`duplicate attribute: ${name}`);
        }
      }
      this.attrUris[k] = attrUri;
    }
    this.tagName = qname;
    this.tagUri = uri;
    this.tagSelfClosing = selfClosing;
    this.tagPrefix = prefix;
    this.tagLocal = prefix === "" ? qname : qname.slice(prefix.length + 1);
    return i;
  }

  /** One attribute as read: its name checked, a namespace declaration put in scope. */
  private attribute(name: string, value: string): void {
    const colon = name.indexOf(":");
    let mark = colon;
    if (colon !== -1) {
      if (colon === 0 || colon === name.length - 1 || name.indexOf(":", colon + 1) !== -1) fail(`malformed name: ${name}`);
      if (colon === 5 && name.startsWith("xmlns")) {
        const uri = value.trim();
        if (uri === "") fail("invalid attempt to undefine prefix in XML 1.0", "bad-namespace-prefix");
        const local = name.slice(6);
        this.prefixes.push(local);
        this.uris.push(uri);
        checkDeclaration(local, uri);
        // The `stream` prefix must keep meaning the streams namespace in our output (RFC 6120 §4.9.3.2).
        if (local === "stream" && uri !== NS_STREAMS && this.streamRebind === -1) this.streamRebind = this.count;
        mark = DECLARATION;
      }
    } else if (name === "xmlns") {
      const uri = value.trim();
      this.prefixes.push("");
      this.uris.push(uri);
      checkDeclaration("", uri);
      mark = DEFAULT_DECLARATION;
    }
    this.names[this.count] = name;
    this.values[this.count] = value;
    this.colons[this.count] = mark;
    this.count++;
  }

  private resolve(prefix: string): string | undefined {
    const p = this.prefixes;
    for (let k = p.length - 1; k >= 0; k--) if (p[k] === prefix) return this.uris[k];
    if (prefix === "xml") return NS_XML;
    if (prefix === "xmlns") return NS_XMLNS;
    return undefined;
  }
}
