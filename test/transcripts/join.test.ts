// Join folding (SPEC B1–B5, B7) as transcripts: clients through mucmux, a scripted room behind it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import {
  DELAY, DISCO_INFO, MUC, MUC_USER, OCCUPANT_ID, ROOM, SID, STANZAS,
  codesOf, firstJoin, isSubject, joinXml, occupantXml, selfPresenceXml, show, subjectXml, toRoom, withTranscript,
} from "../support/transcript.js";
import { elapse } from "../support/wait.js";

const T = { timeout: 30_000 };
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const historyXml = (room: string, nick: string, body: string, stamp: string, sid: string) =>
  `<message type='groupchat' from='${room}/${nick}' id='${sid}-id'><body>${body}</body>` +
  `<delay xmlns='${DELAY}' from='${room}' stamp='${stamp}'/><stanza-id xmlns='${SID}' by='${room}' id='${sid}'/></message>`;

test("SPEC B1: after a join, nothing a session sends to the room or room/* reaches its own leg; it all goes out on the anchor", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") });

    // a2 is not joined, but the room is managed for the account: its room traffic stays off its leg too
    await t.sends("alice/a2", `<iq type='get' to='${ROOM}' id='d0'><query xmlns='${DISCO_INFO}'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='get' to='${ROOM}'><query xmlns='${DISCO_INFO}'/></iq>`);
    await t.sends("alice/a2", `<message type='groupchat' to='${ROOM}' id='g0'><body>not joined</body></message>`);
    await t.receives("alice/a2", `<message type='error' id='g0' from='${ROOM}'><error><not-acceptable xmlns='${STANZAS}'/></error></message>`);

    await t.sends("alice/a1", `<message type='groupchat' to='${ROOM}' id='g1'><body>hello</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message type='groupchat' to='${ROOM}' id='g1'><body>hello</body></message>`, { scan: true });

    await t.sends("alice/a1", `<message type='chat' to='${ROOM}/bob' id='pm1'><body>psst</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message type='chat' to='${ROOM}/bob' id='pm1'><body>psst</body></message>`, { scan: true });

    await t.sends("alice/a1", `<iq type='get' to='${ROOM}' id='d1'><query xmlns='${DISCO_INFO}'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='get' to='${ROOM}'><query xmlns='${DISCO_INFO}'/></iq>`, { scan: true });

    await t.sends("alice/a1", `<iq type='get' to='${ROOM}/bob' id='v1'><query xmlns='jabber:iq:version'/></iq>`);
    await t.upstreamReceives("alice/anchor", `<iq type='get' to='${ROOM}/bob'><query xmlns='jabber:iq:version'/></iq>`, { scan: true });

    // the room's JID in another case is the same room (RFC 7622: localpart and domain are case-insensitive)
    await t.sends("alice/a1", `<message type='groupchat' to='Room@Conference.Localhost' id='g2'><body>case</body></message>`);
    await t.upstreamReceives("alice/anchor", `<message type='groupchat' id='g2'><body>case</body></message>`, { scan: true });

    await t.sends("alice/a1", `<presence to='${ROOM}/alice'><show>away</show></presence>`);
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice'><show>away</show></presence>`, { scan: true });

    await t.sends("alice/a1", `<presence type='unavailable' to='${ROOM}/alice' id='bye'/>`);
    await t.upstreamReceives("alice/anchor", `<presence type='unavailable' to='${ROOM}/alice'/>`, { scan: true });

    for (const s of ["a1", "a2"]) await t.roundTrip(`alice/${s}`); // after whatever their stanzas made mucmux send on their legs
    for (const s of ["a1", "a2"]) {
      const leaked = t.upstreamLog(`alice/${s}`).filter(toRoom(ROOM));
      assert.deepEqual(leaked.map(show), [], `alice/${s}'s own leg carried stanzas addressed to the room`);
    }
    assert.equal(t.upstreamLog("alice/anchor").filter((el) => el.attrs.id === "g0").length, 0, "a non-occupant's groupchat went upstream");
  }));

test("SPEC B2: two joins 5 ms apart are one upstream join; each session gets its self-presence with its own id", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    for (const [room, label] of [[ROOM, "anchor not yet open"], ["other@conference.localhost", "anchor already online"]] as const) {
      await t.sends("alice/a1", joinXml(room, "alice", `${label}-1`));
      await elapse(5, "the two joins are 5 ms apart");
      await t.sends("alice/a2", joinXml(room, "alice", `${label}-2`));
      const join = await t.upstreamReceives("alice/anchor", `<presence to='${room}/alice'><x xmlns='${MUC}'/></presence>`);
      await t.upstreamReceivesNothing("alice/anchor", (el) => el.name === "presence");
      await t.upstreamSends("alice/anchor", selfPresenceXml({ room, nick: "alice", jid: t.jid("alice/anchor"), id: join.attrs.id ?? "" }) + subjectXml(room, "Hi"));
      for (const s of ["a1", "a2"] as const) {
        await t.receives(`alice/${s}`, `<presence from='${room}/alice' to='${t.jid(`alice/${s}`)}' id='${label}-${s.slice(1)}'>` +
          `<x xmlns='${MUC_USER}'><status code='110'/></x></presence>`);
        await t.receives(`alice/${s}`, `<message type='groupchat' from='${room}'><subject>Hi</subject></message>`);
      }
      await t.upstreamReceivesNothing("alice/anchor", (el) => el.name === "presence");
    }
  }));

