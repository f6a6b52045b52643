// Serialize once, render per JID (src/chain/prepared.ts): every rendering must be exactly what serializing
// the stanza addressed to that JID gives, escaping included, and the shared element must be left as it was.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Element } from "@xmpp/xml";
import { Prepared } from "../../../src/chain/prepared.js";
import { serialize } from "../../../src/xml/serialize.js";
import { clone } from "../../../src/protocol/element.js";
import { stanza } from "../helpers.js";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const ROOM = "room@conference.example.test";

const JIDS = [
  "alice@example.test/phone",
  "alice@example.test/laptop",
  "bob@example.test/a&b",
  "bob@example.test/it's",
  "bob@example.test/<tag>",
  "bob@example.test/\"q\" & 'a' <b> \t",
  "carol@example.test/Zoë 📱",
  "example.test",
];

/** What a writer without the prepared form would send: the stanza addressed to `jid` (and its own item jid). */
function addressed(el: Element, jid: string, itemJid = false): string {
  const copy = clone(el);
  copy.attrs.to = jid;
  if (itemJid) {
    const item = copy.getChild("x", MUC_USER)?.getChild("item");
    if (item?.attrs.jid !== undefined) item.attrs.jid = jid;
  }
  return serialize(copy);
}

const message = () => stanza(
  `<message type='groupchat' from='${ROOM}/bob' to='alice@example.test/mucmux-0123abcd' id='m&amp;1'>` +
  `<body>a &lt;b&gt; &amp; 'c' "d"</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='s1'/></message>`,
);
const selfPresence = () => stanza(
  `<presence from='${ROOM}/alice' to='alice@example.test/mucmux-0123abcd' id='j1'>` +
  `<x xmlns='${MUC_USER}'><item affiliation='member' role='participant' jid='alice@example.test/mucmux-0123abcd'/>` +
  `<status code='110'/></x></presence>`,
);

describe("Prepared", () => {
  it("render(jid) is the stanza serialized with `to` set to that JID, for JIDs that need escaping too", () => {
    const el = message();
    const p = new Prepared(el);
    for (const jid of JIDS) assert.equal(p.render(jid), addressed(el, jid), jid);
    // In any order, and again: the same answers.
    for (const jid of [...JIDS].reverse()) assert.equal(p.render(jid), addressed(el, jid), jid);
  });

  it("escapes the JID the way the serializer does: no JID can add markup", () => {
    const p = new Prepared(message());
    const out = p.render("x@example.test/'/><evil/><a b='");
    assert.ok(!out.includes("<evil/>"), out);
    assert.ok(out.includes(" to='x@example.test/&apos;/&gt;&lt;evil/&gt;&lt;a b=&apos;'"), out);
  });

  it("renders a stanza that had no `to` with one", () => {
    const el = stanza(`<presence from='${ROOM}/carol'><show>away</show></presence>`);
    const p = new Prepared(el);
    assert.equal(p.render(JIDS[0] as string), addressed(el, JIDS[0] as string));
    assert.equal("to" in el.attrs, false, "the shared element still has no to");
  });

  it("with rewriteItemJid, the MUC <item jid> names the receiving session too", () => {
    const el = selfPresence();
    const p = new Prepared(el, true);
    assert.equal(p.item(), el.getChild("x", MUC_USER)?.getChild("item"));
    for (const jid of JIDS) {
      const out = p.render(jid);
      assert.equal(out, addressed(el, jid, true), jid);
    }
    assert.match(p.render("alice@example.test/phone"), /<item [^>]*jid='alice@example\.test\/phone'/);
  });

  it("without rewriteItemJid (or without an item jid) the item is left alone", () => {
    const el = selfPresence();
    const plain = new Prepared(el);
    assert.equal(plain.item(), undefined);
    assert.equal(plain.render("bob@example.test/x"), addressed(el, "bob@example.test/x", false));
    assert.ok(plain.render("bob@example.test/x").includes("jid='alice@example.test/mucmux-0123abcd'"));

    const noJid = stanza(`<presence from='${ROOM}/alice'><x xmlns='${MUC_USER}'><item affiliation='none' role='participant'/></x></presence>`);
    const p = new Prepared(noJid, true);
    assert.equal(p.item(), undefined);
    assert.equal(p.render("bob@example.test/x"), addressed(noJid, "bob@example.test/x"));
    assert.equal(noJid.getChild("x", MUC_USER)?.getChild("item")?.attrs.jid, undefined);
  });

  it("leaves the element exactly as it was (to, item jid, attribute order)", () => {
    for (const [el, itemJid] of [[message(), false], [selfPresence(), true]] as const) {
      const before = serialize(el);
      const attrsBefore = Object.keys(el.attrs);
      const itemBefore = { ...el.getChild("x", MUC_USER)?.getChild("item")?.attrs };
      const p = new Prepared(el, itemJid);
      for (const jid of JIDS) p.render(jid);
      assert.equal(serialize(el), before);
      assert.deepEqual(Object.keys(el.attrs), attrsBefore);
      assert.deepEqual({ ...el.getChild("x", MUC_USER)?.getChild("item")?.attrs }, itemBefore);
    }
  });

  it("serializes once: later renders come from the first serialization", () => {
    const el = message();
    const p = new Prepared(el);
    const first = p.render("alice@example.test/phone");
    el.getChild("body")?.text("changed");
    assert.equal(p.render("alice@example.test/phone"), first);
    assert.ok(!p.render("bob@example.test/x").includes("changed"));
  });
});

