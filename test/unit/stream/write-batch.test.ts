// Writes toward devices leave once per socket per turn (src/stream/write-batch.ts): each socket written to is
// corked once and uncorked once at the end of the turn, its last-word callback (stream management's <r/>) runs
// just before, and on a real socket the stanzas of one turn leave in one write, in order.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import net, { type Socket } from "node:net";
import { once } from "node:events";
import { WriteBatch, type Holdable } from "../../../src/stream/write-batch.js";
import { flush } from "../helpers.js";

/** A writer whose socket only records cork/uncork and what was written while corked. */
function fakeSocket(name: string, log: string[]): Holdable & { corked: number; write(s: string): boolean } {
  const s = {
    corked: 0,
    cork() { s.corked++; log.push(`cork ${name}`); },
    uncork() { s.corked--; log.push(`uncork ${name}`); },
  };
  return {
    socket: s as unknown as Socket,
    batchHold: undefined,
    get corked() { return s.corked; },
    write(text: string) { log.push(`${name} ${text}${s.corked > 0 ? "" : " (uncorked)"}`); return true; },
  };
}

const noError = (err: unknown) => assert.fail(`unexpected error: ${String(err)}`);

describe("WriteBatch", () => {
  it("corks a socket at its first write of the turn and uncorks it once when the turn is over", async () => {
    const log: string[] = [];
    const batch = new WriteBatch(noError);
    const a = fakeSocket("a", log), b = fakeSocket("b", log);
    for (const [s, t] of [[a, "1"], [b, "1"], [a, "2"], [b, "2"], [a, "3"]] as const) {
      batch.hold(s);
      s.write(t);
    }
    assert.equal(batch.size, 2);
    await Promise.resolve(); // not before the turn's synchronous work and its ticks are over
    assert.deepEqual(log, ["cork a", "a 1", "cork b", "b 1", "a 2", "b 2", "a 3"]);
    await flush();
    assert.deepEqual(log.slice(7), ["uncork a", "uncork b"]);
    assert.equal(a.corked, 0);
    assert.equal(b.corked, 0);
    assert.equal(batch.size, 0);
  });

  it("each turn is a batch of its own", async () => {
    const log: string[] = [];
    const batch = new WriteBatch(noError);
    const a = fakeSocket("a", log);
    batch.hold(a);
    await flush();
    batch.hold(a);
    await flush();
    assert.deepEqual(log, ["cork a", "uncork a", "cork a", "uncork a"]);
  });

  it("last() runs once per socket and turn, right before the uncork; false when the socket is not held", async () => {
    const log: string[] = [];
    const batch = new WriteBatch(noError);
    const a = fakeSocket("a", log), b = fakeSocket("b", log);
    assert.equal(batch.last(a, () => a.write("never")), false);
    batch.hold(a);
    batch.hold(b);
    assert.equal(batch.last(a, () => a.write("<r/>")), true);
    assert.equal(batch.last(a, () => a.write("second <r/>")), true); // the first one stays
    a.write("stanza");
    await flush();
    assert.deepEqual(log, ["cork a", "cork b", "a stanza", "a <r/>", "uncork a", "uncork b"]);
  });

  it("a write during the flush joins it when its socket is not flushed yet, else makes a batch of its own", async () => {
    const log: string[] = [];
    const batch = new WriteBatch(noError);
    const a = fakeSocket("a", log), b = fakeSocket("b", log);
    batch.hold(a);
    batch.hold(b);
    batch.last(a, () => {
      batch.hold(b); // b is still held: no second cork
      b.write("from a's last");
    });
    batch.last(b, () => {
      batch.hold(a); // a was uncorked already: held again, flushed at the end of this flush's turn
      a.write("from b's last");
    });
    await flush();
    assert.deepEqual(log, [
      "cork a", "cork b", "b from a's last", "uncork a", "cork a", "a from b's last", "uncork b", "uncork a",
    ]);
    assert.equal(a.corked, 0);
    assert.equal(b.corked, 0);
  });

  it("a last() that throws is reported, and every socket is uncorked all the same", async () => {
    const log: string[] = [];
    const errors: unknown[] = [];
    const batch = new WriteBatch((err) => errors.push(err));
    const a = fakeSocket("a", log), b = fakeSocket("b", log);
    batch.hold(a);
    batch.hold(b);
    batch.last(a, () => { throw new Error("boom"); });
    await flush();
    assert.equal(errors.length, 1);
    assert.deepEqual(log, ["cork a", "cork b", "uncork a", "uncork b"]);
  });

  it("on a real socket the stanzas of one turn leave in one write, in order", async () => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const accepted = once(server, "connection");
    const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    await once(client, "connect");
    const [peer] = (await accepted) as [Socket];
    try {
      const writes: number[] = [];
      const proto = Object.getPrototypeOf(peer) as { _writev: (chunks: unknown[], cb: unknown) => unknown; _write: (...a: unknown[]) => unknown };
      const own = peer as unknown as typeof proto;
      own._writev = function (this: Socket, chunks: unknown[], cb: unknown) { writes.push(chunks.length); return proto._writev.call(this, chunks, cb); };
      own._write = function (this: Socket, ...args: unknown[]) { writes.push(1); return proto._write.apply(this, args); };
      const batch = new WriteBatch(noError);
      const writer: Holdable = { socket: peer, batchHold: undefined };
      const stanzas = ["<message id='1'/>", "<message id='2'/>", "<message id='3'/>"];
      for (const s of stanzas) {
        batch.hold(writer);
        peer.write(s);
      }
      batch.last(writer, () => peer.write("<r xmlns='urn:xmpp:sm:3'/>"));
      assert.deepEqual(writes, [], "nothing leaves before the end of the turn");
      let received = "";
      client.on("data", (d: Buffer) => { received += d.toString(); });
      const expected = [...stanzas, "<r xmlns='urn:xmpp:sm:3'/>"].join("");
      await new Promise<void>((resolve) => { const check = () => (received.length >= expected.length ? resolve() : setTimeout(check, 5)); check(); });
      assert.equal(received, expected);
      assert.deepEqual(writes, [4], "one write of all four");
    } finally {
      client.destroy();
      peer.destroy();
      server.close();
    }
  });
});
