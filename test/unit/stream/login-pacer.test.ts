// SPEC E8: the login pacer, with a clock and turns stepped by hand: login reads run while the turn's budget lasts
// (counted from its first login read), later ones wait in arrival order and are handed back a turn at a time.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { LoginPacer } from "../../../src/stream/login-pacer.js";

function setup(budgetMs: number) {
  let now = 0;
  const turns: (() => void)[] = [];
  const handled: string[] = [];
  let held = 0;
  const pacer = new LoginPacer({ budgetMs, now: () => now, nextTurn: (fn) => turns.push(fn), onHeld: () => held++ });
  /** A read of `name` arrives; handling it costs `costMs`. */
  const read = (name: string, costMs = 1) => {
    const reader = { release: () => { handled.push(name); now += costMs; } };
    if (pacer.admit(reader, Buffer.from(name))) reader.release();
  };
  /** The next turn of the event loop, `idleMs` later. */
  const turn = (idleMs = 0): string[] => {
    now += idleMs;
    const before = handled.length;
    for (const fn of turns.splice(0)) fn();
    return handled.slice(before);
  };
  return { pacer, read, turn, handled, turns, held: () => held };
}

describe("SPEC E8: LoginPacer", () => {
  it("handles reads at once while the turn's budget lasts, then holds the rest in arrival order", () => {
    const t = setup(5);
    for (const name of ["a", "b", "c", "d", "e", "f", "g", "h"]) t.read(name, 2);
    assert.deepEqual(t.handled, ["a", "b", "c"], "0, 2, 4 ms into the turn: within 5 ms");
    assert.equal(t.pacer.waiting, 5);
    assert.equal(t.held(), 5);
    assert.deepEqual(t.turn(), ["d", "e", "f"]);
    assert.deepEqual(t.turn(), ["g", "h"]);
    assert.equal(t.pacer.waiting, 0);
  });

  it("held reads run first in the next turn; a read arriving then runs while that turn's budget lasts", () => {
    const t = setup(5);
    for (const name of ["a", "b", "c", "d"]) t.read(name, 3);
    assert.deepEqual(t.handled, ["a", "b"]);
    assert.deepEqual(t.turn(), ["c", "d"]); // 0 and 3 ms into the new turn
    t.read("e", 1); // the turn is 6 ms old: held
    assert.deepEqual(t.turn(), ["e"]);
    t.read("f", 1); // 1 ms into this turn: at once
    assert.deepEqual(t.handled.slice(-1), ["f"]);
    assert.deepEqual(t.turn(), [], "an idle turn");
    assert.equal(t.turns.length, 0, "an idle pacer schedules nothing");
  });

  it("the clock starts at a turn's first login read: idle time before it is not counted", () => {
    const t = setup(5);
    t.read("a", 1);
    t.turn(100); // the next turn starts 100 ms later: a fresh budget
    t.read("b", 1);
    t.read("c", 1);
    assert.deepEqual(t.handled, ["a", "b", "c"]);
    assert.equal(t.held(), 0);
  });

  it("a read costlier than the budget still runs, one per turn", () => {
    const t = setup(5);
    t.read("big1", 20);
    t.read("big2", 20);
    t.read("big3", 20);
    assert.deepEqual(t.handled, ["big1"]);
    assert.deepEqual(t.turn(), ["big2"]);
    assert.deepEqual(t.turn(), ["big3"]);
  });
});
