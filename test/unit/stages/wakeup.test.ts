// Wake-up stanzas (SPEC G1–G4): which room messages wake a phone, what the wake-up says, how mucmux recognises one
// (also inside a carbon or an archive result), and the per-account coalescing and cap.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";
import { AccountWakeups, mentions, notifiable, NS_WAKEUP, wakeupIn, wakeupStanza } from "../../../src/stages/wakeup/wakeup.js";
import { serialize } from "../../../src/xml/serialize.js";

const room = "tea@conference.example.test";
const gc = (nick: string, body?: string, extra: Element[] = []) =>
  xml("message", { from: `${room}/${nick}`, to: "alice@example.test/phone", type: "groupchat" }, ...(body === undefined ? [] : [xml("body", {}, body)]), ...extra);

describe("notifiable", () => {
  it("takes room messages with a body from another occupant, and private messages through the room", () => {
    assert.deepEqual(notifiable(gc("bob", "hi all"), "alice"), { room, nick: "bob", body: "hi all", mention: false });
    assert.equal(notifiable(gc("alice", "my own"), "alice"), undefined, "the account's own message back from the room");
    assert.equal(notifiable(gc("bob"), "alice"), undefined, "no body (a chat state, a marker)");
    assert.equal(notifiable(gc("bob", "  "), "alice"), undefined);
    assert.equal(notifiable(xml("message", { from: room, type: "groupchat" }, xml("subject", {}, "t")), "alice"), undefined);
    assert.equal(notifiable(xml("message", { from: room, type: "groupchat" }, xml("body", {}, "room status")), "alice"), undefined, "from the room itself");
    const pm = xml("message", { from: `${room}/bob`, type: "chat" }, xml("body", {}, "psst alice"), xml("x", { xmlns: "http://jabber.org/protocol/muc#user" }));
    assert.equal(notifiable(pm, "alice")?.mention, true);
    assert.equal(notifiable(xml("message", { from: "bob@example.test/x", type: "chat" }, xml("body", {}, "1:1")), "alice"), undefined, "1:1: the server's own");
    assert.equal(notifiable(xml("message", { from: `${room}/bob`, type: "error" }, xml("body", {}, "x")), "alice"), undefined);
  });

  it("finds a mention as a word, in any case", () => {
    assert.equal(mentions("Alice: look", "alice"), true);
    assert.equal(mentions("hey @alice!", "alice"), true);
    assert.equal(mentions("malice aforethought", "alice"), false);
    assert.equal(mentions("alice2 is someone else", "alice"), false);
    assert.equal(mentions("Zoë, you there?", "zoë"), true);
    assert.equal(mentions("anything", undefined), false);
  });
});

describe("wakeupStanza", () => {
  it("is a chat message to the bare JID, kept out of archives and carbons, marked, with the body only when allowed", () => {
    const m = { room, nick: "bob", body: "secret plans", mention: false };
    const without = serialize(wakeupStanza("alice@example.test", "mmwake-1", m, false));
    assert.equal(without, "<message to='alice@example.test' type='chat' id='mmwake-1'><body>bob (tea)</body>" +
      "<no-permanent-store xmlns='urn:xmpp:hints'/><no-copy xmlns='urn:xmpp:hints'/>" +
      `<wakeup xmlns='${NS_WAKEUP}' room='${room}'/></message>`);
    assert.match(serialize(wakeupStanza("alice@example.test", "mmwake-2", m, true)), /<body>bob \(tea\): secret plans<\/body>/);
    const long = serialize(wakeupStanza("a@b", "i", { ...m, body: "x".repeat(1000) }, true));
    assert.ok(long.length < 600, "a notification line, not the message");
  });
});

describe("wakeupIn", () => {
  const wake = () => wakeupStanza("alice@example.test", "mmwake-1", { room, nick: "bob", body: "b", mention: false }, false);
  it("finds the marker on the stanza, in a carbon and in an archive result, and nowhere else", () => {
    assert.equal(wakeupIn(wake()), "direct");
    const carbon = xml("message", {}, xml("received", { xmlns: "urn:xmpp:carbons:2" }, xml("forwarded", { xmlns: "urn:xmpp:forward:0" }, wake())));
    assert.equal(wakeupIn(carbon), "carbon");
    const mam = xml("message", {}, xml("result", { xmlns: "urn:xmpp:mam:2", id: "1" }, xml("forwarded", { xmlns: "urn:xmpp:forward:0" }, wake())));
    assert.equal(wakeupIn(mam), "archive");
    assert.equal(wakeupIn(gc("bob", "plain")), undefined);
    assert.equal(wakeupIn(xml("message", {}, xml("wakeup", { xmlns: "urn:other" }))), undefined);
  });
});

describe("AccountWakeups", () => {
  const policy = { intervalMs: 60_000, maxPending: 3 };
  it("needs a push registration, coalesces while unanswered, caps, lets mentions through, and starts over when answered", () => {
    const a = new AccountWakeups();
    assert.equal(a.decide(0, "m0", false, policy), "no_push");
    a.registrations.add("push.example\0n");
    assert.equal(a.decide(0, "m1", false, policy), "send");
    assert.equal(a.decide(0, "m1", false, policy), "duplicate", "one message fanned out to two hibernated devices");
    assert.equal(a.decide(10_000, "m2", false, policy), "coalesced");
    assert.equal(a.decide(61_000, "m3", false, policy), "send");
    assert.equal(a.decide(122_000, "m4", false, policy), "send");
    assert.equal(a.pending, 3);
    assert.equal(a.decide(999_000, "m5", false, policy), "capped");
    assert.equal(a.decide(999_001, "m6", true, policy), "send", "a mention always wakes");
    a.answered();
    assert.equal(a.decide(999_002, "m7", false, policy), "send");
  });
});
