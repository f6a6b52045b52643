// Live room traffic (SPEC C3, C7, C11, C13) as transcripts.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import {
  ANY, MUC, MUC_USER, OCCUPANT_ID, ROOM, SID,
  codesOf, firstJoin, isSubject, joinXml, occupantXml, show, toRoom, withTranscript, type Transcript,
} from "../support/transcript.js";

const T = { timeout: 30_000 };

/** A presence update the anchor sends (SPEC C3): directed to room/AccountNick, no <x/>, just show and status. */
const anchorPresence = (showValue: string | undefined, status?: string) => (el: Element) =>
  el.name === "presence" && el.attrs.type === undefined && el.attrs.to === `${ROOM}/alice` && !el.getChild("x", MUC) &&
  (el.getChildText("show") ?? undefined) === showValue && (el.getChildText("status") ?? undefined) === status;

test("SPEC C3: the anchor's room presence is the most available session's, sent only on change; xa when nobody is joined", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await t.sends("alice/a1", joinXml(ROOM, "alice", "j1", "", "<show>away</show>"));
    const join = await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice' id='j1'><show>away</show><x xmlns='${MUC}'/></presence>`);
    await t.upstreamSends("alice/anchor", occupantXml(ROOM, "bob") +
      `<presence from='${ROOM}/alice' id='${join.attrs.id ?? ""}'><show>away</show><x xmlns='${MUC_USER}'><item affiliation='member' role='participant'/><status code='110'/></x></presence>` +
      `<message type='groupchat' from='${ROOM}'><subject>Hi</subject></message>`);
    await t.collect("alice/a1", isSubject);
    await t.upstreamReceivesNothing("alice/anchor"); // away was already sent with the join

    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2", "", "<show>chat</show><status>free</status>"));
    await t.collect("alice/a2", isSubject);
    await t.upstreamReceives("alice/anchor", anchorPresence("chat", "free"));
    await t.upstreamReceivesNothing("alice/anchor");

    // the same presences again change nothing: nothing is sent
    await t.sends("alice/a1", `<presence to='${ROOM}/alice'><show>away</show></presence>`);
    await t.sends("alice/a2", `<presence to='${ROOM}/alice'><show>chat</show><status>free</status></presence>`);
    await t.upstreamReceivesNothing("alice/anchor");

    // the chat session leaves: away is the best left
    await t.sends("alice/a2", `<presence type='unavailable' to='${ROOM}/alice' id='bye2'/>`);
    await t.receives("alice/a2", `<presence type='unavailable' from='${ROOM}/alice' id='bye2'><x xmlns='${MUC_USER}'><status code='110'/></x></presence>`);
    await t.upstreamReceives("alice/anchor", anchorPresence("away"));
    await t.upstreamReceivesNothing("alice/anchor");

    // debounced: three quick changes are one presence, the last one (plain available)
    await t.sends("alice/a1", `<presence to='${ROOM}/alice'><show>dnd</show></presence>`);
    await t.sends("alice/a1", `<presence to='${ROOM}/alice'><show>xa</show></presence>`);
    await t.sends("alice/a1", `<presence to='${ROOM}/alice'/>`);
    await t.upstreamReceives("alice/anchor", anchorPresence(undefined));
    await t.upstreamReceivesNothing("alice/anchor");

    // the last session disconnects: the room is kept (SPEC C5) with xa
    await t.disconnects("alice/a1");
    await t.upstreamReceives("alice/anchor", anchorPresence("xa"));
    await t.upstreamReceivesNothing("alice/anchor");
  }));

/** Two joined sessions; the room then removes the account with `removal` (SPEC C7). */
async function removedWith(t: Transcript, x: (anchorJid: string) => string, check: (el: Element, me: string) => void): Promise<void> {
  await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });
  await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
  await t.collect("alice/a2", isSubject);
  await t.upstreamReceivesNothing("alice/anchor");

  const anchor = t.jid("alice/anchor");
  await t.upstreamSends("alice/anchor", `<presence type='unavailable' from='${ROOM}/alice'><x xmlns='${MUC_USER}'>${x(anchor)}</x></presence>`);
  for (const s of ["a1", "a2"]) {
    const me = t.jid(`alice/${s}`);
    const got = await t.receives(`alice/${s}`, `<presence type='unavailable' from='${ROOM}/alice' to='${me}'/>`);
    assert.ok(!show(got).includes(anchor), `the anchor's JID leaked: ${show(got)}`);
    check(got, me);
  }
  // state cleared: room traffic reaches nobody, nothing is re-joined automatically…
  await t.upstreamSends("alice/anchor", `<message type='groupchat' from='${ROOM}/bob' id='after'><body>after</body></message>`);
  await t.receivesNothing("alice/a1");
  await t.receivesNothing("alice/a2");
  await t.upstreamReceivesNothing("alice/anchor");
  // …and a later join is a real upstream join again
  await t.sends("alice/a1", joinXml(ROOM, "alice", "again"));
  await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice' id='again'><x xmlns='${MUC}'/></presence>`);
}

