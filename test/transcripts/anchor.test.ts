// The anchor (SPEC A7–A9) as transcripts: what it sends upstream, and what a dropped anchor costs the sessions.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import {
  CARBONS, DELAY, DISCO_INFO, HINTS, MUC, PING, ROOM, SID, STANZAS,
  firstJoin, occupantXml, selfPresenceXml, show, subjectXml, toRoom, withTranscript,
} from "../support/transcript.js";

const T = { timeout: 30_000 };
const isError = (el: Element) => (el.name === "message" || el.name === "presence") && el.attrs.type === "error";

test("SPEC A7: the anchor sends no initial presence and no carbons enable, only directed presence to rooms; its PMs carry no-copy", T, () =>
  withTranscript({ users: { alice: ["a1"] } }, async (t) => {
    // the session's own presence and carbons go on its own leg
    await t.sends("alice/a1", `<presence/>`);
    await t.upstreamReceives("alice/a1", `<presence/>`);
    await t.sends("alice/a1", `<iq type='set' id='c1'><enable xmlns='${CARBONS}'/></iq>`);
    await t.upstreamReceives("alice/a1", `<iq type='set' id='c1'><enable xmlns='${CARBONS}'/></iq>`);
    await t.receives("alice/a1", `<iq type='result' id='c1'/>`);

    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });
    await t.sends("alice/a1", `<presence><show>away</show></presence>`); // a broadcast: the leg's business only
    await t.upstreamReceives("alice/a1", `<presence><show>away</show></presence>`, { scan: true });

    await t.sends("alice/a1", `<message type='chat' to='${ROOM}/bob' id='pm1'><body>psst</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message type='chat' to='${ROOM}/bob' id='pm1'><body>psst</body><no-copy xmlns='${HINTS}'/></message>`, { scan: true });
    await t.sends("alice/a1", `<message to='${ROOM}/bob' id='pm2'><body>normal type</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message to='${ROOM}/bob' id='pm2'><no-copy xmlns='${HINTS}'/></message>`, { scan: true });
    await t.upstreamSettles("alice/anchor");

    const log = t.upstreamLog("alice/anchor");
    assert.equal(log[0]?.name, "presence", `the anchor's first stanza is its join: ${log.map(show).join("\n")}`);
    assert.ok(log[0]?.getChild("x", MUC), show(log[0] as Element));
    for (const el of log) {
      if (el.name === "presence") assert.ok(toRoom(ROOM)(el), `presence not directed to a room: ${show(el)}`);
      assert.ok(!el.getChild("enable", CARBONS) && !el.getChild("disable", CARBONS), `carbons on the anchor: ${show(el)}`);
    }
    const anchorPms = log.filter((el) => el.name === "message" && el.attrs.type !== "groupchat");
    assert.equal(anchorPms.length, 2);
    for (const pm of anchorPms) assert.ok(pm.getChild("no-copy", HINTS), show(pm));
  }));

