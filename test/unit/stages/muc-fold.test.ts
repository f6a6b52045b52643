// The account-level MUC stage (src/stages/muc-fold/) driven without sockets: fake sessions whose deliver()
// runs the real chain runner (like Link), a real EventBus and AccountRegistry, and a fake anchor that records
// what it sends. Anchor stanzas enter the way the registry hands them on (the account's IQ tracker first,
// then the runner's anchor entry; test/unit/account/registry.test.ts checks that order). Timers are mocked.
import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Element } from "@xmpp/xml";
import { AccountRegistry } from "../../../src/account/registry.js";
import type { Account } from "../../../src/account/account.js";
import type { Anchor } from "../../../src/account/anchor.js";
import { EventBus } from "../../../src/chain/events.js";
import { createChainRunner, type ChainRunner, type Delivery } from "../../../src/chain/runner.js";
import type { DeliverOptions, Origin, Session } from "../../../src/chain/session.js";
import { emptyViews, type ServicesView } from "../../../src/chain/views.js";
import { createMucFoldStage } from "../../../src/stages/muc-fold/index.js";
import { loadConfig } from "../../../src/config/index.js";
import { createMetrics } from "../../../src/metrics/metrics.js";
import { createLogger } from "../../../src/log.js";
import { clone } from "../../../src/protocol/element.js";
import { serialize } from "../../../src/xml/serialize.js";
import { deferred, flush, stanza } from "../helpers.js";

const ROOM = "room@conference.example.test";
const ANCHOR_JID = "alice@example.test/mucmux-0123abcd";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const MAM = "urn:xmpp:mam:2";

/** The anchor as the stage uses it: state, jid, send (recorded), ready, close. */
class FakeAnchor {
  state: Anchor["state"] = "online";
  jid: string | undefined = ANCHOR_JID;
  readonly sent: Element[] = [];
  send(el: Element): boolean {
    if (this.state !== "online") return false;
    this.sent.push(clone(el)); // the real anchor serializes at once: later changes to `el` never go out
    return true;
  }
  ready(): Promise<boolean> { return Promise.resolve(this.state === "online"); }
  close(): void { this.state = "closed"; }
}

/** The registry, except that the anchor it opens is a fake one (no upstream connection at all). */
class TestRegistry extends AccountRegistry {
  opened = 0;
  override anchorFor(account: Account): Anchor | undefined {
    if (!account.anchor || account.anchor.state === "closed") {
      this.opened++;
      account.anchor = new FakeAnchor() as unknown as Anchor;
    }
    return account.anchor;
  }
}

interface Delivered { el: Element; origin: Origin | undefined; shared: boolean }

/** A session like Link: deliver() runs its outbound chain, then its writer; what it sends passes its c2s chain. */
class FakeSession implements Session {
  readonly slots = new Map<symbol, unknown>();
  online = true;
  /** What reached deliver(), as it was at that moment (fan-out changes `to` per session while it runs). */
  readonly delivered: Delivered[] = [];
  /** What the writer put on the socket. */
  readonly written: string[] = [];
  /** What went out on the session's own upstream leg. */
  readonly leg: Element[] = [];
  private readonly c2s: Delivery = { onward: (el) => this.sendUpstream(el), back: (el) => this.deliver(el) };
  private readonly s2c: Delivery = {
    onward: (el, opts) => void this.written.push(opts?.prepared ? opts.prepared.render(this.jid) : serialize(el)),
    back: (el) => this.sendUpstream(el),
  };

  constructor(readonly id: number, readonly jid: string, private readonly runner: ChainRunner) {}

  deliver(el: Element, opts?: DeliverOptions): void {
    if (!this.online) return opts?.onWritten?.(new Error("session closed"));
    this.delivered.push({ el: clone(el), origin: opts?.origin, shared: opts?.prepared !== undefined });
    this.runner.run("s2c", this, el, this.s2c, opts?.origin ?? "local", opts);
  }

  sendUpstream(el: Element): void { this.leg.push(clone(el)); }

  /** The client sends a stanza: `from` is stamped with the session's JID (SPEC A6), then the c2s chain runs. */
  sends(xml: string): void {
    const el = stanza(xml);
    el.attrs.from = this.jid;
    this.runner.run("c2s", this, el, this.c2s, "client");
  }

  /** Everything delivered since the last call. */
  take(): Delivered[] { return this.delivered.splice(0); }
}

