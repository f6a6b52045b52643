// Hostile input through mucmux (SPEC E1–E3, A6): client input against the global pass rule
// (harness.ts), and valid input, however segmented, reaching the recording fake upstream identical.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { SaxesParser } from "saxes";
import { RawClient } from "../support/raw-client.js";
import { assertPunished, cut, offender, sendParts, startEnv, topLevel, upstreamSince, waitUntil, type Env } from "./harness.js";

const LIMIT = 4096; // limits.maxStanzaBytes for this file: small, so that limit tests stay fast
let env: Env;

before(async () => {
  env = await startEnv({
    limits: { maxStanzaBytes: LIMIT, maxUnauthedStanzaBytes: 4000, maxDepth: 8, maxAttributes: 10, maxChildren: 50 },
    upstream: { seeOtherHostAllow: ["xmpp2.example.org", "[2001:db8::1]"] },
  });
});
after(async () => { await env?.stop(); });

const B = (s: string) => Buffer.from(s, "utf8");

describe("SPEC E2: invalid UTF-8 → unsupported-encoding / not-well-formed, nothing forwarded", () => {
  const bad: Record<string, number[]> = {
    "overlong 2-byte": [0xc0, 0x80],
    "overlong 3-byte": [0xe0, 0x80, 0xaf],
    "overlong 4-byte": [0xf0, 0x80, 0x80, 0xaf],
    "surrogate U+D800": [0xed, 0xa0, 0x80],
    "above U+10FFFF": [0xf4, 0x90, 0x80, 0x80],
    "F5 lead byte": [0xf5, 0x80, 0x80, 0x80],
    "lone continuation": [0x80],
    "FF byte": [0xff],
    "truncated 3-byte": [0xe2, 0x82],
  };
  const places: Record<string, (b: Buffer) => Buffer> = {
    text: (b) => Buffer.concat([B("<message to='bob@localhost'><body>a"), b, B("b</body></message>")]),
    attribute: (b) => Buffer.concat([B("<message to='bob@localhost' id='x"), b, B("'><body>a</body></message>")]),
    name: (b) => Buffer.concat([B("<message to='bob@localhost'><bo"), b, B("dy/></message>")]),
  };
  for (const [what, bytes] of Object.entries(bad)) {
    test(`${what} in text, attribute value and element name`, async () => {
      for (const [where, make] of Object.entries(places)) {
        const o = await offender(env);
        const t0 = Date.now();
        o.client.send(make(Buffer.from(bytes)));
        await assertPunished(env, o, /unsupported-encoding|not-well-formed/, { t0 }).catch((e: Error) => {
          throw new Error(`${what} in ${where}: ${e.message}`);
        });
      }
    });
  }
});

describe("SPEC E2: valid multibyte stanzas split at every offset and dripped reach upstream identical", () => {
  const body = "é € 😀 中 ∑ &amp; &lt; ' \" x";
  const stanza = (id: string) => B(`<message to='bob@localhost' id='${id}' type='chat'><body>${body}</body></message>`);

  test("split in two at every byte offset", async () => {
    const o = await offender(env);
    const n = stanza("s000").length;
    for (let k = 1; k < n; k++) await sendParts(o.client, cut(stanza(`s${String(k).padStart(3, "0")}`), [k]), 1);
    await waitUntil(() => o.leg.received.length - o.markStanzas >= n - 1, 5000, "all split stanzas upstream");
    const got = o.leg.received.slice(o.markStanzas);
    for (let k = 1; k < n; k++) {
      const el = got[k - 1];
      assert.ok(el);
      assert.equal(el.attrs.id, `s${String(k).padStart(3, "0")}`);
      assert.equal(el.attrs.from, o.jid);
      assert.equal(el.getChildText("body"), "é € 😀 中 ∑ & < ' \" x");
    }
    // Byte-identical on the wire too: every relayed copy is the same canonical text.
    const wire = upstreamSince(o).replace(/ id='s\d+'/g, "");
    const one = `<message to='bob@localhost' type='chat' from='${o.jid}'><body>é € 😀 中 ∑ &amp; &lt; ' " x</body></message>`;
    assert.equal(wire, one.repeat(n - 1));
    o.client.close();
    await env.canary.check();
  });

  test("1-byte drip", async () => {
    const o = await offender(env);
    const bytes = stanza("drip");
    await sendParts(o.client, cut(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)));
    await waitUntil(() => o.leg.received.length > o.markStanzas, 5000, "dripped stanza upstream");
    assert.equal(o.leg.received[o.markStanzas]?.getChildText("body"), "é € 😀 中 ∑ & < ' \" x");
    o.client.close();
    await env.canary.check();
  });
});

