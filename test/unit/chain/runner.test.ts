// The chain runner (src/chain/runner.ts): the pass-through fast path, stage order per direction, DROP,
// replacing and editing stanzas (a fanned-out stanza is shared: edit() copies it for one session only),
// error isolation (a throwing stage costs that stanza, never the stream), the anchor entry, and stages that
// hold a stanza with a promise.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Element } from "@xmpp/xml";
import { createChainRunner, type Delivery, type StageErrorKind } from "../../../src/chain/runner.js";
import { DROP, type ChainOrigin, type Direction, type Stage, type StageResult, type StanzaContext } from "../../../src/chain/stage.js";
import type { DeliverOptions, Session } from "../../../src/chain/session.js";
import { Prepared } from "../../../src/chain/prepared.js";
import { Account } from "../../../src/account/account.js";
import { serialize } from "../../../src/xml/serialize.js";
import { deferred, flush, recordingLog, stanza } from "../helpers.js";

function fakeSession(id: number, jid: string): Session {
  return { id, jid, online: true, slots: new Map(), deliver: () => {}, sendUpstream: () => {} };
}
const S1 = fakeSession(1, "alice@example.test/phone");
const S2 = fakeSession(2, "alice@example.test/laptop");
const account = new Account("alice@example.test", "example.test", { username: "alice", secret: { kind: "password", password: "pw" } });

type Handler = (ctx: StanzaContext) => StageResult;
interface StageSpec {
  wants?: (el: Element, direction: Direction, session: Session, origin: ChainOrigin) => boolean;
  c2s?: Handler;
  s2c?: Handler;
  anchor?: (account: Account, el: Element) => void | typeof DROP;
}

/** A stage that records what it is asked and handles what `spec` says (by default: wants all, goes on). */
function probe(name: string, log: string[], spec: StageSpec = {}): Stage & { contexts: StanzaContext[] } {
  const contexts: StanzaContext[] = [];
  const stage: Stage & { contexts: StanzaContext[] } = {
    name,
    contexts,
    wants(el, direction, session, origin) {
      log.push(`${name}.wants`);
      return spec.wants ? spec.wants(el, direction, session, origin) : true;
    },
  };
  const handle = (h: Handler | undefined, dir: Direction) => (ctx: StanzaContext): StageResult => {
    log.push(`${name}.${dir}`);
    contexts.push(ctx);
    return h?.(ctx);
  };
  stage.c2s = handle(spec.c2s, "c2s");
  stage.s2c = handle(spec.s2c, "s2c");
  stage.anchor = (a, el) => {
    log.push(`${name}.anchor`);
    return spec.anchor?.(a, el);
  };
  return stage;
}

/** A Delivery that records what goes onward and back, and what a writer would put on the socket. */
function recorder() {
  const onward: { el: Element; opts: DeliverOptions | undefined; text: string }[] = [];
  const back: Element[] = [];
  const delivery: Delivery = {
    onward: (el, opts) => {
      // The session's writer: the shared serialization when it is offered, else the element itself.
      const to = el.attrs.to ?? "";
      onward.push({ el, opts, text: opts?.prepared ? opts.prepared.render(to) : serialize(el) });
    },
    back: (el) => void back.push(el),
  };
  return { delivery, onward, back };
}

function setup(stages: Stage[]) {
  const errors: [string, StageErrorKind][] = [];
  const { log, lines } = recordingLog("error");
  const runner = createChainRunner({ stages, log, onStageError: (stage, kind) => void errors.push([stage, kind]) });
  return { runner, errors, lines };
}

const msg = (id: string, body = "hi") =>
  stanza(`<message type='chat' to='bob@example.test' from='alice@example.test/phone' id='${id}'><body>${body}</body></message>`);

/** A written-callback that records what it was told. */
function written() {
  const calls: (Error | null | undefined)[] = [];
  return { calls, onWritten: (err?: Error | null) => void calls.push(err) };
}

