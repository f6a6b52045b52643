// The account registry (src/account/registry.ts) with fake sessions and a fake upstream connector that
// never opens a socket: session-bound/closed events and their payloads, the newest credentials win, an
// idle account is dropped (anchor closed, credentials forgotten, pending IQs cancelled) unless some stage
// answers "account-busy?", and the anchor's stanzas reach the stages only when no pending IQ took them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { AccountRegistry } from "../../../src/account/registry.js";
import type { Account } from "../../../src/account/account.js";
import { EventBus, type Events } from "../../../src/chain/events.js";
import type { Session } from "../../../src/chain/session.js";
import type { LegHandlers, UpstreamLeg, UpstreamOutcome } from "../../../src/stream/upstream.js";
import { createMetrics } from "../../../src/metrics/metrics.js";
import { createLogger } from "../../../src/log.js";

/** An anchor the registry opened (it returns none only for a dropped record). */
function opened<T>(anchor: T | undefined): T {
  assert.ok(anchor, "the registry opened an anchor");
  return anchor;
}
import { flush, iqErrorCondition, stanza } from "../helpers.js";

const ROOM = "room@conference.example.test";

let nextId = 1;
function fakeSession(jid: string | undefined): Session {
  return { id: nextId++, jid, online: true, slots: new Map(), deliver: () => {}, sendUpstream: () => {} };
}

type Connect = (domain: string, username: string, password: string) => Promise<UpstreamOutcome>;

function setup(connect: Connect = () => new Promise<UpstreamOutcome>(() => {})) {
  const handlerErrors: unknown[] = [];
  const events = new EventBus((_event, err) => void handlerErrors.push(err));
  const log: { [K in keyof Events]?: Events[K][] } = {};
  const record = <K extends keyof Events>(name: K) => events.on(name, (p) => void ((log[name] ??= []) as Events[K][]).push(p));
  for (const name of ["session-bound", "session-closed", "anchor-online", "anchor-down"] as const) record(name);
  const connects: [string, string, string][] = [];
  const anchorStanzas: [Account, Element][] = [];
  const metrics = createMetrics({ version: "test", commit: "test" });
  const registry = new AccountRegistry({
    log: createLogger("silent"),
    metrics,
    events,
    connectUpstream: (domain, creds) => {
      const password = creds.secret.kind === "password" ? creds.secret.password : "(key)";
      connects.push([domain, creds.username, password]);
      return connect(domain, creds.username, password);
    },
    onAnchorStanza: (account, el) => void anchorStanzas.push([account, el]),
  });
  return { registry, events, log, connects, anchorStanzas, metrics, handlerErrors };
}

const condition = iqErrorCondition;

describe("AccountRegistry: sessions", () => {
  it("session-bound creates the account record and reports { account, session }", () => {
    const { registry, log } = setup();
    const s1 = fakeSession("Alice@Example.test/phone");
    registry.sessionBound(s1, { username: "alice", secret: { kind: "password", password: "one" } });
    const account = registry.get("alice@example.test");
    assert.ok(account);
    assert.equal(account.bare, "Alice@Example.test");
    assert.equal(account.domain, "Example.test");
    assert.deepEqual(account.credentials, { username: "alice", secret: { kind: "password", password: "one" } });
    assert.deepEqual([...account.sessions], [s1]);
    assert.equal(registry.forSession(s1), account);
    assert.equal(registry.get("ALICE@example.TEST"), account, "looked up case-insensitively");
    assert.equal(registry.size, 1);
    assert.deepEqual(log["session-bound"], [{ account, session: s1 }]);
  });

  it("a session without a bound JID is not an account's", () => {
    const { registry, log } = setup();
    const s = fakeSession(undefined);
    registry.sessionBound(s, { username: "alice", secret: { kind: "password", password: "pw" } });
    assert.equal(registry.size, 0);
    assert.equal(registry.forSession(s), undefined);
    assert.equal(log["session-bound"], undefined);
  });

  it("more sessions of the account share the record; the newest credentials win", () => {
    const { registry, log } = setup();
    const s1 = fakeSession("alice@example.test/phone");
    const s2 = fakeSession("alice@example.test/laptop");
    const bob = fakeSession("bob@example.test/x");
    registry.sessionBound(s1, { username: "alice", secret: { kind: "password", password: "old" } });
    registry.sessionBound(bob, { username: "bob", secret: { kind: "password", password: "bobs" } });
    registry.sessionBound(s2, { username: "alice", secret: { kind: "password", password: "new" } });
    const account = registry.get("alice@example.test");
    assert.ok(account);
    assert.equal(registry.forSession(s2), account);
    assert.deepEqual([...account.sessions], [s1, s2]);
    assert.deepEqual(account.credentials, { username: "alice", secret: { kind: "password", password: "new" } });
    assert.deepEqual(registry.get("bob@example.test")?.credentials, { username: "bob", secret: { kind: "password", password: "bobs" } });
    assert.deepEqual(log["session-bound"]?.map((p) => [p.account, p.session]), [[account, s1], [registry.get("bob@example.test"), bob], [account, s2]]);
  });

  it("session-closed reports { account, session } once, for bound sessions only; the account stays while it has sessions", () => {
    const { registry, log, events } = setup();
    let asked = 0;
    events.on("account-busy?", () => void asked++);
    const s1 = fakeSession("alice@example.test/phone");
    const s2 = fakeSession("alice@example.test/laptop");
    registry.sessionBound(s1, { username: "alice", secret: { kind: "password", password: "pw" } });
    registry.sessionBound(s2, { username: "alice", secret: { kind: "password", password: "pw" } });
    const account = registry.get("alice@example.test");
    registry.sessionClosed(s1);
    registry.sessionClosed(s1);
    registry.sessionClosed(fakeSession("alice@example.test/never-bound"));
    assert.deepEqual(log["session-closed"], [{ account, session: s1 }]);
    assert.equal(registry.forSession(s1), undefined);
    assert.deepEqual([...(account?.sessions ?? [])], [s2]);
    assert.equal(registry.get("alice@example.test"), account);
    assert.equal(asked, 0, "not idle: nobody is asked");
  });
});