describe("SPEC E2: restricted XML and well-formedness", () => {
  const cases: [string, string, string][] = [
    ["comment", "<!-- hi -->", "restricted-xml"],
    ["comment inside a stanza", "<message><!-- x --><body>a</body></message>", "restricted-xml"],
    ["processing instruction", "<?foo bar?>", "restricted-xml"],
    ["mid-stream XML declaration", "<?xml version='1.0'?>", "restricted-xml"],
    ["DOCTYPE", "<!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"],
    ["undefined entity", "<message to='bob@localhost'><body>&foo;</body></message>", "not-well-formed"],
    ["&#0;", "<message to='bob@localhost'><body>&#0;</body></message>", "not-well-formed"],
    ["&#xD800;", "<message to='bob@localhost'><body>&#xD800;</body></message>", "not-well-formed"],
    ["entity in attribute", "<message to='bob@localhost' id='&foo;'/>", "not-well-formed"],
    ["mismatched tags", "<message to='bob@localhost'><body>a</bodx></message>", "not-well-formed"],
    ["text at stream level", "hello<message/>", "bad-format|not-well-formed"],
    ["unbound prefix", "<message to='bob@localhost'><p:x/></message>", "bad-namespace-prefix|not-well-formed"],
    ["duplicate attribute", "<message to='bob@localhost' to='eve@localhost'/>", "not-well-formed"],
    ["CDATA at stream level", "<![CDATA[x]]>", "restricted-xml"],
  ];
  for (const [what, input, condition] of cases) {
    test(what, async () => {
      const o = await offender(env);
      const t0 = Date.now();
      o.client.send(input);
      await assertPunished(env, o, new RegExp(condition), { t0 });
    });
  }

  test("wrong stream namespaces → invalid-namespace", async () => {
    for (const header of [
      "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
      "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>",
    ]) {
      const { RawClient } = await import("../support/raw-client.js");
      const c = await RawClient.connect(env.mux.directPort);
      c.send(header);
      await c.waitClosed(1000);
      assert.match(c.text, /<invalid-namespace xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    }
    await env.canary.check();
  });
});

describe("SPEC E3, A6: namespaces and forged from", () => {
  test("prefixed c:message with a forged from is a message with the bound JID", async () => {
    const o = await offender(env);
    o.client.send("<c:message xmlns:c='jabber:client' from='victim@localhost/x' to='bob@localhost' id='pfx'><c:body>hi</c:body></c:message>");
    await waitUntil(() => o.leg.received.length > o.markStanzas, 3000, "prefixed message upstream");
    const el = o.leg.received[o.markStanzas];
    assert.equal(el?.name, "message");
    assert.equal(el?.attrs.from, o.jid);
    assert.equal(el?.getChildText("body"), "hi");
    assert.doesNotMatch(upstreamSince(o), /victim/);
    o.client.close();
  });

  test("forged from variants: upstream sees only the bound JID", async () => {
    const o = await offender(env, "spoofer");
    const forged = ["alice@localhost/phone", "alice@localhost", "alice@other.example/x", "spoofer@localhost/other", "spoofer@localhost", "localhost", "@@bad@@/x", "", "victim@localhost/x\u00e9"];
    let i = 0;
    for (const f of forged) {
      const attr = `from='${f}'`;
      o.client.send(`<message to='bob@localhost' id='f${i}' ${attr}><body>x</body></message>`);
      o.client.send(`<presence id='p${i}' ${attr}/>`);
      o.client.send(`<iq type='get' id='q${i}' to='localhost' ${attr}><query xmlns='jabber:iq:version'/></iq>`);
      i++;
    }
    await waitUntil(() => o.leg.received.length - o.markStanzas >= forged.length * 3, 3000, "forged stanzas upstream");
    for (const el of o.leg.received.slice(o.markStanzas)) assert.equal(el.attrs.from, o.jid, el.toString());
    const wire = upstreamSince(o);
    for (const m of wire.matchAll(/from='([^']*)'/g)) assert.equal(m[1], o.jid);
    for (const f of ["alice", "other.example", "spoofer@localhost/other", "@@bad"]) assert.ok(!wire.includes(f), f);
    o.client.close();
    await env.canary.check();
  });
});

describe("SPEC E3: prefixes declared on the stream header", () => {
  const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' " +
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:foo='urn:x' xmlns:c='jabber:client'>";

  /** Like offender(), but every stream header (before and after SASL) declares the prefixes of HEADER. */
  async function prefixedOffender(user: string) {
    const client = await RawClient.connect(env.mux.directPort);
    client.send(HEADER);
    await client.waitFor(/<mechanism>PLAIN<\/mechanism>/);
    client.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}pw`).toString("base64")}</auth>`);
    await client.waitFor(/<success/);
    client.text = "";
    client.send(HEADER);
    await client.waitFor(/<\/stream:features>/);
    client.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>pfx</resource></bind></iq>");
    await client.waitFor(/<jid>/);
    const leg = env.upstream.find(user, "pfx");
    assert.ok(leg);
    await new Promise((r) => setTimeout(r, 20));
    client.text = "";
    const raw = Buffer.concat(leg.bytes);
    const upstreamHeader = [...raw.toString("utf8").matchAll(/<stream:stream[^>]*>/g)].pop()?.[0] ?? "";
    return { client, leg, jid: "", mark: raw.length, markStanzas: leg.received.length, upstreamHeader };
  }

  /**
   * Top-level elements of `fragment` in the namespace context of `header`, by a fresh namespace-aware
   * parser (saxes), as expanded names: {uri}local, attributes {uri}local=value (declarations and `from`
   * left out), text. Unbound prefixes show up in `errors`.
   */
  function expanded(header: string, fragment: string): { trees: string[]; errors: string[] } {
    const p = new SaxesParser({ xmlns: true });
    const trees: string[] = [];
    const errors: string[] = [];
    let depth = 0;
    let cur: string[] = [];
    p.on("error", (e) => void errors.push(e.message));
    p.on("opentag", (t) => {
      depth++;
      if (depth < 2) return;
      const attrs = Object.values(t.attributes)
        .filter((a) => a.prefix !== "xmlns" && a.name !== "xmlns" && a.name !== "from")
        .map((a) => `{${a.uri}}${a.local}=${a.value}`).sort();
      cur.push(`${"  ".repeat(depth - 2)}{${t.uri ?? ""}}${t.local ?? ""} ${attrs.join(" ")}`);
    });
    p.on("text", (t) => { if (depth >= 2) cur.push(`${"  ".repeat(depth - 1)}"${t}"`); });
    p.on("closetag", () => {
      depth--;
      if (depth === 1) {
        trees.push(cur.join("\n"));
        cur = [];
      }
    });
    p.write(header + fragment);
    return { trees, errors };
  }

  test("stanzas using prefixes of the client's stream header reach upstream declared, with the same expanded names", async () => {
    const o = await prefixedOffender("prefixer");
    const input = [
      "<message to='bob@localhost' id='h1'><foo:bar/><body>x</body></message>",
      "<message to='bob@localhost' id='h2' foo:a='v' xml:lang='de'><body foo:b='2'>y</body><foo:bar foo:c='3'><foo:baz>z</foo:baz><qux xmlns='urn:y'/></foo:bar></message>",
      "<message to='bob@localhost' id='h3' xmlns:foo='urn:other'><foo:bar foo:d='4'/></message>",
      "<c:message to='bob@localhost' id='h4' from='victim@localhost/x'><c:body>w</c:body><foo:bar/></c:message>",
      "<iq type='get' id='h5' to='localhost'><foo:query/></iq>",
    ].join("");
    o.client.send(input);
    await waitUntil(() => o.leg.received.length - o.markStanzas >= 5, 3000, "the prefixed stanzas upstream");
    const wire = Buffer.concat(o.leg.bytes).subarray(o.mark).toString("utf8");
    const got = expanded(o.upstreamHeader, wire);
    const want = expanded(HEADER, input);
    assert.equal(want.trees.length, 5);
    assert.deepEqual(want.errors, []);
    assert.deepEqual(got.errors, [], `the upstream got an undeclared prefix: ${wire}`);
    assert.deepEqual(got.trees, want.trees);
    assert.ok(got.trees.some((t) => t.includes("{urn:other}bar {urn:other}d=4")), "a prefix rebound in the stanza wins");
    // Prefixes the upstream's own header does not declare are never used without a declaration.
    for (const m of wire.matchAll(/<\/?([A-Za-z_][\w.-]*):/g)) assert.ok(m[1] === "stream" || new RegExp(`xmlns:${m[1]}=`).test(wire), `prefix ${m[1]} undeclared`);
    assert.doesNotMatch(wire, /victim/);
    o.client.close();
    await env.canary.check();
  });

  test("a header prefix naming a stanza in a foreign namespace (<foo:message/>) is rejected, nothing forwarded", async () => {
    const o = await prefixedOffender("prefixer2");
    const t0 = Date.now();
    o.client.send("<foo:message to='bob@localhost' id='h6'><body>x</body></foo:message>");
    await assertPunished(env, o, "unsupported-stanza-type", { t0 });
  });
});