describe("chain runner: fast path and order", () => {
  it("fast path: no stage wants the stanza, so it goes onward as the same element with the same options and no handler runs", () => {
    const log: string[] = [];
    const a = probe("a", log, { wants: () => false });
    const b = probe("b", log, { wants: () => false });
    const { runner } = setup([a, b]);
    const { delivery, onward } = recorder();
    const el = msg("m1");
    const w = written();
    const opts: DeliverOptions = { origin: "anchor", onWritten: w.onWritten };
    runner.run("s2c", S1, el, delivery, "anchor", opts);
    assert.equal(onward.length, 1);
    assert.equal(onward[0]?.el, el);
    assert.equal(onward[0]?.opts, opts, "the caller's options object itself");
    assert.deepEqual(log, ["b.wants", "a.wants"], "only wants() was asked (s2c: in reverse order)");
    assert.equal(a.contexts.length + b.contexts.length, 0, "no context was built");
    assert.deepEqual(w.calls, [], "writing is the writer's business, not the runner's");
  });

  it("asks wants() with the stanza, direction, session and origin", () => {
    const asked: unknown[][] = [];
    const { runner } = setup([probe("a", [], { wants: (...args) => { asked.push(args); return false; } })]);
    const el = msg("m1");
    runner.run("c2s", S2, el, recorder().delivery, "client");
    runner.run("s2c", S1, el, recorder().delivery, "local");
    assert.deepEqual(asked, [[el, "c2s", S2, "client"], [el, "s2c", S1, "local"]]);
  });

  it("c2s runs the stages in order, s2c in reverse; the context carries direction, origin and session", () => {
    const log: string[] = [];
    const stages = [probe("a", log), probe("b", log), probe("c", log)];
    const { runner } = setup(stages);
    const c2s = recorder();
    runner.run("c2s", S1, msg("up"), c2s.delivery, "client");
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["a.c2s", "b.c2s", "c.c2s"]);
    assert.equal(c2s.onward.length, 1);

    log.length = 0;
    const s2c = recorder();
    runner.run("s2c", S2, msg("down"), s2c.delivery, "upstream");
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["c.s2c", "b.s2c", "a.s2c"]);
    const ctx = stages[0]?.contexts.at(-1);
    assert.equal(ctx?.direction, "s2c");
    assert.equal(ctx?.origin, "upstream");
    assert.equal(ctx?.session, S2);
  });

  it("skips a stage that does not want the stanza, and runs only the stages that have a handler for the direction", () => {
    const log: string[] = [];
    const a = probe("a", log);
    const b = probe("b", log, { wants: () => false });
    const c2sOnly: Stage = { name: "c2s-only", wants: () => true, c2s: () => void log.push("c2s-only.c2s") };
    const { runner } = setup([a, b, c2sOnly]);
    runner.run("s2c", S1, msg("x"), recorder().delivery, "upstream");
    assert.deepEqual(log, ["b.wants", "a.wants", "a.s2c"], "the c2s-only stage is not asked in s2c");
    log.length = 0;
    runner.run("c2s", S1, msg("y"), recorder().delivery, "client");
    assert.deepEqual(log, ["a.wants", "a.c2s", "b.wants", "c2s-only.c2s"]);
  });

  it("reply goes back toward the origin; forward goes onward without options", () => {
    const answer = new Element("iq", { type: "result", id: "q" });
    const extra = new Element("message", { id: "extra" });
    const { runner } = setup([probe("a", [], { c2s: (ctx) => { ctx.reply(answer); ctx.forward(extra); } })]);
    const { delivery, onward, back } = recorder();
    runner.run("c2s", S1, msg("m"), delivery, "client");
    assert.deepEqual(back, [answer]);
    assert.deepEqual(onward.map((o) => [o.el.attrs.id, o.opts]), [["extra", undefined], ["m", undefined]]);
  });
});

