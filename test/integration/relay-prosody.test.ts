// The relay against a real Prosody 0.12: @xmpp/client sessions through mucmux over STARTTLS and direct
// TLS (SPEC A1–A6), bad input closing only the offending stream (SPEC E1–E3), metrics and health.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/xml";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { run } from "../support/proc.js";
import { testCertificate } from "../support/certs.js";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SLIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "clients", "slix_chat.py");

let prosody: ProsodyServer;
let mux: TestMucmux;
const clients: TestClient[] = [];

before(async () => {
  prosody = await startProsody({ muc: true });
  mux = await startMucmux({ upstreamPort: prosody.port });
});

after(async () => {
  await Promise.allSettled(clients.map((c) => c.stop()));
  await mux?.stop();
  await prosody?.stop();
});

async function login(user: string, service: "starttls" | "direct", resource?: string): Promise<TestClient> {
  const url = service === "starttls" ? `xmpp://127.0.0.1:${mux.starttlsPort}` : `xmpps://127.0.0.1:${mux.directPort}`;
  const c = await connectClient({ service: url, domain: "localhost", username: user, password: `${user}pw`, ...(resource ? { resource } : {}) });
  clients.push(c);
  return c;
}

const isChat = (from: string, body: string) => (el: { name: string; attrs: Record<string, string>; getChildText(n: string): string | null }) =>
  el.name === "message" && el.attrs.from === from && el.getChildText("body") === body;

for (const mode of ["starttls", "direct"] as const) {
  test(`SPEC A1–A4: two users log in over ${mode}, get the roster, exchange presence, chat and IQs`, async () => {
    const alice = await login("alice", mode, `a-${mode}`);
    const bob = await login("bob", mode, `b-${mode}`);
    assert.equal(alice.jid, `alice@localhost/a-${mode}`, "SPEC A4: the client gets the JID upstream bound");

    const roster = await alice.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    assert.equal(roster.attrs.type, "result");
    assert.ok(roster.getChild("query", "jabber:iq:roster"));

    await alice.send(xml("presence", { to: bob.jid }, xml("status", {}, "hello bob")));
    const p = await bob.waitFor((el) => el.name === "presence" && el.attrs.from === alice.jid);
    assert.equal(p.getChildText("status"), "hello bob");

    await alice.send(xml("message", { to: bob.jid, type: "chat", id: "m1" }, xml("body", {}, "hi bob <&>")));
    await bob.waitFor(isChat(alice.jid, "hi bob <&>"));
    await bob.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hi alice ☃ 𝄞")));
    await alice.waitFor(isChat(bob.jid, "hi alice ☃ 𝄞"));

    // An IQ round trip between the two sessions (XEP-0199 ping answered by bob's client).
    const pong = await alice.iq(xml("iq", { type: "get", to: bob.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    assert.equal(pong.attrs.from, bob.jid);

    await alice.stop();
    await bob.stop();
  });
}

test("SPEC A6: a client cannot send as someone else; from is stamped with its own full JID", async () => {
  const bob = await login("bob", "direct", "victim");
  const raw = await RawClient.connect(mux.directPort);
  const jid = await raw.login("alice", "alicepw", "spoofer");
  raw.send(`<message to='${bob.jid}' from='carol@localhost/x' type='chat'><body>spoof</body></message>`);
  raw.send(`<c:message xmlns:c='jabber:client' to='${bob.jid}' from='carol@localhost/y' type='chat'><c:body>prefixed</c:body></c:message>`);
  const m = await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "spoof");
  assert.equal(m.attrs.from, jid);
  const m2 = await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "prefixed");
  assert.equal(m2.attrs.from, jid);
  raw.close();
  await bob.stop();
});

test("SPEC A2: wrong password gives not-authorized and the client may retry", async () => {
  const raw = await RawClient.connect(mux.directPort);
  raw.open();
  await raw.waitFor(/<mechanism>PLAIN<\/mechanism>/);
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0wrong").toString("base64")}</auth>`);
  await raw.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized\/>/);
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0alicepw").toString("base64")}</auth>`);
  await raw.waitFor(/<success/);
  raw.close();

  // A client we did not write sees the failure too (@xmpp/client 0.14 throws it from an event handler
  // as well as rejecting, which makes it unusable for this negative case).
  await assert.rejects(
    run("/usr/bin/python3", [SLIX, "--jid", "alice@localhost/wrong", "--password", "nope", "--port", String(mux.starttlsPort),
      "--to", "bob@localhost", "--body", "x", "--ca", testCertificate().certFile], { timeoutMs: 30_000 }),
    /failed_auth/,
  );
});