describe("SPEC E1: size, depth and count limits", () => {
  const padded = (total: number) => {
    const head = "<message to='bob@localhost' id='lim'><body>";
    const tail = "</body></message>";
    return head + "x".repeat(total - head.length - tail.length) + tail;
  };

  test("a stanza of exactly maxStanzaBytes passes; one byte more → policy-violation + stanza-too-big", async () => {
    const o = await offender(env);
    const exact = padded(LIMIT);
    assert.equal(Buffer.byteLength(exact), LIMIT);
    o.client.send(exact);
    await waitUntil(() => o.leg.received.length > o.markStanzas, 3000, "exact-limit stanza upstream");
    assert.equal(o.leg.received[o.markStanzas]?.getChildText("body")?.length, LIMIT - "<message to='bob@localhost' id='lim'><body></body></message>".length);
    const o2 = await offender(env);
    const t0 = Date.now();
    o2.client.send(padded(LIMIT + 1));
    await assertPunished(env, o2, "policy-violation", { app: "stanza-too-big", t0 });
    o.client.close();
  });

  test("depth, attribute and child limits → policy-violation", async () => {
    const inputs = [
      `<message to='bob@localhost'>${"<a>".repeat(8)}${"</a>".repeat(8)}</message>`,
      `<message to='bob@localhost' ${Array.from({ length: 11 }, (_, i) => `a${i}='1'`).join(" ")}/>`,
      `<message to='bob@localhost'><x>${"<a/>".repeat(51)}</x></message>`,
    ];
    for (const input of inputs) {
      const o = await offender(env);
      const t0 = Date.now();
      o.client.send(input);
      await assertPunished(env, o, "policy-violation", { t0 });
    }
  });

  test("XEP-0478 limits are advertised before and after authentication", async () => {
    const { RawClient } = await import("../support/raw-client.js");
    const c = await RawClient.connect(env.mux.directPort);
    c.open();
    await c.waitFor(/<\/stream:features>/);
    assert.match(c.text, /<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>4000<\/max-bytes><\/limits>/);
    c.text = "";
    c.close();
    const o = await offender(env);
    void o;
    const c2 = await RawClient.connect(env.mux.directPort);
    c2.open();
    await c2.waitFor(/<mechanism>PLAIN/);
    c2.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0limits\0pw").toString("base64")}</auth>`);
    await c2.waitFor(/<success/);
    c2.text = "";
    c2.open();
    await c2.waitFor(/<\/stream:features>/);
    assert.match(c2.text, new RegExp(`<max-bytes>${LIMIT}</max-bytes>`));
    c2.close();
    o.client.close();
  });
});