// Generated stanzas: any attribute order, `to` anywhere or absent, values and text with every character the
// serializer escapes (and multibyte ones), nested children, MUC items with and without a jid, and JIDs as odd as
// a client may bind. Splicing the JID into the one serialization must give exactly what serializing the stanza
// addressed to that JID gives.
const piece = fc.constantFrom("a", "Z", "0", " ", "&", "<", ">", "'", "\"", "\t", "\n", "\r", "]]>", "é", "€", "😀", "/", "@", "=");
const textArb = fc.array(piece, { maxLength: 6 }).map((a) => a.join(""));
const attrsArb = fc.uniqueArray(
  fc.tuple(fc.constantFrom("to", "from", "id", "type", "xmlns", "jid", "by", "xml:lang", "code", "stamp"), textArb),
  { maxLength: 5, selector: (t) => t[0] },
);
const childArb = fc.letrec<{ node: Element | string }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    textArb,
    fc.record({
      name: fc.constantFrom("body", "x", "item", "status", "delay", "stanza-id", "é"),
      attrs: attrsArb,
      kids: fc.array(tie("node"), { maxLength: 3 }),
    }).map(({ name, attrs, kids }) => build(name, attrs, kids)),
  ),
})).node;
/** An own-presence-like item (`<x xmlns=muc#user><item jid/>`), or one without a jid. */
const mucXArb = fc.tuple(fc.option(textArb, { nil: undefined }), attrsArb).map(([jid, attrs]) => {
  const item = build("item", attrs.filter(([k]) => k !== "jid"), []);
  if (jid !== undefined) item.attrs.jid = jid;
  return build("x", [["xmlns", MUC_USER]], [item]);
});
const stanzaArb = fc.record({
  name: fc.constantFrom("message", "presence", "iq"),
  attrs: attrsArb,
  kids: fc.array(childArb, { maxLength: 4 }),
  mucX: fc.option(fc.tuple(mucXArb, fc.nat()), { nil: undefined }),
}).map(({ name, attrs, kids, mucX }) => {
  const all: (Element | string)[] = [...kids];
  if (mucX) all.splice(mucX[1] % (all.length + 1), 0, mucX[0]);
  return build(name, attrs, all);
});
const jidArb = fc.tuple(textArb, textArb, textArb).map(([l, d, r]) => `${l}@example.test${d}/${r}`);

function build(name: string, attrs: [string, string][], kids: (Element | string)[]): Element {
  const el = new Element(name, Object.fromEntries(attrs));
  for (const k of kids) el.cnode(typeof k === "string" ? k : clone(k)); // a generated child may be shared
  return el;
}

describe("Prepared on generated stanzas", () => {
  it("render(jid) is serialize() of the stanza addressed to jid, and the element stays as it was", () => {
    fc.assert(
      fc.property(stanzaArb, fc.boolean(), fc.array(jidArb, { minLength: 1, maxLength: 4 }), (el, itemJid, jids) => {
        const before = serialize(el);
        const keys = Object.keys(el.attrs);
        const p = new Prepared(el, itemJid);
        for (const jid of jids) assert.equal(p.render(jid), addressed(el, jid, itemJid));
        assert.equal(serialize(el), before);
        assert.deepEqual(Object.keys(el.attrs), keys);
      }),
      { numRuns: 500 },
    );
  });

  it("a stanza that holds the marker character itself is serialized per copy, still exactly", () => {
    fc.assert(
      fc.property(stanzaArb, fc.boolean(), jidArb, fc.constantFrom("text", "attr"), (el, itemJid, jid, where) => {
        if (where === "text") el.cnode("a\u0001b");
        else el.attrs.id = "\u0001";
        const p = new Prepared(el, itemJid);
        assert.equal(p.render(jid), addressed(el, jid, itemJid));
        assert.equal(p.render(`${jid}2`), addressed(el, `${jid}2`, itemJid));
      }),
      { numRuns: 200 },
    );
  });
});