test("SPEC C7: a ban (301) reaches every joined session with `to` and item jid rewritten; room state is cleared", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, (t) => removedWith(t,
    (anchor) => `<item affiliation='outcast' role='none' jid='${anchor}'><reason>spam</reason></item><status code='110'/><status code='301'/>`,
    (el, me) => {
      assert.equal(el.getChild("x", MUC_USER)?.getChild("item")?.attrs.jid, me);
      assert.equal(el.getChild("x", MUC_USER)?.getChild("item")?.attrs.affiliation, "outcast");
      assert.deepEqual(codesOf(el), ["110", "301"]);
    })));

test("SPEC C7: room destruction (<destroy/>, with 110) reaches every joined session; room state is cleared", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, (t) => removedWith(t,
    () => `<item affiliation='none' role='none'/><destroy jid='new@conference.localhost'><reason>moved</reason></destroy><status code='110'/>`,
    (el) => assert.equal(el.getChild("x", MUC_USER)?.getChild("destroy")?.attrs.jid, "new@conference.localhost"))));

test("SPEC C7: room destruction as ejabberd and the XEP-0045 §10.9 example send it (no 110) is the account's own removal too", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, (t) => removedWith(t,
    () => `<item affiliation='none' role='none'/><destroy jid='new@conference.localhost'><reason>moved</reason></destroy>`,
    (el) => assert.ok(el.getChild("x", MUC_USER)?.getChild("destroy")))));

test("SPEC C11: an occupant's IQ to room/AccountNick goes to the most available joined session with a fresh id; the answer returns on the anchor", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob"), joinChildren: "<show>away</show>" });
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2", "", "<show>chat</show>"));
    await t.collect("alice/a2", isSubject);
    await t.upstreamReceives("alice/anchor", anchorPresence("chat"), { scan: true });

    await t.upstreamSends("alice/anchor", `<iq type='get' from='${ROOM}/bob' id='v1'><query xmlns='jabber:iq:version'/></iq>`);
    const fwd = await t.receives("alice/a2", `<iq type='get' from='${ROOM}/bob' to='${t.jid("alice/a2")}' id='${ANY}'><query xmlns='jabber:iq:version'/></iq>`);
    assert.notEqual(fwd.attrs.id, "v1", "a fresh id");
    await t.receivesNothing("alice/a1");
    await t.sends("alice/a2", `<iq type='result' to='${ROOM}/bob' id='${fwd.attrs.id ?? ""}'><query xmlns='jabber:iq:version'><name>c2</name></query></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='result' id='v1' to='${ROOM}/bob'><query xmlns='jabber:iq:version'><name>c2</name></query></iq>`);

    // a2 leaves: a1 is now the most available (the only) joined session
    await t.sends("alice/a2", `<presence type='unavailable' to='${ROOM}/alice' id='bye'/>`);
    await t.receives("alice/a2", `<presence type='unavailable' from='${ROOM}/alice' id='bye'/>`);
    await t.upstreamSends("alice/anchor", `<iq type='get' from='${ROOM}/bob' id='v2'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const fwd2 = await t.receives("alice/a1", `<iq type='get' from='${ROOM}/bob' id='${ANY}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.notEqual(fwd2.attrs.id, "v2");
    await t.sends("alice/a1", `<iq type='error' to='${ROOM}/bob' id='${fwd2.attrs.id ?? ""}'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='error' id='v2' to='${ROOM}/bob'/>`, { scan: true });
    await t.receivesNothing("alice/a2");
    for (const s of ["a1", "a2"]) assert.ok(!t.upstreamLog(`alice/${s}`).some(toRoom(ROOM)), `alice/${s}'s leg carried room traffic`);
  }));

