// The test harness's round-robin TCP balancer (test/support/balancer.ts), which the cluster integration tests put in
// front of the replicas: round robin, a dead backend skipped, half-close both ways, setBackends() and close().
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { startBalancer, type Balancer } from "../../support/balancer.js";
import { freePort } from "../../support/ports.js";

/** A backend that answers each connection with its name, then echoes; on the client's FIN it writes "bye" and ends. */
async function backend(name: string): Promise<{ port: number; server: net.Server; ended: number }> {
  const state = { port: 0, server: net.createServer({ allowHalfOpen: true }), ended: 0 };
  state.server.on("connection", (s) => {
    s.on("error", () => s.destroy());
    s.write(`${name}\n`);
    s.on("data", (d) => s.write(d));
    s.on("end", () => {
      state.ended++;
      s.end("bye");
    });
  });
  await new Promise<void>((r) => state.server.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  state.port = (state.server.address() as net.AddressInfo).port;
  return state;
}

/** Connects through the balancer; resolves with the first line (the backend's name) and the socket. */
const dialed: net.Socket[] = [];
function dial(port: number): Promise<{ name: string; sock: net.Socket; rest: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    dialed.push(sock);
    let buf = "";
    let named = false;
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    sock.on("data", (d) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (!named && nl >= 0) {
        named = true;
        const name = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        resolve({ name, sock, rest: () => buf, closed });
      }
    });
    sock.on("end", () => { if (!named) reject(new Error("closed before the backend's name")); });
    sock.on("error", reject);
  });
}

describe("test balancer (test/support/balancer.ts)", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => { for (const c of cleanup.reverse()) await c(); for (const s of dialed) s.destroy(); });

  it("gives connections to the backends in turn, pipes both ways and passes half-close on", { timeout: 10_000 }, async () => {
    const bs = await Promise.all(["b0", "b1", "b2"].map(backend));
    for (const b of bs) cleanup.push(() => new Promise<void>((r) => b.server.close(() => r())));
    const lb: Balancer = await startBalancer(bs.map((b) => b.port));
    cleanup.push(() => lb.close());
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await dial(lb.port);
      names.push(c.name);
      c.sock.write("ping");
      await new Promise<void>((r) => { const t = setInterval(() => { if (c.rest() === "ping") { clearInterval(t); r(); } }, 5); });
      c.sock.end(); // half-close: the backend still answers after our FIN
      await c.closed;
      assert.equal(c.rest(), "pingbye");
    }
    assert.deepEqual(names, ["b0", "b1", "b2", "b0", "b1", "b2"]);
    assert.deepEqual(lb.counts(), [2, 2, 2]);
    assert.deepEqual(bs.map((b) => b.ended), [2, 2, 2], "each backend saw the client's FIN");
    assert.equal(lb.open, 0);
  });

  it("skips a backend whose connect fails; setBackends() replaces the list; close() ends open connections", { timeout: 10_000 }, async () => {
    const [b0, b2] = await Promise.all([backend("b0"), backend("b2")]);
    cleanup.push(() => new Promise<void>((r) => b0.server.close(() => r())), () => new Promise<void>((r) => b2.server.close(() => r())));
    const dead = await freePort(); // nothing listens there
    const lb = await startBalancer([b0.port, dead, b2.port]);
    cleanup.push(() => lb.close());
    const names: string[] = [];
    const socks: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await dial(lb.port);
      names.push(c.name);
      socks.push(c.sock);
    }
    assert.deepEqual(names, ["b0", "b2", "b0", "b2"]);
    assert.equal(lb.connections(dead), 0);
    assert.equal(lb.failures(dead), 2);
    assert.equal(lb.open, 4);
    lb.setBackends([b2.port]);
    const c = await dial(lb.port);
    assert.equal(c.name, "b2");
    socks.push(c.sock);
    // (Half-open sockets: the balancer's FIN shows as "end".)
    const closed = socks.map((s) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : (s.once("end", () => r()), s.once("close", () => r())))));
    await lb.close();
    await Promise.all(closed);
    assert.equal(lb.open, 0);
    await assert.rejects(dial(lb.port), /ECONNREFUSED/);
  });

  it("closes the client's connection when no backend accepts", { timeout: 10_000 }, async () => {
    const lb = await startBalancer([await freePort(), await freePort()], { connectTimeoutMs: 500 });
    cleanup.push(() => lb.close());
    await assert.rejects(dial(lb.port), /closed before|ECONNRESET/);
  });
});