function harness(t: TestContext, services?: ServicesView) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const config = loadConfig({ flags: { domains: "example.test" } });
  const metrics = createMetrics({ version: "test", commit: "test" });
  const log = createLogger("silent");
  const busErrors: unknown[] = [];
  const stageErrors: string[] = [];
  const events = new EventBus((_event, err) => void busErrors.push(err));
  const views = emptyViews();
  if (services) views.services = services;
  const accounts = new TestRegistry({
    log, metrics, events,
    connectUpstream: () => assert.fail("the fake registry never connects"),
    onAnchorStanza: (account, el) => chain.anchor(account, el),
  });
  const stage = createMucFoldStage({ accounts, events, views, config, metrics, log });
  const chain = createChainRunner({ stages: [stage], log, onStageError: (name, kind) => void stageErrors.push(`${name}/${kind}`) });
  let nextId = 1;

  const h = {
    accounts, events, metrics,
    /** A bound session of alice (SPEC A3: the registry holds the account from now on). */
    session(resource: string): FakeSession {
      const s = new FakeSession(nextId++, `alice@example.test/${resource}`, chain);
      accounts.sessionBound(s, { username: "alice", secret: { kind: "password", password: "pw" } });
      return s;
    },
    account(): Account { return accounts.get("alice@example.test") as Account; },
    anchor(): FakeAnchor { return h.account().anchor as unknown as FakeAnchor; },
    /** A stanza arrives on alice's anchor: the tracker takes answers it waits for, the rest goes to the stages. */
    fromAnchor(xml: string): Element {
      const el = stanza(xml);
      const account = h.account();
      if (!account.anchorIqs.take(el)) chain.anchor(account, el);
      return el;
    },
    /** Pending timers (presence debounce, burst) run, and promise reactions settle. */
    async settle(): Promise<void> {
      await flush();
      t.mock.timers.tick(10_000);
      await flush();
    },
    noErrors(): void {
      assert.deepEqual(stageErrors, [], "no stage failed");
      assert.deepEqual(busErrors, [], "no event handler failed");
    },
  };
  return h;
}
type Harness = ReturnType<typeof harness>;

const joinXml = (id: string, nick = "alice") => `<presence to='${ROOM}/${nick}' id='${id}'><x xmlns='${MUC}'/></presence>`;
const BOB = `<presence from='${ROOM}/bob' to='${ANCHOR_JID}'><x xmlns='${MUC_USER}'><item affiliation='member' role='participant'/></x></presence>`;
const selfXml = (id: string) =>
  `<presence from='${ROOM}/alice' to='${ANCHOR_JID}' id='${id}'><x xmlns='${MUC_USER}'>` +
  `<item affiliation='member' role='participant' jid='${ANCHOR_JID}'/><status code='100'/><status code='110'/></x></presence>`;
const HISTORY = `<message type='groupchat' from='${ROOM}/bob' to='${ANCHOR_JID}' id='h1'><body>earlier</body>` +
  `<delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T10:00:00Z'/></message>`;
const SUBJECT = `<message type='groupchat' from='${ROOM}' to='${ANCHOR_JID}' id='subj'><subject>Welcome</subject></message>`;

const codes = (el: Element) => el.getChild("x", MUC_USER)?.getChildren("status").map((s) => s.attrs.code) ?? [];
const itemJid = (el: Element) => el.getChild("x", MUC_USER)?.getChild("item")?.attrs.jid;
const brief = (d: Delivered) => `${d.el.name}#${d.el.attrs.id ?? ""} from=${d.el.attrs.from ?? ""}`;

/** s joins first: one upstream join, then the room's burst (bob, self-presence, history, subject). */
async function firstJoin(h: Harness, s: FakeSession, id = "j1"): Promise<void> {
  s.sends(joinXml(id));
  await flush();
  const join = h.anchor().sent.at(-1);
  assert.equal(join?.name, "presence");
  h.fromAnchor(BOB);
  h.fromAnchor(selfXml(join.attrs.id ?? ""));
  h.fromAnchor(HISTORY);
  h.fromAnchor(SUBJECT);
  await h.settle();
}

/** Two sessions in the room: the first joined upstream, the second answered from the cache; nothing left unread. */
async function twoJoined(h: Harness): Promise<[FakeSession, FakeSession]> {
  const s1 = h.session("phone");
  const s2 = h.session("laptop");
  await firstJoin(h, s1);
  s2.sends(joinXml("j2"));
  await h.settle();
  s1.take();
  s2.take();
  return [s1, s2];
}

