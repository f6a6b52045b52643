// The IQ tracker (src/protocol/iq-tracker.ts): fresh ids, answers matched by id and by where the IQ went,
// timeouts (mock timers, no waiting), abort signals, sends that fail, cancelAll, and XEP-0313 archive
// results handed to the query that asked for them (by queryid, or by the queried JID without one).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { IqTracker, resultOf } from "../../../src/protocol/iq-tracker.js";
import { iqErrorCondition, stanza } from "../helpers.js";

const ROOM = "room@conference.example.test";
const OTHER = "other@conference.example.test";
const MAM = "urn:xmpp:mam:2";

const tracker = (timeoutMs = 10_000) => new IqTracker({ prefix: "tst", timeoutMs });

/** For requests a test leaves pending: their eventual rejection is expected, not unhandled. */
const ignore = (p: Promise<unknown>) => void p.catch(() => {});

/** A send function that records what went out and answers `ok`. */
function sender(ok = true) {
  const sent: Element[] = [];
  return { sent, send: (iq: Element) => { sent.push(iq); return ok; } };
}

const get = (to: string | undefined, id = "client-id") =>
  stanza(`<iq type='get'${to === undefined ? "" : ` to='${to}'`} id='${id}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
const mamQuery = (to: string, queryid?: string) =>
  stanza(`<iq type='set' to='${to}' id='client-q'><query xmlns='${MAM}'${queryid === undefined ? "" : ` queryid='${queryid}'`}/></iq>`);
const result = (from: string | undefined, id: string, type = "result") =>
  stanza(`<iq type='${type}'${from === undefined ? "" : ` from='${from}'`} id='${id}'/>`);
const archived = (from: string, queryid: string | undefined, n: number) => stanza(
  `<message from='${from}' to='alice@example.test/mucmux-0123abcd'><result xmlns='${MAM}'${queryid === undefined ? "" : ` queryid='${queryid}'`} id='a${n}'>` +
  `<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='groupchat' from='${from}/bob'><body>old ${n}</body></message></forwarded></result></message>`,
);

const condition = iqErrorCondition;

/** Has the promise settled yet (after the reactions queued so far)? */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe("IqTracker: requests and answers", () => {
  it("sends the IQ with a fresh id of its own (replacing the caller's) and counts it pending", () => {
    const t = tracker();
    const { sent, send } = sender();
    const a = get(ROOM);
    const b = get(ROOM);
    ignore(t.request(a, send));
    ignore(t.request(b, send));
    assert.deepEqual(sent, [a, b]);
    const [ida, idb] = [a.attrs.id ?? "", b.attrs.id ?? ""];
    assert.match(ida, /^tst[0-9a-f]{12}$/);
    assert.notEqual(ida, "client-id");
    assert.notEqual(ida, idb);
    assert.equal(t.size, 2);
  });

  it("an answer (result or error) with that id from where the IQ went resolves it and is taken", async () => {
    const t = tracker();
    const { send } = sender();
    const iq = get(ROOM);
    const p = t.request(iq, send);
    const answer = result(ROOM, iq.attrs.id ?? "");
    assert.equal(t.take(answer), true);
    assert.equal(await p, answer);
    assert.equal(t.size, 0);
    assert.equal(t.take(result(ROOM, iq.attrs.id ?? "")), false, "answered once only");

    const iq2 = get(ROOM);
    const p2 = t.request(iq2, send);
    const error = result(ROOM.toUpperCase(), iq2.attrs.id ?? "", "error");
    assert.equal(t.take(error), true, "an error answers too; JIDs compare case-insensitively");
    assert.equal(await p2, error);
  });

  it("an answer from another JID, an unknown id or a get/set with the id is not taken", async () => {
    const t = tracker();
    const iq = get(`${ROOM}/bob`);
    const p = t.request(iq, sender().send);
    const id = iq.attrs.id ?? "";
    assert.equal(t.take(result(OTHER, id)), false);
    assert.equal(t.take(result(ROOM, id)), false, "the room's bare JID is not the occupant the IQ went to");
    assert.equal(t.take(result(undefined, id)), false, "no from is not the occupant either");
    assert.equal(t.take(stanza(`<iq type='set' from='${ROOM}/bob' id='${id}'/>`)), false);
    assert.equal(t.take(result(`${ROOM}/bob`, "tst000000000000")), false);
    assert.equal(await settled(p), false, "still pending");
    assert.equal(t.take(result(`${ROOM}/bob`, id)), true);
    await p;
  });

  it("an IQ without `to` (the account's own bare JID) is answered without a from", async () => {
    const t = tracker();
    const iq = get(undefined);
    const p = t.request(iq, sender().send);
    assert.equal(t.take(result(undefined, iq.attrs.id ?? "")), true);
    await p;
  });
});

describe("IqTracker: timeouts, cancellation, sending", () => {
  it("rejects with condition timeout when no answer comes in time (the tracker's default or the request's own)", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const tr = tracker(5000);
    const iq = get(ROOM);
    const p = tr.request(iq, sender().send);
    const q = tr.request(get(ROOM), sender().send, { timeoutMs: 100 });
    t.mock.timers.tick(99);
    assert.equal(await settled(q), false);
    t.mock.timers.tick(1);
    assert.equal(await condition(q), "timeout");
    t.mock.timers.tick(4899);
    assert.equal(await settled(p), false);
    t.mock.timers.tick(1);
    assert.equal(await condition(p), "timeout");
    assert.equal(tr.size, 0);
    assert.equal(tr.take(result(ROOM, iq.attrs.id ?? "")), true, "a late answer is taken (and dropped), never passed on");
    assert.equal(tr.take(result(ROOM, iq.attrs.id ?? "")), false, "once");
  });

  it("an answer clears the timer: no rejection afterwards", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const tr = tracker(100);
    const iq = get(ROOM);
    const p = tr.request(iq, sender().send);
    tr.take(result(ROOM, iq.attrs.id ?? ""));
    t.mock.timers.tick(1000);
    await p; // resolved, not rejected
  });

  it("rejects with condition cancelled when the signal aborts; an already aborted signal sends nothing", async () => {
    const tr = tracker();
    const ac = new AbortController();
    const iq = get(ROOM);
    const p = tr.request(iq, sender().send, { signal: ac.signal });
    ac.abort();
    assert.equal(await condition(p), "cancelled");
    assert.equal(tr.size, 0);
    assert.equal(tr.take(result(ROOM, iq.attrs.id ?? "")), false);

    const { sent, send } = sender();
    assert.equal(await condition(tr.request(get(ROOM), send, { signal: ac.signal })), "cancelled");
    assert.deepEqual(sent, []);
    assert.equal(tr.size, 0);
  });

  it("rejects with condition not-sent when send returns false (or throws), leaving nothing pending", async () => {
    const tr = tracker();
    const iq = get(ROOM);
    const p = tr.request(iq, sender(false).send);
    assert.equal(await condition(p), "not-sent");
    assert.equal(tr.size, 0);
    assert.equal(tr.take(result(ROOM, iq.attrs.id ?? "")), false);
    const thrown = tr.request(get(ROOM), () => { throw new Error("socket gone"); });
    assert.equal(await condition(thrown), "not-sent");
    assert.equal(tr.size, 0);
  });

  it("cancelAll rejects everything pending with condition cancelled", async () => {
    const tr = tracker();
    const ps = [tr.request(get(ROOM), sender().send), tr.request(get(OTHER), sender().send),
      tr.request(mamQuery(ROOM, "q1"), sender().send, { collect: () => {} })];
    tr.cancelAll();
    assert.equal(tr.size, 0);
    for (const p of ps) assert.equal(await condition(p), "cancelled");
    assert.equal(tr.take(archived(ROOM, "q1", 1)), false);
  });
});

describe("IqTracker: archive results (XEP-0313)", () => {
  it("messages with the query's queryid go to its collect and are taken; after the final IQ they are not", async () => {
    const tr = tracker();
    const got: Element[] = [];
    const iq = mamQuery(ROOM, "f27");
    const p = tr.request(iq, sender().send, { collect: (m) => void got.push(m) });
    const wire = iq.getChild("query")?.attrs.queryid ?? "";
    assert.ok(wire !== "f27" && wire !== "", "the query goes out with a queryid of the tracker's own");
    const r1 = archived(ROOM, wire, 1);
    const r2 = archived(ROOM, wire, 2);
    assert.equal(tr.take(r1), true);
    assert.equal(tr.take(r2), true);
    assert.deepEqual(got, [r1, r2]);
    assert.deepEqual(got.map((m) => m.getChild("result")?.attrs.queryid), ["f27", "f27"], "the requester's queryid is put back");
    assert.equal(tr.take(result(ROOM, iq.attrs.id ?? "")), true);
    await p;
    assert.equal(tr.take(archived(ROOM, wire, 3)), false);
    assert.equal(got.length, 2);
  });

  it("two requesters that chose the same queryid each get their own results", () => {
    const tr = tracker();
    const phone: Element[] = [];
    const laptop: Element[] = [];
    const q1 = mamQuery(ROOM, "q1");
    const q2 = mamQuery(ROOM, "q1");
    ignore(tr.request(q1, sender().send, { collect: (m) => void phone.push(m) }));
    ignore(tr.request(q2, sender().send, { collect: (m) => void laptop.push(m) }));
    const w1 = q1.getChild("query")?.attrs.queryid ?? "";
    const w2 = q2.getChild("query")?.attrs.queryid ?? "";
    assert.notEqual(w1, w2);
    assert.equal(tr.take(archived(ROOM, w1, 1)), true);
    assert.equal(tr.take(archived(ROOM, w2, 2)), true);
    assert.equal(tr.take(archived(ROOM, w1, 3)), true);
    assert.deepEqual([phone.length, laptop.length], [2, 1]);
  });

  it("a result with another queryid, or with the right one from another JID, is not taken", () => {
    const tr = tracker();
    const got: Element[] = [];
    ignore(tr.request(mamQuery(ROOM, "f27"), sender().send, { collect: (m) => void got.push(m) }));
    assert.equal(tr.take(archived(ROOM, "other", 1)), false);
    assert.equal(tr.take(archived(OTHER, "f27", 2)), false);
    assert.deepEqual(got, []);
  });

  it("results without queryid (a server that does not echo it) go to the oldest collecting query to the same JID", async () => {
    const tr = tracker();
    const first: Element[] = [];
    const second: Element[] = [];
    const elsewhere: Element[] = [];
    const q1 = mamQuery(ROOM);
    const p1 = tr.request(q1, sender().send, { collect: (m) => void first.push(m) });
    ignore(tr.request(mamQuery(ROOM), sender().send, { collect: (m) => void second.push(m) }));
    ignore(tr.request(mamQuery(OTHER), sender().send, { collect: (m) => void elsewhere.push(m) }));

    assert.equal(tr.take(archived(ROOM, undefined, 1)), true);
    assert.equal(tr.take(archived(OTHER, undefined, 2)), true);
    assert.deepEqual([first.length, second.length, elsewhere.length], [1, 0, 1]);

    tr.take(result(ROOM, q1.attrs.id ?? ""));
    await p1;
    assert.equal(tr.take(archived(ROOM, undefined, 3)), true);
    assert.deepEqual([first.length, second.length, elsewhere.length], [1, 1, 1], "the next oldest takes over");
  });

  it("unrelated messages are not taken: no result, a non-archive result, no collecting query, or nothing pending", () => {
    const tr = tracker();
    assert.equal(tr.take(archived(ROOM, "f27", 0)), false, "nothing pending");
    // A query sent without collect does not collect, even with a queryid.
    ignore(tr.request(mamQuery(ROOM, "f27"), sender().send));
    assert.equal(tr.take(archived(ROOM, "f27", 1)), false);
    const got: Element[] = [];
    ignore(tr.request(mamQuery(ROOM, "q2"), sender().send, { collect: (m) => void got.push(m) }));
    assert.equal(tr.take(stanza(`<message type='groupchat' from='${ROOM}/bob'><body>live</body></message>`)), false);
    assert.equal(tr.take(stanza(`<message from='${ROOM}'><result xmlns='urn:example:not-mam' queryid='q2'/></message>`)), false);
    assert.equal(tr.take(stanza(`<presence from='${ROOM}/bob'/>`)), false);
    assert.deepEqual(got, []);
  });

  it("resultOf finds the archive <result> of any XEP-0313 version", () => {
    assert.equal(resultOf(archived(ROOM, "x", 1))?.attrs.queryid, "x");
    assert.ok(resultOf(stanza(`<message><result xmlns='urn:xmpp:mam:1' id='1'/></message>`)));
    assert.equal(resultOf(stanza(`<message><result xmlns='urn:xmpp:mam:tmp' id='1'/></message>`)), undefined);
    assert.equal(resultOf(stanza(`<message><body>x</body></message>`)), undefined);
  });
});