describe("AccountRegistry: dropping idle accounts", () => {
  it("keeps the account while a handler of account-busy? says true; drops it (disposed, IQs cancelled) once none does", async () => {
    const { registry, events } = setup();
    let busy = true;
    const asked: Account[] = [];
    events.on("account-busy?", ({ account }) => { asked.push(account); return busy; });
    events.on("account-busy?", () => false);
    const s1 = fakeSession("alice@example.test/phone");
    registry.sessionBound(s1, { username: "alice", secret: { kind: "password", password: "secret" } });
    const account = registry.get("alice@example.test");
    assert.ok(account);
    const anchor = opened(registry.anchorFor(account)); // connecting (the fake connector never answers)
    const anchorIq = condition(account.anchorIqs.request(stanza(`<iq type='get' to='${ROOM}' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`), () => true));
    const sessionIq = condition(account.sessionIqs.request(stanza(`<iq type='get' to='alice@example.test/phone' id='y'><ping xmlns='urn:xmpp:ping'/></iq>`), () => true));
    const slot = Symbol("test");
    account.slot(slot, () => "state");

    registry.sessionClosed(s1);
    assert.deepEqual(asked, [account]);
    assert.equal(registry.get("alice@example.test"), account, "kept: a stage still needs it");
    assert.deepEqual(account.credentials, { username: "alice", secret: { kind: "password", password: "secret" } }, "the anchor still needs the credentials (SPEC A3)");
    assert.equal(account.anchor, anchor);
    assert.equal(account.anchorIqs.size, 1);

    busy = false;
    registry.dropIfIdle(account);
    assert.equal(asked.length, 2);
    assert.equal(registry.get("alice@example.test"), undefined);
    assert.equal(registry.size, 0);
    assert.equal(account.credentials, undefined, "SPEC A3: dropped with the record");
    assert.equal(account.anchor, undefined);
    assert.equal(anchor.state, "closed");
    assert.equal(await anchor.ready(), false);
    assert.equal(await anchorIq, "cancelled");
    assert.equal(await sessionIq, "cancelled");
    assert.equal(account.slots.size, 0);

    // A later login starts a new record.
    const s2 = fakeSession("alice@example.test/phone");
    registry.sessionBound(s2, { username: "alice", secret: { kind: "password", password: "secret" } });
    assert.notEqual(registry.get("alice@example.test"), account);
  });

  it("drops an idle account at once when nobody answers account-busy?", () => {
    const { registry } = setup();
    const s = fakeSession("alice@example.test/phone");
    registry.sessionBound(s, { username: "alice", secret: { kind: "password", password: "pw" } });
    const account = registry.get("alice@example.test");
    registry.sessionClosed(s);
    assert.equal(registry.size, 0);
    assert.equal(account?.credentials, undefined);
  });

  it("dropIfIdle leaves an account with sessions, and a record that was already replaced, alone", () => {
    const { registry, events } = setup();
    let asked = 0;
    events.on("account-busy?", () => void asked++);
    const s = fakeSession("alice@example.test/phone");
    registry.sessionBound(s, { username: "alice", secret: { kind: "password", password: "pw" } });
    const account = registry.get("alice@example.test") as Account;
    registry.dropIfIdle(account);
    assert.equal(registry.get("alice@example.test"), account);
    registry.sessionClosed(s); // dropped
    registry.sessionBound(fakeSession("alice@example.test/new"), { username: "alice", secret: { kind: "password", password: "pw2" } });
    const fresh = registry.get("alice@example.test");
    asked = 0;
    registry.dropIfIdle(account); // the old record
    assert.equal(asked, 0);
    assert.equal(registry.get("alice@example.test"), fresh);
    assert.deepEqual(fresh?.credentials, { username: "alice", secret: { kind: "password", password: "pw2" } });
  });
});