test("SPEC A8: with no joined session, occupant IQs to room/AccountNick get ping result or an IQ error; never an error message or presence", T, () =>
  withTranscript({ users: { alice: ["a1"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });
    await t.disconnects("alice/a1"); // implicit departure: the room lingers (SPEC C5)
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice'><show>xa</show></presence>`); // SPEC C3

    await t.upstreamSends("alice/anchor", `<iq type='get' from='${ROOM}/bob' id='p1'><ping xmlns='${PING}'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='result' id='p1' to='${ROOM}/bob'/>`);
    await t.upstreamSends("alice/anchor", `<iq type='get' from='${ROOM}/bob' id='v1'><query xmlns='jabber:iq:version'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='error' id='v1' to='${ROOM}/bob'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
    await t.upstreamSends("alice/anchor", `<iq type='set' from='${ROOM}/bob' id='s1'><query xmlns='jabber:iq:private'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='error' id='s1' to='${ROOM}/bob'><error><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
    await t.upstreamSends("alice/anchor", `<iq type='get' from='${ROOM}/bob' id='i1'><query xmlns='${DISCO_INFO}'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='result' id='i1' to='${ROOM}/bob'><query xmlns='${DISCO_INFO}'/></iq>`); // SPEC C11

    // things a client might answer with an error: the anchor answers nothing
    await t.upstreamSends("alice/anchor",
      `<message type='chat' from='${ROOM}/bob' id='q1'><body>are you there?</body><request xmlns='urn:xmpp:receipts'/></message>` +
      `<message type='error' from='${ROOM}/bob' id='q2'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></message>` +
      `<presence type='error' from='${ROOM}/bob'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></presence>` +
      `<message type='groupchat' from='${ROOM}/bob' id='q3'><body>hello?</body></message>`);
    await t.upstreamReceivesNothing("alice/anchor");
    const errors = t.upstreamLog("alice/anchor").filter(isError);
    assert.deepEqual(errors.map(show), [], "the anchor sent an error message or presence");
  }));

test("SPEC A8: an error message or presence a session addresses to the room or an occupant is never sent on the anchor", T, () =>
  withTranscript({ users: { alice: ["a1"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });
    const err = `<error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error>`;
    await t.sends("alice/a1", `<presence type='error' to='${ROOM}/bob'>${err}</presence>`);
    await t.sends("alice/a1", `<message type='error' to='${ROOM}/bob' id='x1'>${err}</message>`);
    await t.sends("alice/a1", `<message type='error' to='${ROOM}' id='x2'>${err}</message>`);
    await t.upstreamSettles("alice/a1"); // a1's round trip: after whatever its error stanzas made mucmux send
    await t.upstreamSettles("alice/anchor");
    // ejabberd (mod_muc_room) and Prosody kick an occupant that sends an error to the room: every session would be kicked
    assert.deepEqual(t.upstreamLog("alice/anchor").filter(isError).map(show), [], "error stanzas went out on the anchor");
    assert.deepEqual(t.upstreamLog("alice/a1").filter(toRoom(ROOM)).map(show), [], "room-addressed stanzas on the session's leg (SPEC B1)");
  }));

test("SPEC A9: a dropped anchor reconnects and re-joins with <history since>; sessions get only the differences", T, () =>
  withTranscript({ users: { alice: ["a1"] } }, async (t) => {
    const bob = occupantXml(ROOM, "bob");
    await firstJoin(t, "alice/a1", {
      nick: "alice", id: "j1", subject: "Topic",
      burst: bob + occupantXml(ROOM, "carol") +
        `<message type='groupchat' from='${ROOM}/bob' id='h1'><body>h1</body><delay xmlns='${DELAY}' from='${ROOM}' stamp='${new Date(Date.now() - 60_000).toISOString()}'/><stanza-id xmlns='${SID}' by='${ROOM}' id='s1'/></message>`,
    });
    const beforeM2 = Date.now();
    const m2 = `<message type='groupchat' from='${ROOM}/bob' id='m2'><body>m2</body><stanza-id xmlns='${SID}' by='${ROOM}' id='s2'/></message>`;
    await t.upstreamSends("alice/anchor", m2);
    await t.receives("alice/a1", `<message from='${ROOM}/bob' id='m2'/>`);
    await t.upstreamSettles("alice/anchor"); // any debounced presence goes out on the old stream

    const old = t.connection("alice/anchor");
    t.upstreamCloses("alice/anchor", "stream");
    const rejoin = await t.upstreamReceives("alice/anchor",
      `<presence to='${ROOM}/alice'><x xmlns='${MUC}'><history/></x></presence>`, { timeoutMs: 8000 });
    assert.notEqual(t.connection("alice/anchor"), old, "a new anchor connection");
    assert.equal(t.upstreamLog("alice/anchor")[0], rejoin, "no initial presence on the new anchor stream (SPEC A7)");
    const since = rejoin.getChild("x", MUC)?.getChild("history")?.attrs.since ?? "";
    assert.ok(Date.parse(since) >= beforeM2 - 1 && Date.parse(since) <= Date.now(), `history since the last cached message: ${show(rejoin)}`);

    const anchor = t.jid("alice/anchor");
    const stamp = new Date().toISOString();
    await t.upstreamSends("alice/anchor",
      bob + occupantXml(ROOM, "dave") + selfPresenceXml({ room: ROOM, nick: "alice", jid: anchor }) +
      `<message type='groupchat' from='${ROOM}/bob' id='m2'><body>m2</body><delay xmlns='${DELAY}' from='${ROOM}' stamp='${since}'/><stanza-id xmlns='${SID}' by='${ROOM}' id='s2'/></message>` +
      `<message type='groupchat' from='${ROOM}/carol' id='m3'><body>m3</body><delay xmlns='${DELAY}' from='${ROOM}' stamp='${stamp}'/><stanza-id xmlns='${SID}' by='${ROOM}' id='s3'/></message>` +
      subjectXml(ROOM, "Topic"));
    const got = await t.collect("alice/a1", `<presence type='unavailable' from='${ROOM}/carol'/>`, 12_000);
    await t.roundTrip("alice/a1"); // the rest of the differences, written with it, come before the answer
    const all = [...got, ...t.unread("alice/a1")];
    const labels = all.map((el) => `${el.name}${el.attrs.type ? `/${el.attrs.type}` : ""}:${el.attrs.from}${el.getChildText("body") ? `:${el.getChildText("body")}` : ""}`);
    assert.deepEqual(labels.sort(), [
      `message/groupchat:${ROOM}/carol:m3`,
      `presence/unavailable:${ROOM}/carol`,
      `presence:${ROOM}/dave`,
    ], `only the differences:\n${all.map(show).join("\n")}`);

    await t.upstreamSends("alice/anchor", `<message type='groupchat' from='${ROOM}/dave' id='m4'><body>m4</body><stanza-id xmlns='${SID}' by='${ROOM}' id='s4'/></message>`);
    await t.receives("alice/a1", `<message type='groupchat' from='${ROOM}/dave' id='m4'><body>m4</body></message>`);
    await t.receivesNothing("alice/a1");
    // and the room works both ways on the new stream
    await t.sends("alice/a1", `<message type='groupchat' to='${ROOM}' id='back'><body>back</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message type='groupchat' to='${ROOM}' id='back'/>`, { scan: true });
    assert.ok(!t.upstreamLog("alice/a1").some(toRoom(ROOM)));
  }));