describe("muc-fold: joins", () => {
  it("SPEC B1, B2, B3: the first join goes upstream once, on the anchor; the burst reaches the session", async (t) => {
    const h = harness(t);
    const s1 = h.session("phone");
    s1.sends(joinXml("j1"));
    await flush();
    assert.equal(h.accounts.opened, 1, "SPEC A7: the anchor is opened on the first join");
    assert.equal(s1.leg.length, 0, "SPEC B1: nothing on the session's own leg");
    const sent = h.anchor().sent;
    assert.equal(sent.length, 1);
    const join = sent[0] as Element;
    assert.equal(join.attrs.to, `${ROOM}/alice`);
    assert.equal(join.attrs.id, "j1");
    assert.equal(join.attrs.from, undefined, "the server stamps the anchor's JID");
    assert.ok(join.getChild("x", MUC));

    h.fromAnchor(BOB);
    h.fromAnchor(selfXml("j1"));
    h.fromAnchor(HISTORY);
    h.fromAnchor(SUBJECT);
    await h.settle();
    const got = s1.take();
    assert.deepEqual(got.map(brief), [
      `presence# from=${ROOM}/bob`, `presence#j1 from=${ROOM}/alice`, `message#h1 from=${ROOM}/bob`, `message#subj from=${ROOM}`,
    ]);
    for (const d of got) assert.equal(d.el.attrs.to, s1.jid);
    const self = got[1]?.el as Element;
    assert.equal(itemJid(self), s1.jid, "SPEC B3: the self-presence names the session, never the anchor");
    assert.ok(codes(self).includes("110"));
    assert.ok(s1.written.every((x) => !x.includes("mucmux-0123abcd")), "the anchor's JID never reaches the device");
    assert.equal(h.anchor().sent.length, 1, "nothing more upstream");
    assert.equal(s1.leg.length, 0);
    h.noErrors();
  });

  it("SPEC B2: a second join while the first is in flight is folded into it; each gets its own self-presence", async (t) => {
    const h = harness(t);
    const s1 = h.session("phone");
    const s2 = h.session("laptop");
    s1.sends(joinXml("j1"));
    s2.sends(joinXml("j2"));
    await flush();
    assert.equal(h.anchor().sent.length, 1);
    h.fromAnchor(selfXml("j1"));
    h.fromAnchor(SUBJECT);
    await h.settle();
    for (const [s, id] of [[s1, "j1"], [s2, "j2"]] as const) {
      const self = s.take().find((d) => d.el.name === "presence");
      assert.equal(self?.el.attrs.id, id);
      assert.equal(self?.el.attrs.to, s.jid);
      assert.equal(itemJid(self.el), s.jid);
    }
    assert.equal(h.anchor().sent.length, 1);
    assert.deepEqual([...s1.leg, ...s2.leg], []);
    h.noErrors();
  });

  it("SPEC B4: a second session's join is answered from the cache, with nothing more sent upstream", async (t) => {
    const h = harness(t);
    const s1 = h.session("phone");
    await firstJoin(h, s1);
    s1.take();
    const before = h.anchor().sent.length;

    const s2 = h.session("laptop");
    s2.sends(joinXml("j2"));
    await h.settle();
    assert.equal(h.anchor().sent.length, before, "no upstream traffic for a folded join");
    assert.equal(s2.leg.length, 0);
    const got = s2.take();
    assert.deepEqual(got.map(brief), [
      `presence# from=${ROOM}/bob`, `presence#j2 from=${ROOM}/alice`, `message#h1 from=${ROOM}/bob`, `message#subj from=${ROOM}`,
    ]);
    for (const d of got) {
      assert.equal(d.el.attrs.to, s2.jid);
      assert.equal(d.origin, "local", "answered by mucmux itself");
    }
    const self = got[1]?.el as Element;
    assert.deepEqual(codes(self).sort(), ["100", "110"]);
    assert.equal(itemJid(self), s2.jid);
    assert.equal(got[2]?.el.getChild("delay", "urn:xmpp:delay")?.attrs.stamp, "2026-01-01T10:00:00Z");
    assert.equal(got[3]?.el.getChildText("subject"), "Welcome");
    assert.deepEqual(s1.take(), [], "other sessions see nothing");
    h.noErrors();
  });
});

