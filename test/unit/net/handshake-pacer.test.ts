// SPEC E8: the TLS handshake pacer, turn by turn (turns are stepped by hand): a connection waits for its first
// bytes, then starts at once while the turn has a slot, else waits in FIFO order; at most perTurn start per turn;
// one that goes away leaves the queue without using a slot; the queue is bounded; drain empties it.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import { HandshakePacer, type PacedOutcome, type PacedSocket, type TlsMode } from "../../../src/net/handshake-pacer.js";

/** The parts of a net.Socket the pacer uses: paused until resumed, bytes buffered while paused. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  readableEnded = false;
  flowing = false;
  private buffered: Buffer[] = [];
  constructor(readonly name: string) { super(); }
  /** The client's bytes arrive. */
  receive(bytes = "ClientHello"): void {
    if (this.flowing) this.emit("data", Buffer.from(bytes));
    else this.buffered.push(Buffer.from(bytes));
  }
  pause(): this { this.flowing = false; return this; }
  resume(): this {
    this.flowing = true;
    while (this.flowing && this.buffered.length > 0) this.emit("data", this.buffered.shift());
    return this;
  }
  unshift(chunk: Buffer): void { this.buffered.unshift(chunk); }
  /** Bytes left for the TLS socket. */
  take(): string { return Buffer.concat(this.buffered.splice(0)).toString(); }
  destroy(): this {
    if (!this.destroyed) { this.destroyed = true; this.emit("close"); }
    return this;
  }
}

function setup(perTurn: number, maxQueued = 100) {
  const turns: (() => void)[] = [];
  const started: string[] = [];
  const paced: [TlsMode, PacedOutcome][] = [];
  const pacer = new HandshakePacer({ perTurn, maxQueued, onPaced: (mode, outcome) => paced.push([mode, outcome]), nextTurn: (fn) => turns.push(fn) });
  /** The next turn of the event loop: runs what was scheduled for it; returns what started in it. */
  const turn = (): string[] => {
    const before = started.length;
    for (const fn of turns.splice(0)) fn();
    return started.slice(before);
  };
  const submit = (s: FakeSocket, mode: TlsMode = "direct", wanted = () => true) =>
    pacer.submit(s as unknown as PacedSocket, mode, () => {
      if (!wanted()) return false;
      started.push(s.name);
      return true;
    });
  const sockets = (n: number, prefix = "s") => Array.from({ length: n }, (_, i) => new FakeSocket(`${prefix}${i}`));
  return { pacer, turn, turns, started, paced, submit, sockets };
}