/** A leg whose wire records writes; its handlers are what the anchor installs. */
function fakeLeg() {
  const written: string[] = [];
  let handlers: LegHandlers | undefined;
  let destroyed = 0;
  const leg = {
    wire: { write: (s: string) => { written.push(s); return true; }, destroy: () => void destroyed++, end: () => {} },
    features: {},
    setHandlers: (h: LegHandlers) => { handlers = h; },
  } as unknown as UpstreamLeg;
  return {
    leg, written,
    handlers: () => { assert.ok(handlers, "the anchor installed its handlers"); return handlers; },
    destroyed: () => destroyed,
  };
}

describe("AccountRegistry: anchors", () => {
  it("a dropped record gets no anchor (a late timer or held stanza must not log in with it); account-disposed is told first", () => {
    const { registry, events, connects } = setup();
    const disposed: Account[] = [];
    events.on("account-disposed", ({ account }) => void disposed.push(account));
    const s1 = fakeSession("alice@example.test/phone");
    registry.sessionBound(s1, { username: "alice", secret: { kind: "password", password: "one" } });
    const account = registry.get("alice@example.test");
    assert.ok(account);
    registry.sessionClosed(s1);
    assert.deepEqual(disposed, [account]);
    assert.equal(account.disposed, true);
    assert.equal(registry.anchorFor(account), undefined);
    assert.deepEqual(connects, [], "nothing logged in");
  });

  it("anchorFor opens one anchor per account with the account's current credentials", () => {
    const { registry, connects } = setup();
    const s = fakeSession("alice@example.test/phone");
    registry.sessionBound(s, { username: "alice", secret: { kind: "password", password: "pw1" } });
    registry.sessionBound(fakeSession("alice@example.test/laptop"), { username: "alice", secret: { kind: "password", password: "pw2" } });
    const account = registry.get("alice@example.test") as Account;
    const anchor = opened(registry.anchorFor(account));
    assert.equal(registry.anchorFor(account), anchor);
    assert.equal(account.anchor, anchor);
    assert.equal(anchor.state, "connecting");
    assert.match(anchor.resource, /^mucmux-[0-9a-f]{8}$/);
    assert.deepEqual(connects, [["example.test", "alice", "pw2"]]);
    registry.closeAll();
    assert.equal(anchor.state, "closed");
  });

  it("credentials refused: anchor-down (permanent), pending anchor IQs cancelled, ready() false; the next anchorFor opens a new one", async () => {
    const refused: UpstreamOutcome = { ok: false, reason: "sasl", condition: "not-authorized", text: undefined, mechanism: "PLAIN" };
    const { registry, log, connects } = setup(async () => refused);
    registry.sessionBound(fakeSession("alice@example.test/phone"), { username: "alice", secret: { kind: "password", password: "changed" } });
    const account = registry.get("alice@example.test") as Account;
    const anchor = opened(registry.anchorFor(account));
    const iq = condition(account.anchorIqs.request(stanza(`<iq type='get' to='${ROOM}' id='x'/>`), () => true));
    const ready = anchor.ready();
    await flush();
    assert.equal(await ready, false);
    assert.deepEqual(log["anchor-down"], [{ account, permanent: true }]);
    assert.equal(anchor.state, "closed");
    assert.equal(await iq, "cancelled");
    const again = opened(registry.anchorFor(account));
    assert.notEqual(again, anchor);
    assert.equal(connects.length, 2);
    registry.closeAll();
  });

  it("a connect failure is not permanent: anchor-down (permanent false), then a retry after the backoff", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { registry, log, connects } = setup(async () => ({ ok: false, reason: "connect", detail: "ECONNREFUSED" }));
    registry.sessionBound(fakeSession("alice@example.test/phone"), { username: "alice", secret: { kind: "password", password: "pw" } });
    const account = registry.get("alice@example.test") as Account;
    const anchor = opened(registry.anchorFor(account));
    await flush();
    assert.deepEqual(log["anchor-down"], [{ account, permanent: false }]);
    assert.equal(anchor.state, "backoff");
    assert.equal(registry.anchorFor(account), anchor, "still the account's anchor");
    t.mock.timers.tick(1250); // 1 s ±25 %
    await flush();
    assert.equal(connects.length, 2);
    registry.closeAll();
    assert.equal(anchor.state, "closed");
  });

  it("the newest credentials win for the anchor too: a reconnect after a password change logs in with the new password", async (t) => {
    // The user changed the password and logged in again; then the anchor's stream dropped. Reconnecting
    // with the old password is refused (not-authorized: permanent), and every room is lost (SPEC A9 wants a re-join).
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { registry, connects } = setup(async () => ({ ok: false, reason: "connect", detail: "ECONNREFUSED" }));
    registry.sessionBound(fakeSession("alice@example.test/phone"), { username: "alice", secret: { kind: "password", password: "old" } });
    const account = registry.get("alice@example.test") as Account;
    registry.anchorFor(account);
    await flush();
    registry.sessionBound(fakeSession("alice@example.test/laptop"), { username: "alice", secret: { kind: "password", password: "new" } });
    t.mock.timers.tick(1250);
    await flush();
    registry.closeAll();
    assert.deepEqual(connects, [["example.test", "alice", "old"], ["example.test", "alice", "new"]]);
  });

  it("anchor stanzas go to the account's pending IQs first; only the others reach onAnchorStanza", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const fake = fakeLeg();
    const { registry, log, anchorStanzas, metrics } = setup(async () => ({ ok: true, leg: fake.leg, mechanism: "SCRAM-SHA-256", successData: "" }));
    registry.sessionBound(fakeSession("alice@example.test/phone"), { username: "alice", secret: { kind: "password", password: "pw" } });
    const account = registry.get("alice@example.test") as Account;
    const anchor = opened(registry.anchorFor(account));
    await flush();
    // SPEC A7: the anchor binds its own resource and sends nothing else (no presence, no carbons).
    assert.equal(fake.written.length, 1);
    assert.match(fake.written[0] ?? "", new RegExp(`<iq type='set' id='bind-${anchor.resource}'>.*<resource>${anchor.resource}</resource>`));
    const anchorJid = `alice@example.test/${anchor.resource}`;
    fake.handlers().onElement(stanza(
      `<iq type='result' id='bind-${anchor.resource}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${anchorJid}</jid></bind></iq>`), 0);
    assert.equal(anchor.state, "online");
    assert.equal(anchor.jid, anchorJid);
    assert.deepEqual(log["anchor-online"], [{ account, reconnected: false }]);
    assert.equal((await metrics.anchorsOpen.get()).values[0]?.value, 1);

    const query = stanza(`<iq type='get' to='${ROOM}' from='alice@example.test/phone' id='client'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const answered = account.anchorIqs.request(query, (iq) => account.sendViaAnchor(iq));
    const id = query.attrs.id ?? "";
    assert.equal(fake.written[1], `<iq type='get' to='${ROOM}' id='${id}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
      "sent on the anchor without a from (the server stamps the anchor's)");
    const answer = stanza(`<iq type='result' from='${ROOM}' to='${anchorJid}' id='${id}'/>`);
    fake.handlers().onElement(answer, 0);
    assert.equal(await answered, answer);
    assert.deepEqual(anchorStanzas, [], "the answer was the tracker's, no stage's");

    const live = stanza(`<message type='groupchat' from='${ROOM}/bob' to='${anchorJid}'><body>hi</body></message>`);
    fake.handlers().onElement(live, 0);
    assert.deepEqual(anchorStanzas, [[account, live]]);

    // The stream drops: what is in flight can no longer be answered on it.
    const inFlight = condition(account.anchorIqs.request(stanza(`<iq type='get' to='${ROOM}' id='z'/>`), (iq) => account.sendViaAnchor(iq)));
    fake.handlers().onStreamClose();
    assert.equal(await inFlight, "cancelled");
    assert.deepEqual(log["anchor-down"], [{ account, permanent: false }]);
    assert.equal(anchor.state, "backoff");
    assert.equal(fake.destroyed(), 1);
    assert.equal((await metrics.anchorsOpen.get()).values[0]?.value, 0);
    registry.closeAll();
  });
});
