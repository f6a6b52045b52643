// The registration form with the Tigase offline field (SPEC D2, D3) and what counts as worth delivering
// offline (SPEC D6), as pure functions.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";
import { fillNick, offerForm, parseBoolean, readSubmission, stripOfflineField } from "../../../src/stages/muc-offline/form.js";
import { classify } from "../../../src/stages/muc-offline/delivery.js";
import { extendDiscoInfo } from "../../../src/stages/muc-offline/disco.js";
import { parseStanza } from "../../../src/xml/stanza.js";
import { serialize } from "../../../src/xml/serialize.js";

const OFFLINE = "{http://tigase.org/protocol/muc}offline";
const XDATA = "jabber:x:data";
const field = (form: Element | undefined, v: string) => form?.getChildren("field").find((f) => f.attrs.var === v);
const submit = (...fields: [string, string][]) => xml("x", { xmlns: XDATA, type: "submit" },
  ...fields.map(([v, value]) => xml("field", { var: v }, xml("value", {}, value))));

describe("registration form (SPEC D2/D3)", () => {
  it("accepts the XEP-0004 booleans 1|true|0|false and nothing else", () => {
    assert.deepEqual(["1", "true", " true ", "0", "false", "yes", "", undefined].map(parseBoolean),
      [true, true, true, false, false, "invalid", "invalid", "invalid"]);
  });

  it("reads a submission; a form without the field leaves the flag alone (undefined)", () => {
    assert.deepEqual(readSubmission(submit(["muc#register_roomnick", "alice"], [OFFLINE, "1"])), { offline: true, nick: "alice" });
    assert.deepEqual(readSubmission(submit(["muc#register_roomnick", "alice"])), { offline: undefined, nick: "alice" });
    assert.deepEqual(readSubmission(submit([OFFLINE, "maybe"])), { offline: "invalid", nick: undefined });
  });

  it("strips the offline field before the form goes upstream, and fills a missing nick", () => {
    const form = submit(["FORM_TYPE", "http://jabber.org/protocol/muc#register"], [OFFLINE, "true"]);
    stripOfflineField(form);
    fillNick(form, "alice");
    assert.equal(field(form, OFFLINE), undefined);
    assert.equal(field(form, "muc#register_roomnick")?.getChildText("value"), "alice");
    assert.equal(field(form, "FORM_TYPE")?.getChildText("value"), "http://jabber.org/protocol/muc#register");
  });

  it("offers a complete form when upstream had none (ejabberd's service-unavailable, Prosody's <registered/>)", () => {
    const q = offerForm(undefined, { offline: true, nick: "alice" });
    const form = q.getChild("x", XDATA);
    assert.equal(q.attrs.xmlns, "jabber:iq:register");
    assert.equal(form?.attrs.type, "form");
    assert.equal(field(form, "FORM_TYPE")?.getChildText("value"), "http://jabber.org/protocol/muc#register");
    assert.equal(field(form, "muc#register_roomnick")?.getChildText("value"), "alice");
    assert.equal(field(form, OFFLINE)?.attrs.type, "boolean");
    assert.equal(field(form, OFFLINE)?.getChildText("value"), "1");
    const registered = offerForm(xml("query", { xmlns: "jabber:iq:register" }, xml("registered"), xml("username", {}, "al")), { offline: false, nick: "al" });
    assert.ok(registered.getChild("registered"), "<registered/> kept");
    assert.equal(field(registered.getChild("x", XDATA), OFFLINE)?.getChildText("value"), "0");
  });

  it("extends upstream's form: keeps its fields, sets the flag's value once, prefills an empty nick", () => {
    const upstream = xml("query", { xmlns: "jabber:iq:register" }, xml("x", { xmlns: XDATA, type: "form" },
      xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/muc#register")),
      xml("field", { var: "muc#register_roomnick", type: "text-single" }, xml("required")),
      xml("field", { var: OFFLINE, type: "boolean" }, xml("value", {}, "0"))));
    const form = offerForm(upstream, { offline: true, nick: "alice" }).getChild("x", XDATA);
    assert.equal(form?.getChildren("field").length, 3);
    assert.deepEqual(field(form, OFFLINE)?.getChildren("value").map((v) => v.getText()), ["1"]);
    assert.equal(field(form, "muc#register_roomnick")?.getChildText("value"), "alice");
    assert.ok(field(upstream.getChild("x", XDATA), OFFLINE)?.getChildText("value") === "0", "upstream's element untouched");
  });
});

