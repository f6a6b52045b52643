// Bounded tree builder: turns saxes events for one top-level child of the stream into a canonical
// @xmpp/xml Element. Canonical form (why: what mucmux forwards must be exactly what it understood,
// SPEC E3; the 2022 stanza-smuggling bugs were parser differentials):
// - element names are local names; elements in the streams namespace are named `stream:<local>`
//   and rely on the `stream` prefix every stream header declares (RFC 6120 §4.8.5);
// - every input namespace declaration is dropped and regenerated: `xmlns` appears exactly where the
//   namespace differs from the default namespace in scope in the output; a prefixed attribute keeps
//   its prefix and gets an `xmlns:p` declaration unless the nearest output declaration of `p`
//   already binds the same URI (so prefixes declared only on the stream header survive);
// - text is plain strings, adjacent runs merged, CDATA turned into text.
import { Element } from "@xmpp/xml";
import type { SaxesTagNS } from "saxes";
import { XmlStreamError } from "../../../src/xml/errors.js";

import { NS_STREAMS } from "../../../src/xml/ns.js";

export interface TreeLimits {
  maxDepth: number;
  maxAttributes: number;
  maxChildren: number;
  /** Elements in one top-level element, itself included; unset: no cap (SPEC E1: bounds the tree that
   * one stanza builds, and so the time its serialization and collection take). */
  maxElements?: number;
}

interface Open {
  el: Element;
  /** Default namespace in scope for this element's children in the output. */
  ns: string;
  /** Element children so far (text runs are bounded by them and by the byte cap). */
  children: number;
}

export class TreeBuilder {
  private stack: Open[] = [];
  private elements = 0;
  private done: Element | null = null;
  private completedCount = 0;

  constructor(
    private readonly limits: TreeLimits, // shared with the parser, so setLimits() applies at once
    private readonly contentNs: string,
  ) {}

  get depth(): number {
    return this.stack.length;
  }

  /** Top-level elements completed since the last take(). */
  get completed(): number {
    return this.completedCount;
  }

  take(): Element | null {
    const el = this.done;
    this.done = null;
    this.completedCount = 0;
    return el;
  }

  /** Returns the limit or prefix error, if any; the parser then stops saxes at once. */
  open(tag: SaxesTagNS): XmlStreamError | null {
    const parent = this.stack[this.stack.length - 1];
    const err = this.checkLimits(tag, parent);
    if (err !== null) return err;
    const inherited = parent === undefined ? this.contentNs : parent.ns;
    const inStreams = tag.uri === NS_STREAMS;
    const attrs: Record<string, string> = {};
    if (!inStreams && tag.uri !== inherited) attrs.xmlns = tag.uri;
    const el = new Element(inStreams ? `stream:${tag.local}` : tag.local);
    el.attrs = attrs;
    this.copyAttributes(tag, attrs);
    if (parent !== undefined) {
      parent.el.children.push(el);
      el.parent = parent.el;
    }
    this.stack.push({ el, ns: inStreams ? inherited : tag.uri, children: 0 });
    return null;
  }

  close(): void {
    const top = this.stack.pop();
    if (top !== undefined && this.stack.length === 0) {
      this.done = top.el;
      this.completedCount++;
    }
  }

  text(s: string): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined || s === "") return;
    const kids = top.el.children;
    const last = kids.length - 1;
    const prev = kids[last];
    if (typeof prev === "string") kids[last] = prev + s;
    else kids.push(s);
  }

  private checkLimits(tag: SaxesTagNS, parent: Open | undefined): XmlStreamError | null {
    if (this.stack.length + 1 > this.limits.maxDepth) {
      return new XmlStreamError("policy-violation", `element nesting deeper than ${this.limits.maxDepth}`);
    }
    let n = 0;
    for (const key in tag.attributes) {
      if (++n > this.limits.maxAttributes) {
        return new XmlStreamError("policy-violation", `more than ${this.limits.maxAttributes} attributes`);
      }
      // The `stream` prefix must keep meaning the streams namespace in our output (RFC 6120 §4.9.3.2).
      const a = tag.attributes[key];
      if (a !== undefined && a.prefix === "xmlns" && a.local === "stream" && a.value.trim() !== NS_STREAMS) {
        return new XmlStreamError("bad-namespace-prefix", "prefix 'stream' bound to another namespace");
      }
    }
    if (parent !== undefined && ++parent.children > this.limits.maxChildren) {
      return new XmlStreamError("policy-violation", `more than ${this.limits.maxChildren} child elements`);
    }
    if (parent === undefined) this.elements = 0;
    const max = this.limits.maxElements;
    if (max !== undefined && ++this.elements > max) {
      return new XmlStreamError("policy-violation", `more than ${max} elements in one stanza`);
    }
    return null;
  }

  private copyAttributes(tag: SaxesTagNS, attrs: Record<string, string>): void {
    for (const key in tag.attributes) {
      const a = tag.attributes[key];
      if (a === undefined || a.name === "xmlns" || a.prefix === "xmlns") continue;
      if (a.prefix !== "" && a.prefix !== "xml" && this.binding(a.prefix, attrs) !== a.uri) {
        attrs[`xmlns:${a.prefix}`] = a.uri;
      }
      attrs[a.name] = a.value;
    }
  }

  /** The URI the output binds `prefix` to at the element being built, if any. */
  private binding(prefix: string, own: Record<string, string>): string | undefined {
    const decl = `xmlns:${prefix}`;
    if (own[decl] !== undefined) return own[decl];
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const uri = this.stack[i]?.el.attrs[decl];
      if (uri !== undefined) return uri;
    }
    return undefined;
  }
}
