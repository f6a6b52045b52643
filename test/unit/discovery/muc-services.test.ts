// MUC service discovery (XEP-0030) against a scripted disco tree: what counts as a MUC service, what a
// failed answer keeps, when discovery runs again (an injected clock, not real timers), the bound on
// ready(), muc.services turning it all off, and the bound on learnt domains.
import { afterEach, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { Element } from "@xmpp/xml";
import { loadConfig } from "../../../src/config/index.js";
import { createLogger } from "../../../src/log.js";
import {
  createMucServices, MAX_LEARNED, REFRESH_MS, RETRY_MIN_MS, type IqQuery, type MucServices,
} from "../../../src/discovery/muc-services.js";
import { MAX_ITEMS, PARALLEL } from "../../../src/discovery/run.js";

const ITEMS = "http://jabber.org/protocol/disco#items";
const INFO = "http://jabber.org/protocol/disco#info";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** What an entity answers: a list, or an error, or nothing at all (the query times out). */
type Answer<T> = T | "error" | "timeout";
interface Entity {
  items?: Answer<(string | { jid: string; node: string })[]>;
  identities?: Answer<[category: string, type: string][]>;
}

/** A fake server answering disco queries from `tree` (changeable between runs); records every IQ sent. */
function fakeServer(tree: Record<string, Entity>) {
  const sent: Element[] = [];
  const query: IqQuery = async (iq) => {
    sent.push(iq);
    const to = iq.attrs.to ?? "";
    const xmlns = iq.getChild("query")?.attrs.xmlns;
    const entity = tree[to];
    const answer = xmlns === ITEMS ? entity?.items : xmlns === INFO ? entity?.identities : undefined;
    if (answer === "timeout") return undefined;
    if (answer === undefined || answer === "error") {
      const error = new Element("iq", { type: "error", id: iq.attrs.id, from: to });
      error.c("error", { type: "cancel" }).c(entity ? "feature-not-implemented" : "item-not-found", { xmlns: STANZAS });
      return error;
    }
    const result = new Element("iq", { type: "result", id: iq.attrs.id, from: to });
    const q = result.c("query", { xmlns });
    for (const a of answer) {
      if (Array.isArray(a)) q.c("identity", { category: a[0], type: a[1], name: "secret room list" });
      else q.c("item", typeof a === "string" ? { jid: a, name: "a name" } : a);
    }
    q.c("feature", { var: INFO });
    return result;
  };
  return { query, sent, asked: (xmlns: string) => sent.filter((iq) => iq.getChild("query")?.attrs.xmlns === xmlns).map((iq) => iq.attrs.to) };
}

/** Lets every answered query and the run's bookkeeping settle (the fake answers in microtasks). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

let open: MucServices[] = [];
afterEach(() => {
  for (const s of open) s.close();
  open = [];
});

function setup(flags: Record<string, string> = {}) {
  let clock = 1_000_000;
  const lines: string[] = [];
  const log = createLogger("debug", { write: (l: string) => void lines.push(l) });
  const config = loadConfig({ flags: { domains: "example.test", ...flags } });
  const services = createMucServices({ config, log, now: () => clock });
  open.push(services);
  const logged = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { services, logged, advance: (ms: number) => void (clock += ms) };
}

const TREE = (): Record<string, Entity> => ({
  "example.test": {
    items: ["conference.example.test", "upload.example.test", "pubsub.example.test", "irc.example.test",
      "room@conference.example.test", { jid: "example.test", node: "announce" }, { jid: "nodes.example.test", node: "x" }, "bad_name.test"],
    identities: [["server", "im"]],
  },
  "conference.example.test": { identities: [["conference", "text"]] },
  "upload.example.test": { identities: [["store", "file"]] },
  "pubsub.example.test": { identities: [["pubsub", "service"]] },
  "irc.example.test": { identities: [["conference", "irc"]] },
});

describe("MUC service discovery", () => {
  it("finds the conference/text items of the served domain; others, nodes, users and IRC gateways are not services", async () => {
    const { services, logged } = setup();
    const server = fakeServer(TREE());
    services.discover("example.test", server.query);
    await services.ready("example.test");
    assert.deepEqual(services.list(), ["conference.example.test"]);
    assert.equal(services.isService("conference.example.test"), true);
    for (const d of ["upload.example.test", "pubsub.example.test", "irc.example.test", "example.test", "nodes.example.test"]) {
      assert.equal(services.isService(d), false, d);
    }
    // Asked: the domain's items and info, then info of each plain-domain item; never a node, user or bad name.
    assert.deepEqual(server.asked(ITEMS), ["example.test"]);
    assert.deepEqual(server.asked(INFO).sort(),
      ["conference.example.test", "example.test", "irc.example.test", "pubsub.example.test", "upload.example.test"]);
    for (const iq of server.sent) {
      assert.equal(iq.attrs.type, "get");
      assert.match(iq.attrs.id ?? "", /^mmd-[0-9a-f]{16}$/);
      assert.equal(iq.getChild("query")?.children.length, 0);
    }
    assert.equal(new Set(server.sent.map((iq) => iq.attrs.id)).size, server.sent.length, "a fresh id per IQ");
    // One info line with the domains found; nothing else of the stanzas (names, features) is logged.
    const infos = logged().filter((l) => l.msg === "muc services discovered");
    assert.deepEqual(infos.map((l) => [l.served, l.services, l.level]), [["example.test", ["conference.example.test"], 30]]);
    assert.equal(logged().length, 1);
    assert.doesNotMatch(JSON.stringify(logged()), /secret room list|a name|disco#info|announce/);
  });

  it("takes the served domain itself when its own disco#info says conference/text", async () => {
    const { services } = setup();
    const tree = TREE();
    tree["example.test"] = { items: [], identities: [["server", "im"], ["conference", "text"]] };
    services.discover("Example.Test", fakeServer(tree).query);
    await services.ready("example.test");
    assert.deepEqual(services.list(), ["example.test"]);
  });

  it("error and timeout answers keep what earlier runs knew; a successful answer replaces it", async () => {
    const { services, logged, advance } = setup();
    const tree = TREE();
    tree["example.test"] = { items: ["conference.example.test", "chat.example.test", "old.example.test"], identities: [["server", "im"]] };
    tree["chat.example.test"] = { identities: [["conference", "text"]] };
    tree["old.example.test"] = { identities: [["conference", "text"]] };
    const root = tree["example.test"] as Entity;
    const server = fakeServer(tree);
    services.discover("example.test", server.query);
    await services.ready("example.test");
    assert.deepEqual(services.list(), ["chat.example.test", "conference.example.test", "old.example.test"]);

    // Next run: one service's info fails, another's times out, one is no longer a MUC, a new one appears.
    root.items = ["conference.example.test", "chat.example.test", "old.example.test", "new.example.test", "lost.example.test"];
    tree["conference.example.test"] = { identities: "error" };
    tree["chat.example.test"] = { identities: "timeout" };
    tree["old.example.test"] = { identities: [["directory", "chatroom"]] };
    tree["new.example.test"] = { identities: [["conference", "text"]] };
    tree["lost.example.test"] = { identities: "timeout" };
    advance(REFRESH_MS);
    services.discover("example.test", server.query);
    await settle();
    assert.deepEqual(services.list(), ["chat.example.test", "conference.example.test", "new.example.test"]);
    assert.equal(logged().at(-1)?.unanswered, 3);

    // The items query fails outright: everything stays, a warning says so.
    for (const items of ["error", "timeout"] as const) {
      root.items = items;
      advance(REFRESH_MS);
      services.discover("example.test", server.query);
      await settle();
      assert.deepEqual(services.list(), ["chat.example.test", "conference.example.test", "new.example.test"]);
      const warning = logged().at(-1);
      assert.equal(warning?.msg, "muc service discovery failed; keeping the services known before");
      assert.equal(warning?.level, 40);
      assert.equal(warning?.reason, items === "error" ? "error" : "no answer");
    }

    // A later successful run no longer listing a service drops it.
    root.items = ["new.example.test"];
    advance(REFRESH_MS);
    services.discover("example.test", server.query);
    await settle();
    assert.deepEqual(services.list(), ["new.example.test"]);
  });

  it("a query that rejects or throws counts as unanswered", async () => {
    const { services, logged } = setup();
    services.discover("example.test", () => Promise.reject(new Error("leg gone")));
    await services.ready("example.test");
    assert.equal(logged().at(-1)?.reason, "no answer");
    const other = setup();
    other.services.discover("example.test", () => { throw new Error("no leg"); });
    await other.services.ready("example.test");
    assert.equal(other.logged().at(-1)?.reason, "no answer");
    assert.deepEqual(other.services.list(), []);
  });

  it("asks at most 64 items per run, a few at a time", async () => {
    const { services, logged } = setup();
    const names = Array.from({ length: 100 }, (_, i) => `s${i}.example.test`);
    const tree: Record<string, Entity> = { "example.test": { items: names, identities: [] } };
    for (const n of names) tree[n] = { identities: [["conference", "text"]] };
    const server = fakeServer(tree);
    let inFlight = 0;
    let most = 0;
    const slow: IqQuery = async (iq) => {
      most = Math.max(most, ++inFlight);
      await settle();
      inFlight--;
      return server.query(iq);
    };
    services.discover("example.test", slow);
    await services.ready("example.test", 10_000);
    assert.equal(server.asked(INFO).length, 1 + MAX_ITEMS);
    assert.equal(services.list().length, MAX_ITEMS);
    assert.equal(most, PARALLEL, "item infos go a few at a time");
    assert.equal(logged().at(-1)?.leftOut, 100 - MAX_ITEMS);
  });
});

describe("when discovery runs", () => {
  it("again only after the refresh interval; once at a time", async () => {
    const { services, advance } = setup();
    const tree = TREE();
    const server = fakeServer(tree);
    services.discover("example.test", server.query);
    services.discover("example.test", server.query); // running: not started twice
    await services.ready("example.test");
    const first = server.sent.length;
    assert.equal(server.asked(ITEMS).length, 1);

    (tree["example.test"] as Entity).items = ["conference.example.test", "muc.example.test"];
    tree["muc.example.test"] = { identities: [["conference", "text"]] };
    advance(REFRESH_MS - 1);
    services.discover("example.test", server.query);
    await settle();
    assert.equal(server.sent.length, first, "not due yet");
    assert.equal(services.isService("muc.example.test"), false);

    advance(1);
    services.discover("example.test", server.query);
    await settle();
    assert.equal(server.asked(ITEMS).length, 2);
    assert.equal(services.isService("muc.example.test"), true);
  });

  it("after a failure, again no sooner than a backoff that doubles", async () => {
    const { services, advance } = setup();
    const server = fakeServer({ "example.test": { items: "timeout", identities: "timeout" } });
    const runs = () => server.asked(ITEMS).length;
    services.discover("example.test", server.query);
    await services.ready("example.test");
    for (const backoff of [RETRY_MIN_MS, 2 * RETRY_MIN_MS, 4 * RETRY_MIN_MS]) {
      const before = runs();
      advance(backoff - 1);
      services.discover("example.test", server.query);
      await settle();
      assert.equal(runs(), before, `not within ${backoff} ms`);
      advance(1);
      services.discover("example.test", server.query);
      await settle();
      assert.equal(runs(), before + 1, `again after ${backoff} ms`);
    }
  });

  it("each served domain separately; services of all of them count", async () => {
    const { services } = setup({ domains: "example.test,other.test" });
    const tree = TREE();
    tree["other.test"] = { items: ["rooms.other.test"], identities: [] };
    tree["rooms.other.test"] = { identities: [["conference", "text"]] };
    const server = fakeServer(tree);
    services.discover("example.test", server.query);
    services.discover("other.test", server.query);
    await Promise.all([services.ready("example.test"), services.ready("other.test")]);
    assert.deepEqual(services.list(), ["conference.example.test", "rooms.other.test"]);
  });
});

describe("ready()", () => {
  it("resolves once the first run ended, and at once afterwards", async () => {
    const { services } = setup();
    const server = fakeServer(TREE());
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    services.discover("example.test", async (iq) => {
      await held;
      return server.query(iq);
    });
    let ready = false;
    const waiting = services.ready("example.test", 60_000).then(() => { ready = true; });
    await settle();
    assert.equal(ready, false);
    release();
    await waiting;
    assert.deepEqual(services.list(), ["conference.example.test"]);
    const t0 = Date.now();
    await services.ready("example.test", 60_000);
    assert.ok(Date.now() - t0 < 50);
  });

  it("is bounded by waitMs when the server never answers, and resolves on close()", async () => {
    const { services } = setup();
    services.discover("example.test", () => new Promise<Element | undefined>(() => {}));
    // ready()'s own timer is unref()'d like every timer of the module: keep the test's event loop alive.
    const keepAlive = setInterval(() => {}, 1000);
    const t0 = Date.now();
    await services.ready("example.test", 30);
    const took = Date.now() - t0;
    clearInterval(keepAlive);
    assert.ok(took >= 25 && took < 1000, `took ${took} ms`);
    const pending = services.ready("example.test", 60_000);
    services.close();
    await pending;
  });

  it("waits for a domain whose discovery has not started yet", async () => {
    const { services } = setup();
    const waiting = services.ready("example.test", 60_000);
    services.discover("example.test", fakeServer(TREE()).query);
    await waiting;
    assert.equal(services.isService("conference.example.test"), true);
  });
});

describe("muc.services", () => {
  it("names exactly the services, lower-cased; discovery and learning are off", async () => {
    const { services, logged } = setup({ "muc.services": "Rooms.Example.Test, chat.example.test" });
    const server = fakeServer(TREE());
    services.discover("example.test", server.query);
    const t0 = Date.now();
    await services.ready("example.test", 60_000);
    assert.ok(Date.now() - t0 < 50, "ready at once");
    services.learn("learnt.example.test");
    await settle();
    assert.equal(server.sent.length, 0);
    assert.deepEqual(services.list(), ["chat.example.test", "rooms.example.test"]);
    assert.equal(services.isService("rooms.example.test"), true);
    assert.equal(services.isService("conference.example.test"), false);
    assert.equal(services.isService("learnt.example.test"), false);
    assert.deepEqual(logged(), []);
  });

  it("an empty list means discover", async () => {
    const { services } = setup({ "muc.services": "," });
    services.discover("example.test", fakeServer(TREE()).query);
    await services.ready("example.test");
    assert.deepEqual(services.list(), ["conference.example.test"]);
  });
});

describe("learn()", () => {
  it("adds domains, lower-cased, ignoring what is not a domain", () => {
    const { services } = setup();
    services.learn("Muc.Elsewhere.Example");
    for (const bad of ["room@muc.example", "muc.example/nick", "", "bad_name.example"]) services.learn(bad);
    assert.deepEqual(services.list(), ["muc.elsewhere.example"]);
    assert.equal(services.isService("muc.elsewhere.example"), true);
  });

  it("is bounded: the least recently learnt go first", () => {
    const { services } = setup();
    for (let i = 0; i < MAX_LEARNED + 10; i++) services.learn(`m${i}.example`);
    services.learn("m10.example"); // learnt again: now the most recent
    services.learn("extra.example");
    const list = services.list();
    assert.equal(list.length, MAX_LEARNED);
    assert.equal(services.isService("m0.example"), false);
    assert.equal(services.isService("m10.example"), true);
    assert.equal(services.isService("m11.example"), false);
    assert.equal(services.isService(`m${MAX_LEARNED + 9}.example`), true);
    assert.equal(services.isService("extra.example"), true);
  });

  it("learnt domains stay when a discovery run does not list them", async () => {
    const { services } = setup();
    services.learn("remote-muc.example");
    services.discover("example.test", fakeServer(TREE()).query);
    await services.ready("example.test");
    assert.deepEqual(services.list(), ["conference.example.test", "remote-muc.example"]);
  });
});

describe("close()", () => {
  it("stops discovery: nothing more is sent or learnt", async () => {
    const { services, advance } = setup();
    const server = fakeServer(TREE());
    services.discover("example.test", server.query);
    await services.ready("example.test");
    const sent = server.sent.length;
    services.close();
    advance(REFRESH_MS);
    services.discover("example.test", server.query);
    services.learn("late.example");
    await services.ready("example.test", 60_000);
    await settle();
    assert.equal(server.sent.length, sent);
    assert.equal(services.isService("late.example"), false);
  });

  it("a run cancelled by close() sends no further queries", async () => {
    const { services } = setup();
    const names = Array.from({ length: 20 }, (_, i) => `s${i}.example.test`);
    const tree: Record<string, Entity> = { "example.test": { items: names, identities: [] } };
    const server = fakeServer(tree);
    let held = 0;
    services.discover("example.test", async (iq) => {
      const answer = await server.query(iq);
      if (iq.getChild("query")?.attrs.xmlns === INFO && iq.attrs.to !== "example.test") {
        held++;
        await new Promise<void>(() => {}); // the server never answers item infos
      }
      return answer;
    });
    await settle();
    assert.equal(held, PARALLEL);
    services.close();
    await settle();
    assert.equal(server.asked(INFO).length, 1 + PARALLEL);
  });
});
