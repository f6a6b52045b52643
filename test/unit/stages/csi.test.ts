// The CSI stage (SPEC C15, C16) in the real chain runner: what waits for an inactive session, what supersedes
// what, what flushes, and that the order toward the device is kept.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { createChainRunner, type Delivery } from "../../../src/chain/runner.js";
import type { Session } from "../../../src/chain/session.js";
import { EventBus } from "../../../src/chain/events.js";
import { createCsiStage, isUrgent, MAX_HELD } from "../../../src/stages/csi/index.js";
import { createMetrics } from "../../../src/metrics/metrics.js";
import { createLogger } from "../../../src/log.js";
import { stanza } from "../helpers.js";

const ROOM = "room@conference.example.test";

function setup() {
  const events = new EventBus((_e, err) => { throw err; });
  const metrics = createMetrics({ version: "test", commit: "test" });
  const runner = createChainRunner({ stages: [createCsiStage({ events, metrics })], log: createLogger("silent") });
  const session: Session = { id: 1, jid: "alice@example.test/phone", online: true, slots: new Map(), deliver: () => {}, sendUpstream: () => {} };
  const written: string[] = [];
  const delivery: Delivery = { onward: (el) => void written.push(label(el)), back: () => {} };
  const send = (xml: string, origin: "anchor" | "local" = "anchor") => runner.run("s2c", session, stanza(xml), delivery, origin);
  return { events, session, written, send, csi: (active: boolean) => events.emit("session-csi", { session, active }) };
}

const label = (el: Element) => `${el.name}:${el.attrs.from ?? ""}:${el.getChildText("status") ?? el.getChildText("body") ?? el.getChildElements()[0]?.name ?? ""}`;

describe("SPEC C15/C16: CSI at mucmux", () => {
  it("classifies urgency", () => {
    const urgent = [
      "<iq type='get' id='1'/>", "<message><body>hi</body></message>", "<message><subject>s</subject></message>",
      "<message type='error'/>", "<message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
      "<message><encrypted xmlns='urn:xmpp:omemo:2'/></message>", "<message><propose xmlns='urn:xmpp:jingle-message:0'/></message>",
      "<message><retract xmlns='urn:xmpp:jingle-message:0' id='c'/></message>", "<message><proceed xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
      "<message><x xmlns='jabber:x:conference' jid='r@c'/></message>", "<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>",
      "<message><result xmlns='urn:xmpp:mam:2'/></message>", "<presence type='subscribe'/>", "<presence type='error'/>",
      "<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message><body>x</body></message></forwarded></received></message>",
    ];
    const held = [
      "<presence/>", "<presence type='unavailable'/>", "<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
      "<message><received xmlns='urn:xmpp:receipts' id='1'/></message>", "<message><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>",
      "<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message><paused xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>",
    ];
    for (const x of urgent) assert.equal(isUrgent(stanza(x)), true, x);
    for (const x of held) assert.equal(isUrgent(stanza(x)), false, x);
  });

  it("an active session is untouched; an inactive one gets the latest per sender, in order, before anything urgent", () => {
    const { written, send, csi } = setup();
    send(`<presence from='${ROOM}/a'><status>0</status></presence>`);
    assert.equal(written.length, 1, "active: straight through");
    csi(false);
    send(`<presence from='${ROOM}/a'><status>1</status></presence>`);
    send(`<message from='${ROOM}/b' type='groupchat'><composing xmlns='http://jabber.org/protocol/chatstates'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='x'/></message>`);
    send(`<presence from='${ROOM}/b'><status>1</status></presence>`);
    send(`<message from='${ROOM}/c'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`);
    send(`<presence from='${ROOM}/a'><status>2</status></presence>`);
    send(`<message from='${ROOM}/b' type='groupchat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`);
    send(`<message from='${ROOM}/c'><received xmlns='urn:xmpp:receipts' id='m2'/></message>`);
    assert.equal(written.length, 1, "nothing urgent yet");
    send(`<message from='${ROOM}/d' type='groupchat'><body>hello</body></message>`);
    assert.deepEqual(written.slice(1), [
      `presence:${ROOM}/b:1`, `message:${ROOM}/c:received`, `presence:${ROOM}/a:2`, `message:${ROOM}/b:paused`,
      `message:${ROOM}/c:received`, `message:${ROOM}/d:hello`,
    ]);
  });

  it("local stanzas (answers, offline deliveries waiting for their write) are never held", () => {
    const { written, send, csi } = setup();
    csi(false);
    send(`<message from='${ROOM}/a'><store xmlns='urn:xmpp:hints'/><reactions xmlns='urn:xmpp:reactions:0' id='m'/></message>`, "local");
    assert.equal(written.length, 1);
  });

  it("<active/> flushes; too many held flush; a closed session keeps nothing", () => {
    const { written, send, csi, events, session } = setup();
    csi(false);
    send(`<presence from='${ROOM}/a'><status>1</status></presence>`);
    csi(true);
    assert.deepEqual(written, [`presence:${ROOM}/a:1`]);
    csi(false);
    for (let i = 0; i <= MAX_HELD; i++) send(`<presence from='${ROOM}/n${i}'/>`);
    assert.equal(written.length, 1 + MAX_HELD + 1, "the bound flushed them all, in order");
    send(`<presence from='${ROOM}/late'/>`);
    events.emit("session-closed", { account: undefined as never, session });
    csi(true);
    assert.equal(written.length, 1 + MAX_HELD + 1, "nothing after the session closed");
  });
});
