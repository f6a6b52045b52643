// fast-check generators of valid XMPP streams written by hand (not by our serializer), with the
// constructs the framer must get right: quoted '>' and '/', both quote styles, CDATA holding '<',
// self-closing tags, nesting, multibyte UTF-8 and a prefix declared only on the stream header.
import fc from "fast-check";

export const STREAM_HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " +
  "xmlns:x='urn:x' to='example.test' version='1.0'>";

const pieces = ["a", "Z", " ", "\n", "\t", "é", "€", "😀", "中", "&amp;", "&lt;", "&#x1F600;", ">", "/", "="];
const textArb = fc.array(fc.constantFrom(...pieces, "'", '"'), { maxLength: 8 }).map((a) => a.join(""));
const cdataArb = fc
  .array(fc.constantFrom("<", ">", "]", "&", "a", "😀", "<b/>", "]]"), { maxLength: 6 })
  .map((a) => a.join(""))
  .filter((s) => !s.includes("]]>") && !s.endsWith("]]"))
  .map((s) => `<![CDATA[${s}]]>`);

const attrArb = fc
  .tuple(fc.array(fc.constantFrom(...pieces), { maxLength: 6 }), fc.boolean())
  .map(([parts, dq]) => (dq ? `"${parts.join("")}'"` : `'${parts.join("")}"'`));

const attrsArb = fc
  .uniqueArray(fc.tuple(fc.constantFrom("to", "from", "id", "type", "x:y", "xml:lang"), attrArb), {
    maxLength: 3,
    selector: (t) => t[0],
  })
  .chain((list) => fc.array(fc.constantFrom(" ", "\n", "\t  "), { minLength: list.length, maxLength: list.length })
    .map((ws) => list.map(([k, v], i) => `${ws[i] ?? " "}${k}=${v}`).join("")));

const names = ["message", "body", "x", "iq", "query", "é"];

export const elementArb: fc.Arbitrary<string> = fc.letrec<{ el: string }>((tie) => ({
  el: fc
    .record({
      name: fc.constantFrom(...names),
      attrs: attrsArb,
      selfClose: fc.boolean(),
      kids: fc.array(fc.oneof({ depthSize: "small" }, textArb, cdataArb, tie("el")), { maxLength: 4 }),
    })
    .map(({ name, attrs, selfClose, kids }) =>
      selfClose && kids.length === 0 ? `<${name}${attrs}/>` : `<${name}${attrs}>${kids.join("")}</${name}>`,
    ),
})).el;

export interface GeneratedStream {
  bytes: Buffer;
  /** Frames the framer must produce, as "kind:text". */
  frames: string[];
}

export const streamArb: fc.Arbitrary<GeneratedStream> = fc
  .record({
    decl: fc.boolean(),
    items: fc.array(fc.oneof(elementArb, fc.constantFrom(" ", "\n", "\r\n\t")), { maxLength: 6 }),
    close: fc.boolean(),
  })
  .map(({ decl, items, close }) => {
    const frames: string[] = [];
    let text = "";
    if (decl) {
      text += "<?xml version='1.0' encoding='UTF-8'?>\n";
      frames.push("decl:<?xml version='1.0' encoding='UTF-8'?>");
    }
    text += STREAM_HEADER;
    frames.push(`header:${STREAM_HEADER}`);
    for (const item of items) {
      text += item;
      if (item.startsWith("<")) frames.push(`element:${item}`);
    }
    if (close) {
      text += "</stream:stream>";
      frames.push("close:</stream:stream>");
    }
    return { bytes: Buffer.from(text), frames };
  });

/** Cut points for splitting a buffer of length n: random, possibly inside multibyte characters. */
export function cutsArb(n: number): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 0, max: Math.max(0, n) }), { maxLength: 12 });
}