describe("muc-fold: live traffic", () => {
  it("SPEC C1: a groupchat message from the room is delivered once to each joined session, origin anchor, addressed to it", async (t) => {
    const h = harness(t);
    const [s1, s2] = await twoJoined(h);
    const outsider = h.session("tablet"); // online, never joined

    const el = h.fromAnchor(`<message type='groupchat' from='${ROOM}/bob' to='${ANCHOR_JID}' id='live1'><body>hello</body></message>`);
    for (const s of [s1, s2]) {
      const got = s.take();
      assert.equal(got.length, 1, s.jid);
      assert.equal(got[0]?.el.attrs.id, "live1");
      assert.equal(got[0]?.el.attrs.to, s.jid);
      assert.equal(got[0]?.origin, "anchor");
      assert.equal(got[0]?.shared, true, "one serialization shared by both");
      assert.equal(s.written.at(-1), serialize(got[0]?.el as Element), "the writer's bytes are that session's copy");
    }
    assert.deepEqual(outsider.take(), []);
    assert.equal(el.attrs.to, ANCHOR_JID, "the anchor's element is left as it was");
    h.noErrors();
  });

  it("SPEC C5: a session that closes sends nothing to the room and nothing to the other sessions", async (t) => {
    const h = harness(t);
    const [s1, s2] = await twoJoined(h);
    const before = h.anchor().sent.length;

    s2.online = false;
    h.accounts.sessionClosed(s2);
    await h.settle();
    assert.equal(h.anchor().sent.length, before, "nothing to the room");
    assert.deepEqual(s1.take(), [], "nothing to the session that stays");

    h.fromAnchor(`<message type='groupchat' from='${ROOM}/bob' to='${ANCHOR_JID}' id='after'><body>still here?</body></message>`);
    assert.deepEqual(s1.take().map((d) => d.el.attrs.id), ["after"]);
    assert.deepEqual(s2.take(), [], "the closed session is no longer in the room");

    // The last session goes too: the room is kept (SPEC C5) with the anchor's presence xa (SPEC C3), no leave.
    s1.online = false;
    h.accounts.sessionClosed(s1);
    await h.settle();
    const after = h.anchor().sent.slice(before);
    assert.deepEqual(after.map((el) => [el.attrs.type, el.attrs.to, el.getChildText("show")]), [[undefined, `${ROOM}/alice`, "xa"]]);
    assert.equal(h.accounts.get("alice@example.test"), h.account(), "the account is kept while it manages a room");
    h.noErrors();
  });
});

describe("muc-fold: groupchat 1.0 joins", () => {
  const services = (settled: () => boolean, ready: () => Promise<void>): ServicesView => ({
    isService: (domain) => domain.toLowerCase() === "conference.example.test",
    settled: () => settled(),
    ready: () => ready(),
    learn: () => {},
  });

  it("a presence to room/nick without <x> on a known MUC service is folded like a join", async (t) => {
    const h = harness(t, services(() => true, async () => {}));
    const s1 = h.session("phone");
    s1.sends(`<presence to='${ROOM}/alice' id='g1'/>`);
    await flush();
    assert.equal(s1.leg.length, 0, "SPEC B1: not relayed on the leg");
    const join = h.anchor().sent[0];
    assert.equal(join?.attrs.to, `${ROOM}/alice`);
    assert.equal(join?.attrs.id, "g1");
    assert.ok(join?.getChild("x", MUC), "the anchor joins with an <x/>");

    // A directed presence to a contact is not a room join.
    s1.sends(`<presence to='bob@example.test/home' id='p1'/>`);
    assert.deepEqual(s1.leg.map((el) => el.attrs.id), ["p1"]);
    assert.equal(h.anchor().sent.length, 1);
    h.noErrors();
  });

  it("while the MUC services are still being discovered, the presence waits for discovery, then is folded or relayed", async (t) => {
    let settled = false;
    const discovery = deferred<void>();
    const h = harness(t, services(() => settled, () => discovery.promise));
    const s1 = h.session("phone");
    s1.sends(`<presence to='${ROOM}/alice' id='g1'/>`);
    s1.sends(`<presence to='bob@example.test/home' id='p1'/>`);
    await flush();
    assert.equal(s1.leg.length, 0, "held until discovery settles");
    assert.equal(h.account().anchor, undefined);

    settled = true;
    discovery.resolve();
    await flush();
    assert.deepEqual(s1.leg.map((el) => el.attrs.id), ["p1"], "not a room: relayed as it is");
    assert.deepEqual(h.anchor().sent.map((el) => [el.attrs.to, el.attrs.id]), [[`${ROOM}/alice`, "g1"]]);
    h.noErrors();
  });
});