test("SPEC B3: the join burst reaches every waiting session with `to` and the self-presence's item jid rewritten", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await t.sends("alice/a1", joinXml(ROOM, "alice", "j1"));
    await elapse(5, "the two joins are 5 ms apart");
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice'><x xmlns='${MUC}'/></presence>`);
    const anchor = t.jid("alice/anchor");
    const h1 = ago(3_600_000);
    const h2 = ago(1_800_000);
    await t.upstreamSends("alice/anchor",
      `<presence from='${ROOM}'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:example' ver='abc='/></presence>` +
      occupantXml(ROOM, "bob", "owner") + occupantXml(ROOM, "carol") +
      selfPresenceXml({ room: ROOM, nick: "alice", jid: anchor, id: "j1", codes: ["110", "100"] }) +
      historyXml(ROOM, "bob", "first", h1, "s1") + historyXml(ROOM, "carol", "second", h2, "s2") +
      subjectXml(ROOM, "Topic"));
    for (const s of ["a1", "a2"] as const) {
      const who = `alice/${s}`;
      const me = t.jid(who);
      await t.receives(who, `<presence from='${ROOM}' to='${me}'><c xmlns='http://jabber.org/protocol/caps' ver='abc='/></presence>`);
      await t.receives(who, `<presence from='${ROOM}/bob' to='${me}'><x xmlns='${MUC_USER}'><item affiliation='owner'/></x></presence>`);
      await t.receives(who, `<presence from='${ROOM}/carol' to='${me}'/>`);
      const self = await t.receives(who, `<presence from='${ROOM}/alice' to='${me}' id='j${s.slice(1)}'>` +
        `<x xmlns='${MUC_USER}'><item jid='${me}'/><status code='110'/><status code='100'/></x></presence>`);
      assert.ok(!show(self).includes(anchor), `the anchor's JID leaked to ${who}: ${show(self)}`);
      await t.receives(who, `<message type='groupchat' from='${ROOM}/bob' to='${me}'><body>first</body>` +
        `<delay xmlns='${DELAY}' stamp='${h1}'/><stanza-id xmlns='${SID}' id='s1'/></message>`);
      await t.receives(who, `<message type='groupchat' from='${ROOM}/carol' to='${me}'><body>second</body>` +
        `<delay xmlns='${DELAY}' stamp='${h2}'/><stanza-id xmlns='${SID}' id='s2'/></message>`);
      await t.receives(who, `<message type='groupchat' from='${ROOM}' to='${me}'><subject>Topic</subject></message>`);
      await t.receivesNothing(who);
    }
  }));

