// The typed event bus (src/chain/events.ts): payloads reach every handler of their event, unsubscribing
// works, `emit` is true when any handler returned true, and a throwing handler neither stops the others
// nor escapes emit (it reaches onError).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventBus, type EventName } from "../../../src/chain/events.js";
import { Account } from "../../../src/account/account.js";
import type { Session } from "../../../src/chain/session.js";

const account = new Account("alice@example.test", "example.test", { username: "alice", secret: { kind: "password", password: "pw" } });
const session: Session = {
  id: 1, jid: "alice@example.test/phone", online: true, slots: new Map(),
  deliver: () => {}, sendUpstream: () => {},
};

function bus() {
  const errors: [EventName, unknown][] = [];
  return { events: new EventBus((event, err) => void errors.push([event, err])), errors };
}

describe("EventBus", () => {
  it("hands each handler of an event that event's typed payload, and no other event's", () => {
    const { events } = bus();
    const bound: Session[] = [];
    const closed: string[] = [];
    events.on("session-bound", ({ account: a, session: s }) => { assert.equal(a, account); bound.push(s); });
    events.on("session-closed", ({ account: a }) => void closed.push(a.bare));

    events.emit("session-bound", { account, session });
    events.emit("session-bound", { account, session });
    assert.deepEqual(bound, [session, session]);
    assert.deepEqual(closed, []);
    events.emit("session-closed", { account, session });
    assert.deepEqual(closed, ["alice@example.test"]);

  });

  it("types each payload by its event name (checked by `npm run typecheck`, never run)", () => {
    const { events } = bus();
    const _typeChecks = () => {
      // @ts-expect-error "room-keep" needs a nick
      events.emit("room-keep", { account, room: "room@conference.example.test" });
      // @ts-expect-error not an event
      events.on("no-such-event", () => {});
      // @ts-expect-error "session-closed" handlers get no room
      events.on("session-closed", ({ room }) => void room);
    };
  });

  it("runs handlers in the order they subscribed", () => {
    const { events } = bus();
    const order: number[] = [];
    for (const n of [1, 2, 3]) events.on("anchor-online", () => void order.push(n));
    events.emit("anchor-online", { account, reconnected: false });
    assert.deepEqual(order, [1, 2, 3]);
  });

  it("stops calling a handler once unsubscribed; unsubscribing twice is harmless and spares the others", () => {
    const { events } = bus();
    const seen: string[] = [];
    const offA = events.on("room-release", () => void seen.push("a"));
    events.on("room-release", () => void seen.push("b"));
    const payload = { account, room: "room@conference.example.test" };
    events.emit("room-release", payload);
    offA();
    offA();
    events.emit("room-release", payload);
    assert.deepEqual(seen, ["a", "b", "b"]);
  });

  it("emit is false with no handler, false when no handler returned true, true when any did", () => {
    const { events } = bus();
    const payload = { account, room: "room@conference.example.test" };
    assert.equal(events.emit("room-kept?", payload), false);
    events.on("room-kept?", () => {});
    events.on("room-kept?", () => false);
    assert.equal(events.emit("room-kept?", payload), false);

    let answer = false;
    events.on("room-kept?", () => answer);
    let lastRan = 0;
    events.on("room-kept?", () => { lastRan++; return false; });
    assert.equal(events.emit("room-kept?", payload), false);
    answer = true;
    assert.equal(events.emit("room-kept?", payload), true, "one true among false and void answers is enough");
    assert.equal(lastRan, 2, "a true answer does not stop the handlers after it");
  });

  it("a throwing handler does not stop the others; its error reaches onError with the event name", () => {
    const { events, errors } = bus();
    const boom = new Error("boom");
    const ran: string[] = [];
    events.on("account-busy?", () => { ran.push("first"); throw boom; });
    events.on("account-busy?", () => { ran.push("second"); return true; });
    events.on("account-busy?", () => { ran.push("third"); throw new Error("again"); });

    assert.equal(events.emit("account-busy?", { account }), true, "the others' answers still count");
    assert.deepEqual(ran, ["first", "second", "third"]);
    assert.equal(errors.length, 2);
    assert.deepEqual(errors[0], ["account-busy?", boom]);
    assert.equal(errors[1]?.[0], "account-busy?");

    // A bus whose only handler throws answers false, and keeps working afterwards.
    const other = bus();
    other.events.on("anchor-down", () => { throw new Error("x"); });
    assert.equal(other.events.emit("anchor-down", { account, permanent: true }), false);
    assert.equal(other.errors.length, 1);
    assert.equal(other.events.emit("anchor-down", { account, permanent: false }), false);
    assert.equal(other.errors.length, 2);
  });
});