describe("chain runner: DROP, replace, edit", () => {
  it("DROP ends the run: later stages do not run, nothing goes onward, onWritten hears an error", () => {
    const log: string[] = [];
    const { runner } = setup([probe("a", log), probe("b", log, { s2c: () => DROP }), probe("c", log)]);
    const { delivery, onward } = recorder();
    const w = written();
    runner.run("s2c", S1, msg("m"), delivery, "anchor", { origin: "anchor", onWritten: w.onWritten });
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["c.s2c", "b.s2c"]);
    assert.equal(onward.length, 0);
    assert.equal(w.calls.length, 1);
    assert.ok(w.calls[0] instanceof Error);
    assert.match(w.calls[0].message, /dropped by b/);
  });

  it("a stage may replace the stanza: later stages are asked about and see the new one, which goes onward", () => {
    const seen: (string | undefined)[] = [];
    const replacement = msg("replaced");
    const { runner } = setup([
      probe("a", [], { c2s: (ctx) => { ctx.stanza = replacement; } }),
      probe("b", [], {
        wants: (el) => { seen.push(el.attrs.id); return el.attrs.id === "replaced"; },
        c2s: (ctx) => void seen.push(`b saw ${ctx.stanza.attrs.id ?? ""}`),
      }),
    ]);
    const { delivery, onward } = recorder();
    runner.run("c2s", S1, msg("original"), delivery, "client");
    assert.deepEqual(seen, ["replaced", "b saw replaced"], "b was asked about the replacement only");
    assert.equal(onward.length, 1);
    assert.equal(onward[0]?.el, replacement);
  });

  it("edit() of a stanza nobody shares changes it in place", () => {
    const el = msg("m");
    const { runner } = setup([probe("a", [], { c2s: (ctx) => { assert.equal(ctx.edit(), el); ctx.edit().attrs.marked = "yes"; } })]);
    const { delivery, onward } = recorder();
    runner.run("c2s", S1, el, delivery, "client");
    assert.equal(onward[0]?.el, el);
    assert.equal(el.attrs.marked, "yes");
  });

  it("edit() of a shared (prepared) stanza copies it once for this session: the writer gets the copy without the prepared form; other sessions still get the shared form", () => {
    const el = stanza(`<message type='groupchat' from='room@conference.example.test/bob' id='g1'><body>hello</body></message>`);
    const prepared = new Prepared(el);
    let copies = 0;
    const { runner } = setup([probe("edit-for-phone", [], {
      wants: (_el, _dir, session) => session === S1,
      s2c: (ctx) => {
        const mine = ctx.edit();
        assert.notEqual(mine, el, "a copy, not the shared element");
        assert.equal(ctx.edit(), mine, "the second edit() returns the same copy");
        assert.equal(ctx.stanza, mine);
        copies++;
        mine.c("edited");
      },
    })]);
    const w = written();
    const out = new Map<Session, ReturnType<typeof recorder>>([[S1, recorder()], [S2, recorder()]]);
    // As fan-out does it: `to` is each session's JID while its delivery runs.
    for (const session of [S1, S2]) {
      el.attrs.to = session.jid as string;
      runner.run("s2c", session, el, (out.get(session) as ReturnType<typeof recorder>).delivery, "anchor",
        { origin: "anchor", prepared, onWritten: w.onWritten });
    }
    delete el.attrs.to;
    assert.equal(copies, 1);

    const phone = out.get(S1)?.onward[0];
    assert.ok(phone);
    assert.notEqual(phone.el, el);
    assert.equal(phone.opts?.prepared, undefined, "the edited copy is serialized on its own");
    assert.equal(phone.opts?.origin, "anchor", "the other options are kept");
    assert.equal(phone.opts?.onWritten, w.onWritten);
    assert.ok(phone.text.includes("<edited/>"));
    assert.ok(phone.text.includes(`to='${S1.jid ?? ""}'`));

    const laptop = out.get(S2)?.onward[0];
    assert.ok(laptop);
    assert.equal(laptop.el, el);
    assert.equal(laptop.opts?.prepared, prepared, "an unedited session still writes the shared form");
    assert.equal(laptop.text, prepared.render(S2.jid as string));
    assert.ok(!laptop.text.includes("edited"));
    assert.equal(el.getChild("edited"), undefined, "the shared element was not changed");
  });

  it("a stanza a stage replaced is not written from the shared form either", () => {
    const el = msg("shared");
    const prepared = new Prepared(el);
    const other = msg("other");
    const { runner } = setup([probe("a", [], { s2c: (ctx) => { ctx.stanza = other; } })]);
    const { delivery, onward } = recorder();
    runner.run("s2c", S1, el, delivery, "anchor", { origin: "anchor", prepared });
    assert.equal(onward[0]?.el, other);
    assert.equal(onward[0]?.opts?.prepared, undefined);
    assert.equal(onward[0]?.opts?.origin, "anchor");
  });
});