describe("muc-fold: IQs through the anchor", () => {
  it("SPEC C10: a MAM query from one session: results reach that session only, and the final IQ with its own id", async (t) => {
    const h = harness(t);
    const [s1, s2] = await twoJoined(h);

    s1.sends(`<iq type='set' to='${ROOM}' id='mam1'><query xmlns='${MAM}' queryid='f27'/></iq>`);
    const query = h.anchor().sent.at(-1) as Element;
    assert.equal(query.name, "iq");
    assert.notEqual(query.attrs.id, "mam1", "a fresh id upstream");
    assert.equal(query.attrs.from, undefined);
    const wire = query.getChild("query", MAM)?.attrs.queryid ?? "";
    assert.ok(wire !== "" && wire !== "f27", "a queryid of mucmux's own upstream (two devices may choose the same)");
    assert.equal(s1.leg.length, 0);

    for (const n of [1, 2]) {
      h.fromAnchor(`<message from='${ROOM}' to='${ANCHOR_JID}' id='r${n}'><result xmlns='${MAM}' queryid='${wire}' id='arch${n}'>` +
        `<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='groupchat' from='${ROOM}/bob'><body>old ${n}</body></message></forwarded></result></message>`);
    }
    const results = s1.take();
    assert.deepEqual(results.map((d) => d.el.attrs.id), ["r1", "r2"]);
    for (const d of results) {
      assert.equal(d.el.attrs.to, s1.jid);
      assert.equal(d.el.getChild("result", MAM)?.attrs.queryid, "f27", "the device's own queryid again");
      assert.equal(d.origin, "anchor");
    }
    assert.deepEqual(s2.take(), [], "never to the room's audience");

    h.fromAnchor(`<iq type='result' from='${ROOM}' to='${ANCHOR_JID}' id='${query.attrs.id ?? ""}'><fin xmlns='${MAM}' complete='true'/></iq>`);
    await flush();
    const fin = s1.take();
    assert.equal(fin.length, 1);
    assert.equal(fin[0]?.el.name, "iq");
    assert.equal(fin[0]?.el.attrs.id, "mam1");
    assert.equal(fin[0]?.el.attrs.to, s1.jid);
    assert.equal(fin[0]?.el.attrs.type, "result");
    assert.equal(fin[0]?.origin, "anchor");
    assert.ok(fin[0]?.el.getChild("fin", MAM));
    assert.deepEqual(s2.take(), []);
    h.noErrors();
  });

  it("SPEC C11: an occupant's IQ to the account goes to one joined session; its answer goes back on the anchor with the original id", async (t) => {
    const h = harness(t);
    const [s1, s2] = await twoJoined(h);
    const before = h.anchor().sent.length;

    h.fromAnchor(`<iq type='get' from='${ROOM}/bob' to='${ANCHOR_JID}' id='v1'><query xmlns='jabber:iq:version'/></iq>`);
    const [got1, got2] = [s1.take(), s2.take()];
    assert.equal(got1.length + got2.length, 1, "exactly one session gets it");
    const target = got1.length === 1 ? s1 : s2;
    const fwd = (got1[0] ?? got2[0]) as Delivered;
    assert.equal(fwd.el.attrs.from, `${ROOM}/bob`);
    assert.equal(fwd.el.attrs.to, target.jid);
    assert.equal(fwd.origin, "anchor");
    assert.notEqual(fwd.el.attrs.id, "v1", "a fresh id toward the session");
    assert.equal(h.anchor().sent.length, before, "nothing answered upstream yet");

    target.sends(`<iq type='result' to='${ROOM}/bob' id='${fwd.el.attrs.id ?? ""}'><query xmlns='jabber:iq:version'><name>client</name></query></iq>`);
    await flush();
    assert.equal(target.leg.length, 0, "SPEC B1: the answer does not go out on the session's leg");
    const answer = h.anchor().sent.slice(before);
    assert.equal(answer.length, 1);
    assert.equal(answer[0]?.attrs.type, "result");
    assert.equal(answer[0]?.attrs.id, "v1");
    assert.equal(answer[0]?.attrs.to, `${ROOM}/bob`);
    assert.equal(answer[0]?.attrs.from, undefined);
    assert.equal(answer[0]?.getChild("query", "jabber:iq:version")?.getChildText("name"), "client");
    h.noErrors();
  });

  it("SPEC C11: when the session an occupant's IQ went to closes before answering, the occupant gets service-unavailable", async (t) => {
    const h = harness(t);
    const [s1, s2] = await twoJoined(h);
    const before = h.anchor().sent.length;
    h.fromAnchor(`<iq type='get' from='${ROOM}/bob' to='${ANCHOR_JID}' id='v2'><query xmlns='jabber:iq:version'/></iq>`);
    const target = s1.take().length === 1 ? s1 : (s2.take(), s2);
    h.accounts.sessionClosed(target);
    await flush();
    const answer = h.anchor().sent.slice(before);
    assert.equal(answer.length, 1);
    assert.equal(answer[0]?.attrs.type, "error");
    assert.equal(answer[0]?.attrs.id, "v2");
    assert.equal(answer[0]?.attrs.to, `${ROOM}/bob`);
    assert.ok(answer[0]?.getChild("error")?.getChild("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    h.noErrors();
  });
});
