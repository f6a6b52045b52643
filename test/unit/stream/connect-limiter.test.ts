// The upstream connect rate cap (upstream.connectsPerSecond): a token bucket for logins and anchors, logins first,
// a bounded wait for logins, an unbounded one for anchors, nothing at all when off. Mocked timers and
// clock: the grant times below are exact, not measured.
import { describe, it, beforeEach, afterEach, mock } from "node:test";
import assert from "node:assert/strict";
import { ConnectLimiter, limitConnects, type ConnectKind } from "../../../src/stream/connect-limiter.js";
import type { UpstreamOutcome } from "../../../src/stream/upstream.js";

let clock = 0;
const now = () => clock;
const advance = async (ms: number) => {
  await new Promise((r) => setImmediate(r)); // what is due now settles at the current time
  for (let i = 0; i < ms; i++) {
    clock += 1;
    mock.timers.tick(1);
    await Promise.resolve();
  }
  await new Promise((r) => setImmediate(r));
};

/** Acquires and records when (fake ms) each resolved and how. */
function track(l: ConnectLimiter, kinds: ConnectKind[]) {
  const got: { i: number; kind: ConnectKind; ok: boolean; at: number }[] = [];
  kinds.forEach((kind, i) => void l.acquire(kind).then((ok) => got.push({ i, kind, ok, at: clock })));
  return got;
}

describe("ConnectLimiter", () => {
  beforeEach(() => {
    clock = 0;
    mock.timers.enable({ apis: ["setTimeout"] });
  });
  afterEach(() => mock.timers.reset());

  it("0 = off: every connect goes at once", async () => {
    const l = new ConnectLimiter({ perSecond: 0, burst: 1, loginWaitMs: 0, now });
    const got = track(l, Array(50).fill("login"));
    await advance(1);
    assert.equal(got.filter((g) => g.ok && g.at === 0).length, 50);
  });

  it("a burst at once, then one connect per 1/rate seconds", async () => {
    const limited: string[] = [];
    const l = new ConnectLimiter({ perSecond: 10, burst: 3, loginWaitMs: 10_000, now, onLimited: (k, o) => void limited.push(`${k}:${o}`) });
    const got = track(l, Array(6).fill("login"));
    await advance(350);
    assert.deepEqual(got.map((g) => [g.i, g.ok, g.at]), [[0, true, 0], [1, true, 0], [2, true, 0], [3, true, 100], [4, true, 200], [5, true, 300]]);
    assert.deepEqual(limited, ["login:waited", "login:waited", "login:waited"]);
    // Quiet for a while: the bucket refills to the burst, not beyond.
    await advance(1000);
    const again = track(l, Array(5).fill("anchor"));
    await advance(250);
    assert.deepEqual(again.map((g) => g.at - 1350), [0, 0, 0, 100, 200]);
  });

  it("logins go before anchors that waited longer; anchors wait as long as it takes", async () => {
    const l = new ConnectLimiter({ perSecond: 10, burst: 1, loginWaitMs: 10_000, now });
    const anchors = track(l, ["anchor", "anchor", "anchor"]);
    await advance(1);
    const login = track(l, ["login"]);
    await advance(400);
    assert.equal(login[0]?.at, 100, "the login took the next slot");
    assert.deepEqual(anchors.map((g) => [g.i, g.ok, g.at]), [[0, true, 0], [1, true, 200], [2, true, 300]]);
  });

  it("a login waits at most loginWaitMs, then is refused; 0 refuses at once", async () => {
    const limited: string[] = [];
    const l = new ConnectLimiter({ perSecond: 1, burst: 1, loginWaitMs: 150, now, onLimited: (k, o) => void limited.push(`${k}:${o}`) });
    const got = track(l, ["login", "login", "anchor"]);
    await advance(1100);
    assert.deepEqual(got.map((g) => [g.kind, g.ok, g.at]), [["login", true, 0], ["login", false, 150], ["anchor", true, 1000]]);
    assert.deepEqual(limited, ["login:refused", "anchor:waited"]);
    const strict = new ConnectLimiter({ perSecond: 1, burst: 1, loginWaitMs: 0, now });
    const s = track(strict, ["login", "login"]);
    await advance(1);
    assert.deepEqual(s.map((g) => g.ok), [true, false]);
  });

  it("close(): waiters and later acquires are refused", async () => {
    const l = new ConnectLimiter({ perSecond: 1, burst: 1, loginWaitMs: 10_000, now });
    const got = track(l, ["login", "login", "anchor"]);
    await advance(1);
    l.close();
    await advance(1);
    assert.deepEqual(got.map((g) => g.ok), [true, false, false]);
    assert.equal(await l.acquire("anchor"), false);
    const off = new ConnectLimiter({ perSecond: 0, burst: 1, loginWaitMs: 0, now });
    off.close();
    assert.equal(await off.acquire("login"), false, "closed (drain) also when there is no cap");
  });

  it("limitConnects: a refused login is a SASL temporary-auth-failure, nothing is sent upstream", async () => {
    const l = new ConnectLimiter({ perSecond: 1, burst: 1, loginWaitMs: 0, now });
    let calls = 0;
    const ok = { ok: false, reason: "connect", detail: "test" } as UpstreamOutcome;
    const login = limitConnects(l, "login", async () => { calls++; return ok; });
    assert.equal(await login(), ok);
    const refused = await login();
    assert.equal(calls, 1);
    assert.deepEqual(refused.ok ? undefined : { reason: refused.reason, condition: "condition" in refused ? refused.condition : undefined },
      { reason: "sasl", condition: "temporary-auth-failure" });
    l.close();
    const anchor = limitConnects(l, "anchor", async () => { calls++; return ok; });
    const out = await anchor();
    assert.equal(calls, 1);
    assert.equal(!out.ok && out.reason, "connect");
  });

  it("a login whose client went away stops waiting: its place goes to the next in line, nothing is counted", async () => {
    const limited: string[] = [];
    const l = new ConnectLimiter({ perSecond: 10, burst: 1, loginWaitMs: 10_000, now, onLimited: (k, o) => void limited.push(`${k}:${o}`) });
    track(l, ["login"]); // takes the only token at 0
    const results: [string, boolean, number][] = [];
    const gone = new AbortController();
    void l.acquire("login", gone.signal).then((ok) => results.push(["gone", ok, clock]));
    void l.acquire("login").then((ok) => results.push(["next", ok, clock]));
    await advance(10);
    gone.abort();
    await advance(120);
    assert.deepEqual(results, [["gone", false, 10], ["next", true, 100]]);
    assert.deepEqual(limited, ["login:waited"], "the one that went away is neither waited nor refused");
    assert.equal(await l.acquire("login", AbortSignal.abort()), false, "an aborted signal never waits");
    // Through limitConnects: nothing is sent upstream for a client that went away.
    let calls = 0;
    const login = limitConnects(l, "login", async (_s?: AbortSignal) => { calls++; return { ok: false, reason: "connect", detail: "test" } as UpstreamOutcome; },
      (s) => s);
    const out = await login(AbortSignal.abort());
    assert.equal(calls, 0);
    assert.equal(!out.ok && out.reason, "connect");
  });
});