describe("chain runner: errors", () => {
  it("a throwing stage costs exactly that stanza: logged, onStageError(stage, path), onWritten hears an error; later stanzas pass", () => {
    const log: string[] = [];
    const { runner, errors, lines } = setup([
      probe("a", log),
      probe("faulty", log, { c2s: (ctx) => { if (ctx.stanza.attrs.id === "bad") throw new Error("boom"); } }),
      probe("c", log),
    ]);
    const { delivery, onward } = recorder();
    const w = written();
    assert.doesNotThrow(() => runner.run("c2s", S1, msg("bad"), delivery, "client", { onWritten: w.onWritten }));
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["a.c2s", "faulty.c2s"], "the stages after it did not run");
    assert.equal(onward.length, 0);
    assert.deepEqual(errors, [["faulty", "c2s"]]);
    assert.equal(w.calls.length, 1);
    assert.ok(w.calls[0] instanceof Error);
    const logged = lines().find((l) => l.msg === "stage failed");
    assert.equal(logged?.stage, "faulty");
    assert.equal(logged?.kind, "c2s");

    log.length = 0;
    runner.run("c2s", S1, msg("good"), delivery, "client");
    assert.deepEqual(onward.map((o) => o.el.attrs.id), ["good"]);
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["a.c2s", "faulty.c2s", "c.c2s"]);
    assert.equal(errors.length, 1);
  });

  it("reports the s2c path for a stage failing on the way to the device", () => {
    const { runner, errors } = setup([probe("faulty", [], { s2c: () => { throw new TypeError("bad"); } })]);
    runner.run("s2c", S1, msg("m"), recorder().delivery, "upstream");
    assert.deepEqual(errors, [["faulty", "s2c"]]);
  });

  it("a stage whose wants() throws costs that stanza only: run() does not throw, onStageError is told, later stanzas pass", () => {
    // The runner is "the only place with error isolation": wants() is stage code too. If it throws out of
    // run(), the caller's parser turns it into a stream error and the whole session (or the anchor's
    // stream, when it happens during fan-out) is lost for one stanza.
    const { runner, errors } = setup([
      probe("a", []),
      probe("faulty", [], { wants: (el) => { if (el.attrs.id === "bad") throw new Error("boom"); return false; } }),
    ]);
    const { delivery, onward } = recorder();
    const w = written();
    assert.doesNotThrow(() => runner.run("c2s", S1, msg("bad"), delivery, "client", { onWritten: w.onWritten }));
    assert.deepEqual(errors, [["faulty", "c2s"]]);
    assert.equal(onward.length, 0);
    assert.equal(w.calls.length, 1);
    runner.run("c2s", S1, msg("good"), delivery, "client");
    assert.deepEqual(onward.map((o) => o.el.attrs.id), ["good"]);
  });

  it("after a stage's promise settles, a later stage's wants() that throws is isolated too (no unhandled rejection)", async () => {
    // In the continuation, an exception is no longer the caller's: it rejects a promise nobody handles,
    // which ends the whole process (Node's default for unhandled rejections).
    const hold = deferred<void>();
    const { runner, errors } = setup([
      probe("async", [], { c2s: () => hold.promise }),
      probe("faulty", [], { wants: () => { throw new Error("boom"); } }),
    ]);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const { delivery, onward } = recorder();
      const w = written();
      runner.run("c2s", S1, msg("m"), delivery, "client", { onWritten: w.onWritten });
      hold.resolve();
      await hold.promise;
      await flush();
      assert.deepEqual(unhandled, [], "nothing escaped the runner");
      assert.deepEqual(errors, [["faulty", "c2s"]]);
      assert.equal(onward.length, 0);
      assert.equal(w.calls.length, 1);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe("chain runner: the anchor entry", () => {
  it("runs the anchor handlers in stage order (not reversed) with the account and element", () => {
    const log: string[] = [];
    const got: [Account, Element][] = [];
    const stages = ["a", "b", "c"].map((n) => probe(n, log, { anchor: (acc, el) => void got.push([acc, el]) }));
    const noAnchor: Stage = { name: "no-anchor", wants: () => true };
    const { runner } = setup([stages[0] as Stage, noAnchor, stages[1] as Stage, stages[2] as Stage]);
    const el = msg("a1");
    runner.anchor(account, el);
    assert.deepEqual(log, ["a.anchor", "b.anchor", "c.anchor"], "wants() is not asked for anchor stanzas");
    assert.ok(got.every(([acc, e]) => acc === account && e === el));
  });

  it("DROP ends the anchor run", () => {
    const log: string[] = [];
    const { runner } = setup([probe("a", log), probe("b", log, { anchor: () => DROP }), probe("c", log)]);
    runner.anchor(account, msg("a1"));
    assert.deepEqual(log, ["a.anchor", "b.anchor"]);
  });

  it("a throwing anchor handler costs that stanza for that stage only: onStageError(stage, 'anchor'); later stages still get it", () => {
    const log: string[] = [];
    const { runner, errors, lines } = setup([
      probe("a", log),
      probe("faulty", log, { anchor: (_acc, el) => { if (el.attrs.id === "bad") throw new Error("boom"); } }),
      probe("c", log),
    ]);
    assert.doesNotThrow(() => runner.anchor(account, msg("bad")));
    assert.deepEqual(log, ["a.anchor", "faulty.anchor", "c.anchor"], "a bookkeeping stage failing must not cost the fan-out");
    assert.deepEqual(errors, [["faulty", "anchor"]]);
    assert.equal(lines().find((l) => l.msg === "stage failed")?.kind, "anchor");
    log.length = 0;
    runner.anchor(account, msg("good"));
    assert.deepEqual(log, ["a.anchor", "faulty.anchor", "c.anchor"]);
    assert.equal(errors.length, 1);
  });
});

describe("chain runner: stages that return a promise", () => {
  it("holds the stanza until the promise settles; then the rest of the chain runs and it goes onward", async () => {
    const log: string[] = [];
    const hold = deferred<void>();
    const { runner } = setup([
      probe("a", log),
      probe("async", log, { c2s: () => hold.promise }),
      probe("c", log, { wants: (el) => { log.push(`c asked about ${el.attrs.id ?? ""}`); return true; } }),
    ]);
    const { delivery, onward } = recorder();
    const w = written();
    const opts: DeliverOptions = { onWritten: w.onWritten };
    runner.run("c2s", S1, msg("slow"), delivery, "client", opts);
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["a.c2s", "async.c2s"]);
    assert.equal(onward.length, 0, "held");

    hold.resolve();
    await hold.promise;
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["a.c2s", "async.c2s", "c asked about slow", "c.c2s"]);
    assert.equal(onward.length, 1);
    assert.equal(onward[0]?.el.attrs.id, "slow");
    assert.equal(onward[0]?.opts, opts);
    assert.deepEqual(w.calls, []);
  });

  it("later stanzas of the same session and direction wait behind a held one (in order); other sessions and directions pass", async () => {
    const hold = deferred<void>();
    const { runner } = setup([probe("async", [], {
      s2c: (ctx) => (ctx.stanza.attrs.id === "slow" ? hold.promise : undefined),
      c2s: () => undefined,
    })]);
    const { delivery, onward } = recorder();
    runner.run("s2c", S1, msg("slow"), delivery, "upstream");
    runner.run("s2c", S1, msg("after1"), delivery, "upstream");
    runner.run("s2c", S2, msg("other-session"), delivery, "upstream");
    runner.run("c2s", S1, msg("other-direction"), delivery, "client");
    runner.run("s2c", S1, msg("after2"), delivery, "upstream");
    assert.deepEqual(onward.map((o) => o.el.attrs.id), ["other-session", "other-direction"]);
    hold.resolve();
    await flush();
    assert.deepEqual(onward.map((o) => o.el.attrs.id), ["other-session", "other-direction", "slow", "after1", "after2"]);
    runner.run("s2c", S1, msg("later"), delivery, "upstream");
    assert.equal(onward.at(-1)?.el.attrs.id, "later", "no longer held: straight through");
  });

  it("a stanza waiting behind a held one is its own copy when the caller shares it (fan-out restores its element)", async () => {
    const hold = deferred<void>();
    const { runner } = setup([probe("async", [], { s2c: (ctx) => (ctx.stanza.attrs.id === "slow" ? hold.promise : undefined) })]);
    const { delivery, onward } = recorder();
    runner.run("s2c", S1, msg("slow"), delivery, "upstream");
    const shared = msg("fanned");
    shared.attrs.to = S1.jid as string;
    runner.run("s2c", S1, shared, delivery, "anchor", { shared: true });
    shared.attrs.to = "anchor@example.test/mucmux-00000000"; // what fan-out does once deliver returns
    hold.resolve();
    await flush();
    assert.equal(onward.at(-1)?.el.attrs.to, S1.jid, "written with this session's `to`");
  });

  it("a client IQ request lost to a failing stage is answered with internal-server-error (RFC 6120 §8.2.3)", () => {
    const { runner } = setup([probe("faulty", [], { c2s: () => { throw new Error("boom"); } })]);
    const { delivery, onward, back } = recorder();
    runner.run("c2s", S1, stanza("<iq type='get' id='q1' to='example.test' from='alice@example.test/phone'><query xmlns='jabber:iq:version'/></iq>"), delivery, "client");
    runner.run("c2s", S1, msg("m1"), delivery, "client");
    assert.equal(onward.length, 0);
    assert.equal(back.length, 1, "the IQ is answered; the message is only dropped");
    assert.equal(back[0]?.attrs.type, "error");
    assert.equal(back[0]?.attrs.id, "q1");
    assert.equal(back[0]?.attrs.to, "alice@example.test/phone");
    assert.equal(back[0]?.attrs.from, "example.test");
    assert.ok(back[0]?.getChild("error")?.getChild("internal-server-error", "urn:ietf:params:xml:ns:xmpp-stanzas"));
  });

  it("a promise resolving to DROP drops the stanza and tells onWritten", async () => {
    const log: string[] = [];
    const hold = deferred<void | typeof DROP>();
    const { runner } = setup([probe("async", log, { s2c: () => hold.promise }), probe("before", log)]);
    const { delivery, onward } = recorder();
    const w = written();
    runner.run("s2c", S1, msg("m"), delivery, "local", { onWritten: w.onWritten });
    hold.resolve(DROP);
    await hold.promise;
    assert.equal(onward.length, 0);
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["before.s2c", "async.s2c"]);
    assert.equal(w.calls.length, 1);
    assert.match(String(w.calls[0]?.message), /dropped by async/);
  });

  it("a rejected promise is isolated like a throw: onStageError(stage, path), onWritten hears an error, the rest does not run", async () => {
    const log: string[] = [];
    const hold = deferred<void>();
    const { runner, errors } = setup([probe("async", log, { c2s: (ctx) => (ctx.stanza.attrs.id === "bad" ? hold.promise : undefined) }), probe("c", log)]);
    const { delivery, onward } = recorder();
    const w = written();
    runner.run("c2s", S1, msg("bad"), delivery, "client", { onWritten: w.onWritten });
    hold.reject(new Error("lookup failed"));
    await flush();
    assert.deepEqual(errors, [["async", "c2s"]]);
    assert.equal(onward.length, 0);
    assert.equal(w.calls.length, 1);
    assert.ok(w.calls[0] instanceof Error);
    assert.deepEqual(log.filter((l) => !l.endsWith("wants")), ["async.c2s"]);

    runner.run("c2s", S1, msg("good"), delivery, "client");
    assert.deepEqual(onward.map((o) => o.el.attrs.id), ["good"]);
  });

  it("after a held shared stanza, a later edit() still copies it and the prepared form is dropped for that session only", async () => {
    const el = msg("g");
    el.attrs.to = S1.jid as string;
    const prepared = new Prepared(el);
    const hold = deferred<void>();
    // s2c order is reversed: "editor" (listed first) runs after "async".
    const { runner } = setup([probe("editor", [], { s2c: (ctx) => void ctx.edit().c("mark") }), probe("async", [], { s2c: () => hold.promise })]);
    const { delivery, onward } = recorder();
    runner.run("s2c", S1, el, delivery, "anchor", { origin: "anchor", prepared });
    hold.resolve();
    await hold.promise;
    assert.notEqual(onward[0]?.el, el);
    assert.equal(onward[0]?.opts?.prepared, undefined);
    assert.equal(el.getChild("mark"), undefined);
  });
});