test("SPEC C13: occupant-id and stanza-id pass through untouched; a synthesized self-presence carries the own occupant-id", T, () =>
  withTranscript({ users: { alice: ["a1", "a2", "a3"] } }, async (t) => {
    await firstJoin(t, "alice/a1", {
      nick: "alice", id: "j1",
      burst: occupantXml(ROOM, "bob", "member", `<occupant-id xmlns='${OCCUPANT_ID}' id='bob-oid'/>`),
      selfExtra: `<occupant-id xmlns='${OCCUPANT_ID}' id='alice-oid'/>`,
    });
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
    await t.receives("alice/a2", `<presence from='${ROOM}/bob'><occupant-id xmlns='${OCCUPANT_ID}' id='bob-oid'/></presence>`);
    await t.receives("alice/a2", `<presence from='${ROOM}/alice' id='j2'><x xmlns='${MUC_USER}'><status code='110'/></x><occupant-id xmlns='${OCCUPANT_ID}' id='alice-oid'/></presence>`);
    await t.collect("alice/a2", isSubject);

    await t.upstreamSends("alice/anchor",
      `<message type='groupchat' from='${ROOM}/bob' id='m1'><body>with ids</body>` +
      `<occupant-id xmlns='${OCCUPANT_ID}' id='bob-oid'/><stanza-id xmlns='${SID}' by='${ROOM}' id='sid-1'/></message>` +
      `<message type='groupchat' from='${ROOM}/bob' id='m2'><body>without stanza-id</body></message>`);
    for (const s of ["a1", "a2"]) {
      const m1 = await t.receives(`alice/${s}`, `<message type='groupchat' from='${ROOM}/bob' id='m1'/>`);
      assert.deepEqual(m1.getChildren("occupant-id", OCCUPANT_ID).map((e) => ({ ...e.attrs })), [{ xmlns: OCCUPANT_ID, id: "bob-oid" }]);
      assert.deepEqual(m1.getChildren("stanza-id", SID).map((e) => ({ ...e.attrs })), [{ xmlns: SID, by: ROOM, id: "sid-1" }]);
      const m2 = await t.receives(`alice/${s}`, `<message type='groupchat' from='${ROOM}/bob' id='m2'/>`);
      assert.equal(m2.getChildren("stanza-id", SID).length, 0, `mucmux invented a stanza-id: ${show(m2)}`);
    }
    // replayed from the cache (SPEC B4): the same ids, and still no invented stanza-id
    await t.sends("alice/a3", joinXml(ROOM, "alice", "j3"));
    const got = await t.collect("alice/a3", isSubject);
    const self = got.find((el) => el.name === "presence" && codesOf(el).includes("110"));
    assert.equal(self?.getChild("occupant-id", OCCUPANT_ID)?.attrs.id, "alice-oid");
    const h1 = got.find((el) => el.attrs.id === "m1");
    const h2 = got.find((el) => el.attrs.id === "m2");
    assert.ok(h1 && h2, got.map(show).join("\n"));
    assert.deepEqual(h1.getChildren("stanza-id", SID).map((e) => e.attrs.id), ["sid-1"]);
    assert.deepEqual(h1.getChildren("occupant-id", OCCUPANT_ID).map((e) => e.attrs.id), ["bob-oid"]);
    assert.equal(h2.getChildren("stanza-id", SID).length, 0, `mucmux invented a stanza-id: ${show(h2)}`);
  }));

test("SPEC C1 (isolation): room traffic from a room the account never joined is not fanned out to anyone", T, () =>
  withTranscript({ users: { alice: ["a1"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });
    const other = "never-joined@conference.localhost";
    // The server (or someone spoofing through it) sends the anchor traffic of another room.
    await t.upstreamSends("alice/anchor",
      `<message type='groupchat' from='${other}/mallory' id='f1'><body>forged</body></message>` +
      `<presence from='${other}/mallory'><x xmlns='${MUC_USER}'><item affiliation='none' role='participant'/></x></presence>` +
      `<message type='chat' from='${other}/mallory' id='f2'><body>forged pm</body><x xmlns='${MUC_USER}'/></message>`);
    // ... while a real room message still arrives: only that one reaches the session.
    await t.upstreamSends("alice/anchor", `<message type='groupchat' from='${ROOM}/bob' id='real'><body>real</body></message>`);
    const got = await t.receives("alice/a1", (el: Element) => el.name === "message" && el.attrs.id === "real");
    assert.equal(got.getChildText("body"), "real");
    await t.receivesNothing("alice/a1");
  }));