test("SPEC B4: a join while the anchor is joined is answered from cache, in order, honouring <history/>, with nothing upstream", T, () =>
  withTranscript({ users: { alice: ["a1", "a2", "a3", "a4", "a5", "a6"] } }, async (t) => {
    const h1 = ago(2 * 3_600_000);
    const h2 = ago(1_800_000);
    await t.sends("alice/a1", joinXml(ROOM, "alice", "j1"));
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice'><x xmlns='${MUC}'/></presence>`);
    await t.upstreamSends("alice/anchor",
      `<presence from='${ROOM}'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:example' ver='abc='/></presence>` +
      occupantXml(ROOM, "bob", "owner") + occupantXml(ROOM, "carol") +
      selfPresenceXml({ room: ROOM, nick: "alice", jid: t.jid("alice/anchor"), id: "j1", codes: ["110", "100", "170", "201"],
        extra: `<occupant-id xmlns='${OCCUPANT_ID}' id='alice-oid'/>` }) +
      historyXml(ROOM, "bob", "h1", h1, "s1") + historyXml(ROOM, "carol", "h2", h2, "s2") + subjectXml(ROOM, "Topic"));
    await t.collect("alice/a1", isSubject);
    // live traffic after the join: a message (cached with a receipt stamp) and carol leaving (SPEC C8)
    await t.upstreamSends("alice/anchor", `<message type='groupchat' from='${ROOM}/bob' id='m3'><body>m3</body><stanza-id xmlns='${SID}' by='${ROOM}' id='s3'/></message>`);
    await t.receives("alice/a1", `<message from='${ROOM}/bob'><body>m3</body></message>`);
    await t.upstreamSends("alice/anchor", `<presence type='unavailable' from='${ROOM}/carol'><x xmlns='${MUC_USER}'><item affiliation='member' role='none'/></x></presence>`);
    await t.receives("alice/a1", `<presence type='unavailable' from='${ROOM}/carol'/>`);
    await t.upstreamReceivesNothing("alice/anchor"); // settle: the anchor has nothing to say now

    const cases: [string, string, string[]][] = [
      ["a2", "<history maxstanzas='2'/>", ["h2", "m3"]],
      ["a3", "<history seconds='3600'/>", ["h2", "m3"]],
      ["a4", `<history since='${ago(3_600_000)}'/>`, ["h2", "m3"]],
      ["a5", "<history maxchars='0'/>", []],
      ["a6", "", ["h1", "h2", "m3"]],
    ];
    for (const [s, history, expected] of cases) {
      const who = `alice/${s}`;
      const me = t.jid(who);
      // a2 asks for another nick while a1 is joined: it joins as AccountNick with 210 (SPEC B6)
      const nick = s === "a2" ? "alicia" : "alice";
      await t.sends(who, joinXml(ROOM, nick, `join-${s}`, history));
      const got = await t.collect(who, isSubject);
      const kinds = got.map((el) => el.name === "presence" ? (codesOf(el).includes("110") ? "self" : `occupant:${el.attrs.from}`) :
        isSubject(el) ? "subject" : `history:${el.getChildText("body")}`);
      assert.deepEqual(kinds, [`occupant:${ROOM}`, `occupant:${ROOM}/bob`, "self", ...expected.map((b) => `history:${b}`), "subject"], `${who}: ${history}`);
      const self = got[2] as Element;
      assert.equal(self.attrs.from, `${ROOM}/alice`);
      assert.equal(self.attrs.id, `join-${s}`);
      assert.equal(self.attrs.to, me);
      assert.equal(self.attrs.type, undefined);
      assert.deepEqual(codesOf(self).sort(), (s === "a2" ? ["100", "110", "170", "210"] : ["100", "110", "170"]).sort(), `${who} status codes (never 201)`);
      assert.equal(self.getChild("x", MUC_USER)?.getChild("item")?.attrs.jid ?? me, me);
      for (const h of got.filter((el) => el.name === "message" && el.getChild("body"))) {
        const delay = h.getChild("delay", DELAY);
        assert.equal(delay?.attrs.from, ROOM, `history carries <delay from=room>: ${show(h)}`);
        assert.ok(!Number.isNaN(Date.parse(delay?.attrs.stamp ?? "")), show(h));
        const body = h.getChildText("body");
        if (body === "h1") assert.equal(delay?.attrs.stamp, h1, "the original stamp");
        if (body === "h2") assert.equal(delay?.attrs.stamp, h2, "the original stamp");
        assert.equal(h.getChild("stanza-id", SID)?.attrs.id, `s${body?.slice(1)}`, "the original stanza-id");
        assert.equal(h.attrs.to, me);
      }
      assert.equal((got.at(-1) as Element).getChildText("subject"), "Topic");
      await t.receivesNothing(who);
    }
    await t.receivesNothing("alice/a1");
    await t.upstreamReceivesNothing("alice/anchor");
  }));

test("SPEC B4: no room presence when upstream sent none, no 100/170 when upstream had none, an empty <subject/>", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob"), subject: "" });
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
    const got = await t.collect("alice/a2", isSubject);
    assert.deepEqual(got.map((el) => `${el.name}:${el.attrs.from}`), [`presence:${ROOM}/bob`, `presence:${ROOM}/alice`, `message:${ROOM}`], got.map(show).join("\n"));
    assert.deepEqual(codesOf(got[1] as Element), ["110"]);
    const subject = got[2] as Element;
    assert.equal(subject.attrs.type, "groupchat");
    assert.equal(subject.getChildText("subject"), "");
    assert.equal(subject.getChildElements().length, 1, show(subject));
    await t.upstreamReceivesNothing("alice/anchor");
  }));