describe("SPEC E3: injection toward clients", () => {
  test("stream-level elements inside upstream stanzas never reach the client at top level", async () => {
    const o = await offender(env);
    const evil = [
      `<message from='bob@localhost/x' id='i1'><body>a</body><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></message>`,
      `<message from='bob@localhost/x' id='i2'><body>&lt;/message&gt;&lt;/stream:stream&gt;&lt;stream:features/&gt;</body></message>`,
      `<message from='bob@localhost/x' id='i3'><body><![CDATA[</body></message></stream:stream><iq type='set'/>]]></body></message>`,
      `<message from='bob@localhost/x' id='i4'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features></message>`,
      `<message from='bob@localhost/x' id='i6' x='&quot;&apos;&gt;&lt;/message&gt;'/>`,
    ];
    o.leg.send(evil.join(""));
    await waitUntil(() => /id=.i6./.test(o.client.text), 3000, "injected messages at the client").catch((e: Error) => { throw new Error(`${e.message}: ${o.client.text}`); });
    await new Promise((r) => setTimeout(r, 50));
    const header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    const { elements, error } = topLevel(header + o.client.text);
    assert.equal(error, null);
    assert.deepEqual(elements.map((e) => `${e.name}#${e.attrs.id ?? ""}`), ["message#i1", "message#i2", "message#i3", "message#i4", "message#i6"]);
    assert.equal(o.client.closed, false);
    assert.equal(elements[1]?.getChildText("body"), "</message></stream:stream><stream:features/>");
    assert.equal(elements[2]?.getChildText("body"), "</body></message></stream:stream><iq type='set'/>");
    o.client.close();
    await env.canary.check();
  });

  test("an upstream stanza rebinding the stream prefix ends the session with reset; nothing of it is relayed", async () => {
    const o = await offender(env);
    o.leg.send(`<message from='bob@localhost/x' id='i5'><body xmlns:stream='urn:evil'>x</body></message>`);
    await o.client.waitClosed(2000);
    assert.doesNotMatch(o.client.text, /i5|urn:evil/);
    assert.match(o.client.text, /<stream:error><reset /);
    await env.canary.check();
  });

  const seeOtherHost = (value: string) =>
    `<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>${value}</see-other-host></stream:error></stream:stream>`;

  test("an upstream see-other-host naming an allow-listed host is relayed with its target (upstream.seeOtherHostAllow)", async () => {
    for (const target of ["xmpp2.example.org:5223", "XMPP2.Example.ORG", "[2001:DB8::1]:5222"]) {
      const o = await offender(env);
      const t0 = Date.now();
      o.leg.send(seeOtherHost(target));
      await o.client.waitClosed(1500);
      assert.ok(Date.now() - t0 <= 1000, `${target}: closed after ${Date.now() - t0} ms`);
      assert.equal(o.client.text, `<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>${target}</see-other-host></stream:error></stream:stream>`);
    }
    await env.canary.check();
  });

  test("upstream.seeOtherHostAllow takes host names and IP addresses only, lower-cased; a port or junk is refused by name", async () => {
    const { configSchema } = await import("../../src/config/schema.js");
    const parsed = configSchema.parse({ domains: ["localhost"], upstream: { seeOtherHostAllow: ["XMPP2.Example.org", "[2001:DB8::1]", "192.0.2.7"] } });
    assert.deepEqual(parsed.upstream.seeOtherHostAllow, ["xmpp2.example.org", "2001:db8::1", "192.0.2.7"]);
    assert.equal(configSchema.parse({ domains: ["localhost"] }).upstream.seeOtherHostAllow, undefined, "unset by default: never relayed");
    for (const bad of [["xmpp2.example.org:5222"], [""], ["a b"], ["user@host"]]) {
      const r = configSchema.safeParse({ domains: ["localhost"], upstream: { seeOtherHostAllow: bad } });
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.match(r.error?.issues[0]?.message ?? "", /must be a host name or IP address without a port/);
      assert.deepEqual(r.error?.issues[0]?.path, ["upstream", "seeOtherHostAllow", 0]);
    }
  });

  test("a see-other-host naming another host, or a malformed or empty one, ends the session with reset", async () => {
    const refused = [
      "internal.example:5222", "xmpp2.example.org.internal.example", "evil-xmpp2.example.org", "10.0.0.7:5222", "[2001:db8::2]:5222",
      "", " ", "xmpp2.example.org:0", "xmpp2.example.org:65536", "xmpp2.example.org:5222:1", "2001:db8::1",
      "user@xmpp2.example.org", "xmpp2.example.org/x", "xmpp2.example.org:5222 x", "xmpp2.example.org:",
    ];
    for (const target of refused) {
      const o = await offender(env);
      o.leg.send(seeOtherHost(target));
      await o.client.waitClosed(1500);
      assert.match(o.client.text, /^<stream:error><reset xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/, `'${target}': ${o.client.text}`);
      assert.doesNotMatch(o.client.text, /see-other-host|xmpp2|internal|2001|10\.0\.0\.7/, `'${target}' leaked`);
    }
    const o = await offender(env);
    o.leg.send("<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
    await o.client.waitClosed(1500);
    assert.match(o.client.text, /^<stream:error><reset /);
    await env.canary.check();
  });

  test("an upstream see-other-host is not relayed (no redirect to an upstream-internal host)", async () => {
    const o = await offender(env);
    o.leg.send("<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>internal.example:5222</see-other-host></stream:error></stream:stream>");
    await o.client.waitClosed(2000);
    assert.doesNotMatch(o.client.text, /see-other-host|internal\.example/);
    assert.match(o.client.text, /<stream:error><reset /);
    await env.canary.check();
  });
});