test("SPEC A1/A10: the mechanisms mirror Prosody's (SCRAM-SHA-1) plus PLAIN, no -PLUS by default; others get invalid-mechanism", async () => {
  const raw = await RawClient.connect(mux.directPort);
  raw.open();
  const m = await raw.waitFor(/<mechanisms[^>]*>(.*?)<\/mechanisms>/);
  assert.equal(m[1], "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>");
  assert.doesNotMatch(raw.text, /sasl-channel-binding/);
  raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj11c2VyLHI9YWJj</auth>");
  await raw.waitFor(/<invalid-mechanism\/>/);
  raw.close();
});

test("SPEC A1: the STARTTLS listener offers only STARTTLS before TLS, and refuses auth in plaintext", async () => {
  const net = await import("node:net");
  const s = net.connect({ host: "127.0.0.1", port: mux.starttlsPort });
  let text = "";
  s.on("data", (d: Buffer) => { text += d.toString(); });
  const closed = new Promise((r) => s.on("close", r));
  s.write("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
  for (let i = 0; i < 200 && !text.includes("</stream:features>"); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(text, /<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls>/);
  assert.doesNotMatch(text, /mechanism/);
  s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0alicepw").toString("base64")}</auth>`);
  await closed;
  assert.match(text, /<policy-violation/);
});

const BAD_INPUTS: [string, string | Buffer, RegExp][] = [
  ["SPEC E1: oversize stanza", `<message to='bob@localhost' type='chat'><body>${"x".repeat(262_200)}</body></message>`, /<policy-violation[^>]*\/>.*<stanza-too-big xmlns='urn:xmpp:errors'\/>/s],
  ["SPEC E2: XML declaration mid-stream", "<?xml version='1.0'?><message/>", /<restricted-xml/],
  ["SPEC E2: DOCTYPE", "<!DOCTYPE foo [<!ENTITY x 'y'>]><message/>", /<restricted-xml/],
  ["SPEC E2: comment", "<message><!-- hi --></message>", /<restricted-xml/],
  ["SPEC E2: undefined entity", "<message><body>&foo;</body></message>", /<not-well-formed/],
  ["SPEC E2: invalid UTF-8", Buffer.concat([Buffer.from("<message><body>"), Buffer.from([0xc0, 0xaf]), Buffer.from("</body></message>")]), /<unsupported-encoding/],
];

for (const [name, input, expected] of BAD_INPUTS) {
  test(`${name} closes only that stream with the right error; another session keeps chatting`, async () => {
    const alice = await login("alice", "direct", "canary-a");
    const bob = await login("bob", "starttls", "canary-b");
    const raw = await RawClient.connect(mux.directPort);
    await raw.login("carol", "carolpw", "bad");
    raw.text = "";
    raw.send(input);
    await raw.waitClosed();
    assert.match(raw.text, expected);
    assert.match(raw.text, /<\/stream:error><\/stream:stream>$/, "one stream close, right after the error");
    assert.doesNotMatch(raw.text, /<message/, "nothing of the bad input came back");
    await alice.send(xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, `still here after ${name}`)));
    await bob.waitFor(isChat(alice.jid, `still here after ${name}`));
    assert.equal(alice.errors.length + bob.errors.length, 0);
    await alice.stop();
    await bob.stop();
  });
}

test("SPEC E1: a stanza of exactly maxStanzaBytes passes", async () => {
  const bob = await login("bob", "direct", "limit-b");
  const raw = await RawClient.connect(mux.directPort);
  const jid = await raw.login("alice", "alicepw", "limit-a");
  const head = `<message to='${bob.jid}' type='chat' id='big'><body>`;
  const tail = "</body></message>";
  const fill = 262_144 - Buffer.byteLength(head) - Buffer.byteLength(tail);
  raw.send(head + "y".repeat(fill) + tail);
  const m = await bob.waitFor((el) => el.name === "message" && el.attrs.id === "big", 10_000);
  assert.equal(m.attrs.from, jid);
  assert.equal(m.getChildText("body")?.length, fill);
  raw.close();
  await bob.stop();
});

test("admin: /healthz, /readyz and /metrics answer with the relay's counters", async () => {
  const base = `http://127.0.0.1:${mux.adminPort}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const body = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    "mucmux_connections_open", "mucmux_connections_accepted_total", "mucmux_stanzas_total",
    "mucmux_bytes_total", "mucmux_sasl_outcomes_total", "mucmux_stream_errors_total", "mucmux_build_info",
    "process_resident_memory_bytes",
  ]) assert.match(body, new RegExp(`^${name}`, "m"), name);
  assert.match(body, /mucmux_sasl_outcomes_total\{mechanism="SCRAM-SHA-\d+",result="success"\} [1-9]/);
  assert.match(body, /mucmux_sasl_outcomes_total\{mechanism="SCRAM-SHA-\d+",result="not-authorized"\} [1-9]/);
  assert.match(body, /mucmux_stream_errors_total\{condition="restricted-xml",origin="mucmux"\} [1-9]/);
  assert.match(body, /mucmux_stanzas_total\{direction="c2s",kind="message",type="chat"\} [1-9]/);
});