test("SPEC B5: a join from a session that is already joined replays the cached join to it alone", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await firstJoin(t, "alice/a1", { nick: "alice", id: "j1", burst: occupantXml(ROOM, "bob") + historyXml(ROOM, "bob", "old", ago(60_000), "s1") });
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
    await t.collect("alice/a2", isSubject);
    await t.upstreamReceivesNothing("alice/anchor");

    await t.sends("alice/a1", joinXml(ROOM, "alice", "resync"));
    const me = t.jid("alice/a1");
    await t.receives("alice/a1", `<presence from='${ROOM}/bob' to='${me}'/>`);
    await t.receives("alice/a1", `<presence from='${ROOM}/alice' to='${me}' id='resync'><x xmlns='${MUC_USER}'><status code='110'/></x></presence>`);
    await t.receives("alice/a1", `<message type='groupchat' from='${ROOM}/bob' to='${me}'><body>old</body><delay xmlns='${DELAY}' from='${ROOM}'/><stanza-id xmlns='${SID}' id='s1'/></message>`);
    await t.receives("alice/a1", `<message type='groupchat' from='${ROOM}' to='${me}'><subject>Welcome</subject></message>`);
    await t.receivesNothing("alice/a1");
    await t.receivesNothing("alice/a2");
    await t.upstreamReceivesNothing("alice/anchor");
  }));

test("SPEC B7: a join error reaches every waiting session from room/theirnick with their own id; the next join goes upstream again", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await t.sends("alice/a1", joinXml(ROOM, "alice", "e1"));
    await elapse(5, "the two joins are 5 ms apart");
    await t.sends("alice/a2", joinXml(ROOM, "ally", "e2"));
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice' id='e1'><x xmlns='${MUC}'/></presence>`);
    await t.upstreamSends("alice/anchor", `<presence type='error' from='${ROOM}/alice' id='e1'><x xmlns='${MUC}'/>` +
      `<error type='auth'><registration-required xmlns='${STANZAS}'/></error></presence>`);
    for (const [s, nick, id] of [["a1", "alice", "e1"], ["a2", "ally", "e2"]] as const) {
      await t.receives(`alice/${s}`, `<presence type='error' from='${ROOM}/${nick}' to='${t.jid(`alice/${s}`)}' id='${id}'>` +
        `<error type='auth'><registration-required xmlns='${STANZAS}'/></error></presence>`);
      await t.receivesNothing(`alice/${s}`);
    }
    // nothing is joined: room traffic reaches nobody
    await t.upstreamSends("alice/anchor", `<message type='groupchat' from='${ROOM}/bob' id='late'><body>late</body></message>`);
    await t.receivesNothing("alice/a1");
    await t.receivesNothing("alice/a2");
    // a fresh join is a fresh upstream join
    await t.sends("alice/a2", joinXml(ROOM, "ally", "again"));
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/ally' id='again'><x xmlns='${MUC}'/></presence>`, { scan: true });
    await t.upstreamSends("alice/anchor", selfPresenceXml({ room: ROOM, nick: "ally", jid: t.jid("alice/anchor"), id: "again" }) + subjectXml(ROOM, "Hi"));
    await t.receives("alice/a2", `<presence from='${ROOM}/ally' id='again'><x xmlns='${MUC_USER}'><status code='110'/></x></presence>`);
    await t.receives("alice/a2", `<message type='groupchat' from='${ROOM}'><subject>Hi</subject></message>`);
  }));

test("SPEC B2/B4: a join arriving between the self-presence and the subject is answered from cache once the burst is complete", T, () =>
  withTranscript({ users: { alice: ["a1", "a2"] } }, async (t) => {
    await t.sends("alice/a1", joinXml(ROOM, "alice", "j1"));
    await t.upstreamReceives("alice/anchor", `<presence to='${ROOM}/alice'><x xmlns='${MUC}'/></presence>`);
    await t.upstreamSends("alice/anchor", occupantXml(ROOM, "bob") + selfPresenceXml({ room: ROOM, nick: "alice", jid: t.jid("alice/anchor"), id: "j1" }));
    await t.receives("alice/a1", `<presence from='${ROOM}/bob'/>`);
    await t.receives("alice/a1", `<presence from='${ROOM}/alice' id='j1'/>`);
    await t.sends("alice/a2", joinXml(ROOM, "alice", "j2"));
    await t.receivesNothing("alice/a2"); // the burst is not complete yet
    await t.upstreamSends("alice/anchor", historyXml(ROOM, "bob", "during", ago(5_000), "s9") + subjectXml(ROOM, "Topic"));
    await t.collect("alice/a1", isSubject);
    const me = t.jid("alice/a2");
    await t.receives("alice/a2", `<presence from='${ROOM}/bob' to='${me}'/>`);
    await t.receives("alice/a2", `<presence from='${ROOM}/alice' to='${me}' id='j2'><x xmlns='${MUC_USER}'><status code='110'/></x></presence>`);
    await t.receives("alice/a2", `<message type='groupchat' from='${ROOM}/bob' to='${me}'><body>during</body><stanza-id xmlns='${SID}' id='s9'/></message>`);
    await t.receives("alice/a2", `<message type='groupchat' from='${ROOM}' to='${me}'><subject>Topic</subject></message>`);
    await t.receivesNothing("alice/a2");
    await t.upstreamReceivesNothing("alice/anchor", (el) => el.name === "presence");
  }));
