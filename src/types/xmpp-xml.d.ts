// Minimal typings for the parts of @xmpp/xml (ltx Element) that mucmux uses.
declare module "@xmpp/xml" {
  export type Node = Element | string;
  export class Element {
    constructor(name: string, attrs?: Record<string, string | number | undefined | null>);
    name: string;
    parent: Element | null;
    children: Node[];
    attrs: Record<string, string>;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getAttr(name: string, xmlns?: string): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    c(name: string, attrs?: Record<string, string | number | undefined | null>): Element;
    cnode(child: Node): Node;
    append(...nodes: Node[]): Element;
    t(text: string): Element;
    up(): Element;
    root(): Element;
    remove(el: Element | string, xmlns?: string): Element;
    text(val?: string): string;
    attr(name: string, val?: string): string | undefined;
    toString(): string;
  }
  export function xml(
    name: string,
    attrs?: Record<string, string | number | undefined | null> | null,
    ...children: (Node | Node[] | null | undefined | false)[]
  ): Element;
  export default xml;
}