describe("offline delivery filter (SPEC D6, C12)", () => {
  const gc = (...children: Element[]) => xml("message", { type: "groupchat", from: "r@muc/bob" }, ...children);
  it("keeps bodies, encrypted payloads and store hints; drops states, markers, subjects and no-store", () => {
    assert.equal(classify(gc(xml("body", {}, "hi"))), "groupchat");
    assert.equal(classify(gc(xml("encrypted", { xmlns: "eu.siacs.conversations.axolotl" }))), "groupchat");
    assert.equal(classify(gc(xml("store", { xmlns: "urn:xmpp:hints" }))), "groupchat");
    assert.equal(classify(gc(xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" }))), undefined);
    assert.equal(classify(gc(xml("displayed", { xmlns: "urn:xmpp:chat-markers:0", id: "x" }))), undefined);
    assert.equal(classify(gc(xml("subject", {}, "new topic"))), undefined);
    assert.equal(classify(gc(xml("body", {}, "hi"), xml("no-store", { xmlns: "urn:xmpp:hints" }))), undefined);
    assert.equal(classify(gc(xml("body", {}, "hi"), xml("no-permanent-store", { xmlns: "urn:xmpp:hints" }))), undefined);
  });
  it("private messages from an occupant count; notices from the room itself and errors do not", () => {
    assert.equal(classify(xml("message", { type: "chat", from: "r@muc/bob" }, xml("body", {}, "psst"))), "pm");
    assert.equal(classify(xml("message", { from: "r@muc" }, xml("body", {}, "notice"))), undefined);
    assert.equal(classify(xml("message", { type: "error", from: "r@muc/bob" }, xml("body", {}, "x"))), undefined);
  });
});

describe("disco#info (SPEC D1) and stored stanzas", () => {
  const info = (from: string, ...children: Element[]) => xml("iq", { type: "result", from }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }, ...children));
  const features = (el: Element) => el.getChild("query")?.getChildren("feature").map((f) => f.attrs.var) ?? [];
  it("a room gains jabber:iq:register once; the service gains the Tigase feature; others are untouched", () => {
    const domains = new Set<string>();
    const learn = (d: string) => void domains.add(d);
    const room = info("r@muc.example", xml("identity", { category: "conference", type: "text" }), xml("feature", { var: "http://jabber.org/protocol/muc" }));
    extendDiscoInfo(room, learn);
    extendDiscoInfo(room, learn);
    assert.deepEqual(features(room), ["http://jabber.org/protocol/muc", "jabber:iq:register"]);
    const service = info("muc.example", xml("identity", { category: "conference", type: "text" }));
    extendDiscoInfo(service, learn);
    assert.deepEqual(features(service), ["http://tigase.org/protocol/muc#offline"]);
    const server = info("example", xml("identity", { category: "server", type: "im" }));
    extendDiscoInfo(server, learn);
    assert.deepEqual(features(server), []);
    assert.deepEqual([...domains], ["muc.example"]);
  });
  it("parseStanza reads back what serialize wrote, and refuses anything but one stanza", () => {
    const limits = { maxStanzaBytes: 10_000, maxDepth: 16, maxAttributes: 16, maxChildren: 64 };
    const m = xml("message", { type: "groupchat", from: "r@muc/bob" }, xml("body", {}, "a < b & 'c'"), xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: "1", by: "r@muc" }));
    assert.equal(serialize(parseStanza(serialize(m), limits)!), serialize(m));
    assert.equal(parseStanza("<message/><message/>", limits), undefined);
    assert.equal(parseStanza("<message><body>x</body>", limits), undefined);
    assert.equal(parseStanza("<message/></stream:stream><iq/>", limits), undefined);
  });
});