describe("SPEC E8: HandshakePacer", () => {
  it("starts at most perTurn handshakes per turn, in arrival order", () => {
    const t = setup(3);
    const s = t.sockets(10);
    for (const x of s) { x.receive(); t.submit(x); }
    assert.deepEqual(t.started, ["s0", "s1", "s2"], "the first turn's slots are used at once");
    assert.equal(t.pacer.queued, 7);
    assert.deepEqual(t.turn(), ["s3", "s4", "s5"]);
    assert.deepEqual(t.turn(), ["s6", "s7", "s8"]);
    assert.deepEqual(t.turn(), ["s9"]);
    assert.equal(t.pacer.queued, 0);
    assert.deepEqual(t.turn(), [], "a turn with two free slots…");
    assert.equal(t.turns.length, 0, "…and an empty queue schedules nothing more");
    assert.equal(t.pacer.started, 10);
    assert.deepEqual(t.paced, Array.from({ length: 7 }, () => ["direct", "started"]), "only those that waited are counted");
  });

  it("the queue's and new arrivals' handshakes share the turn's slots: at most perTurn in all", () => {
    const t = setup(2);
    const [a, b, c, d] = t.sockets(4);
    for (const x of [a, b, c]) { x?.receive(); t.submit(x as FakeSocket); }
    assert.deepEqual(t.turn(), ["s2"]); // one slot left in this turn
    d?.receive();
    t.submit(d as FakeSocket);
    assert.deepEqual(t.started, ["s0", "s1", "s2", "s3"]);
    const [e, f, g] = t.sockets(3, "n");
    for (const x of [e, f, g]) { x?.receive(); t.submit(x as FakeSocket); }
    assert.deepEqual(t.started.slice(4), [], "the turn's two slots are used (s2, s3)");
    assert.deepEqual(t.turn(), ["n0", "n1"]);
    assert.deepEqual(t.turn(), ["n2"]);
  });

  it("waits for the first bytes (the ClientHello) before queueing; keeps reading while queued; gives every byte back in order", () => {
    const t = setup(1);
    const [slow, fast] = t.sockets(2);
    t.submit(slow as FakeSocket);
    assert.equal(slow?.flowing, true, "read until its first bytes arrive");
    fast?.receive();
    t.submit(fast as FakeSocket);
    assert.deepEqual(t.started, ["s1"], "the one whose ClientHello is in goes first");
    assert.equal(fast?.flowing, false, "paused for the TLS socket");
    assert.equal(fast?.take(), "ClientHello");
    slow?.receive("\x16\x03\x01hello");
    assert.deepEqual(t.started, ["s1"], "no slot left in this turn");
    assert.equal(slow?.flowing, true, "still read while it waits (a close or reset is seen)");
    slow?.receive(" more");
    assert.deepEqual(t.turn(), ["s0"]);
    assert.equal(slow?.flowing, false);
    assert.equal(slow?.take(), "\x16\x03\x01hello more", "the bytes read are put back for the TLS socket");
    assert.equal(slow?.listenerCount("data"), 0);
    assert.equal(slow?.listenerCount("close"), 0, "nothing of the pacer stays on a started socket");
  });

  it("a queued connection whose client has ended its side is dropped when its turn comes", () => {
    const t = setup(1);
    const [a, b, c] = t.sockets(3);
    for (const x of [a, b, c]) { t.submit(x as FakeSocket); x?.receive(); }
    (b as FakeSocket).readableEnded = true; // FIN read; the socket closes once its writes are done
    assert.deepEqual(t.turn(), ["s2"]);
    assert.deepEqual(t.paced, [["direct", "closed"], ["direct", "started"]]);
  });

  it("a queued connection that closes, or is cancelled, leaves the queue without using a slot", () => {
    const t = setup(2);
    const s = t.sockets(6);
    const handles = s.map((x) => { x.receive(); return t.submit(x); });
    assert.deepEqual(t.started, ["s0", "s1"]);
    s[2]?.destroy(); // the client went away
    handles[3]?.cancel(); // its Link ended (E4 timeout, drain)
    assert.equal(t.pacer.queued, 2);
    assert.deepEqual(t.turn(), ["s4", "s5"]);
    assert.deepEqual(t.paced.filter(([, o]) => o === "closed").length, 2);
    handles[4]?.cancel(); // already started: nothing happens
    assert.equal(t.paced.length, 4);
  });

  it("a connection its owner no longer wants when its turn comes (start returns false) uses no slot", () => {
    const t = setup(1);
    const [a, b, c] = t.sockets(3);
    let bWanted = true;
    for (const x of [a, b, c]) x?.receive();
    t.submit(a as FakeSocket);
    t.submit(b as FakeSocket, "starttls", () => bWanted);
    t.submit(c as FakeSocket);
    bWanted = false; // e.g. its Link is closing after connection-timeout
    assert.deepEqual(t.turn(), ["s2"], "b is skipped and c takes the slot");
    assert.deepEqual(t.paced, [["starttls", "closed"], ["direct", "started"]]);
  });

  it("a connection that closes before its first bytes is forgotten, and not counted", () => {
    const t = setup(1);
    const [a] = t.sockets(1);
    t.submit(a as FakeSocket);
    a?.destroy();
    a?.receive(); // ignored
    assert.deepEqual(t.started, []);
    assert.deepEqual(t.paced, []);
    assert.equal(a?.listenerCount("data"), 0);
  });

  it("is bounded: beyond maxQueued a connection is closed without a handshake, and counted", () => {
    const t = setup(1, 2);
    const s = t.sockets(5);
    for (const x of s) { x.receive(); t.submit(x, "starttls"); }
    assert.deepEqual(t.started, ["s0"]);
    assert.equal(t.pacer.queued, 2);
    assert.deepEqual([s[3]?.destroyed, s[4]?.destroyed], [true, true]);
    assert.deepEqual(t.paced, [["starttls", "refused"], ["starttls", "refused"]]);
    assert.deepEqual(t.turn(), ["s1"]);
    const late = new FakeSocket("late");
    late.receive();
    t.submit(late);
    assert.equal(late.destroyed, false, "room again after the queue moved");
    assert.deepEqual(t.turn(), ["s2"]);
    assert.deepEqual(t.turn(), ["late"]);
  });

  it("SPEC E6: close() (drain) closes every queued connection, and every later one, without a handshake", () => {
    const t = setup(1);
    const s = t.sockets(4);
    for (const x of s.slice(0, 3)) { x.receive(); t.submit(x); }
    const waiting = s[3] as FakeSocket;
    t.submit(waiting); // no bytes yet
    t.pacer.close();
    assert.equal(t.pacer.queued, 0);
    assert.deepEqual(s.map((x) => x.destroyed), [false, true, true, false]);
    waiting.receive();
    assert.equal(waiting.destroyed, true, "its ClientHello came after drain began");
    const later = new FakeSocket("later");
    later.receive();
    t.submit(later);
    assert.equal(later.destroyed, true);
    assert.deepEqual(t.turn(), []);
    assert.deepEqual(t.started, ["s0"]);
    assert.deepEqual(t.paced.map(([, o]) => o), ["drain", "drain", "drain", "drain"]);
  });
});
