// One front door toward devices, against real Prosody 0.12 and ejabberd 23.01: every stanza written to a
// client passes that session's outbound chain (a probe stage placed last in the s2c order counts what each
// session is written and sees relayed, fanned-out, synthesized and offline stanzas), and a stage that throws
// costs only its own handling of one stanza (toward a device: that copy): the anchor and the client streams
// stay up (SPEC E7).
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import type { TestClient } from "../support/clients.js";
import type { Stage, StanzaContext } from "../../src/chain/stage.js";
import type { Origin, Session } from "../../src/chain/session.js";
import { codesOf, connectVia, isGroupchat, join, waitAfter } from "./muc-support.js";
import { getRegistration, isCopy, metric, submit, until } from "./muc-offline-support.js";

const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const STANZAS = new Set(["message", "presence", "iq"]);

interface Seen { session: Session; origin: Origin | "client"; el: Element }

/** Records every stanza toward a device, as it leaves the outbound chain (first in the list: last in s2c). */
function probe(seen: Seen[]): Stage {
  return {
    name: "probe",
    wants: (_el, direction) => direction === "s2c",
    s2c(ctx: StanzaContext) {
      seen.push({ session: ctx.session, origin: ctx.origin, el: ctx.stanza });
    },
  };
}

/** Throws on the anchor path, and on the outbound path of one session, for messages with these bodies. */
function thrower(): Stage {
  const body = (el: Element) => el.getChildText("body") ?? "";
  return {
    name: "thrower",
    wants: (el, direction) => direction === "s2c" && el.name === "message" && body(el).startsWith("boom-out"),
    s2c(ctx: StanzaContext) {
      if (ctx.session.jid?.endsWith("/victim")) throw new Error("a stage failing on one stanza for one session");
    },
    anchor(account, el) {
      if (!account.bare.startsWith("bob@") && el.name === "message" && body(el) === "boom-anchor") throw new Error("a stage failing on one anchor stanza");
    },
  };
}

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`one front door toward devices on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const seen: Seen[] = [];
    const open: TestClient[] = [];
    let n = 0;
    const room = () => `door${++n}-${Date.now().toString(36)}@conference.localhost`;
    const fresh = async () => {
      const user = `fd${++n}${Date.now().toString(36).slice(-5)}`;
      await server.register(user, `${user}pw`);
      return user;
    };
    const connect = async (user: string, resource: string, presence = true) => {
      const c = await connectVia(mux.directPort, user, resource);
      open.push(c);
      if (presence) await c.send(xml("presence"));
      return c;
    };
    const seenBy = (c: TestClient) => seen.filter((s) => s.session.jid === c.jid);

    before(async () => {
      server = await start();
      mux = await startMucmux({
        upstreamPort: server.port,
        extra: { muc: { lingerSeconds: 2 } },
        stages: (_deps, configured) => [probe(seen), thrower(), ...configured],
      });
    });
    afterEach(async () => { await Promise.allSettled(open.splice(0).map((c) => c.stop())); });
    after(async () => {
      await mux?.stop();
      await server?.stop();
    });

    it("SPEC E7: every stanza a client receives passed its outbound chain: relayed, fanned out, synthesized, offline", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect("bob", `fd${n}`);
      await join(bob, r, "bob");
      // Prosody lets only affiliated users register in a room: bob makes al a member.
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${al}@localhost`, affiliation: "member" }))));
      const a1 = await connect(al, "one");
      const a2 = await connect(al, "two");
      await join(a1, r, al); // the anchor's join upstream: its self-presence goes to a1
      const joined2 = await join(a2, r, al); // answered from the cache: synthesized
      assert.ok(codesOf(joined2.find((el) => el.name === "presence" && codesOf(el).includes("110")) as Element).includes("110"));
      const synthesized = seenBy(a2).filter((s) => s.el.name === "presence" && codesOf(s.el).includes("110"));
      assert.equal(synthesized.length, 1, "the synthesized self-presence passed a2's chain");
      assert.equal(synthesized[0]?.origin, "local");

      const mark = seen.length;
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "fanned")));
      await a1.waitFor(isGroupchat(r, "fanned"));
      await a2.waitFor(isGroupchat(r, "fanned"));
      const fanned = seen.slice(mark).filter((s) => s.el.name === "message" && s.el.getChildText("body") === "fanned" && s.session.jid !== bob.jid);
      assert.deepEqual(fanned.map((s) => s.session.jid).sort(), [a1.jid, a2.jid].sort(), "one copy per joined session, each through its chain");
      assert.ok(fanned.every((s) => s.origin === "anchor"));

      // Offline delivery: the flag on, every device gone, a message queued, then delivered at the next login.
      await getRegistration(a1, r);
      assert.equal((await a1.iq(submit(r, al, "1"))).attrs.type, "result");
      const relayed = seenBy(a1).filter((s) => s.origin === "upstream").length;
      assert.ok(relayed > 0, "stanzas from the session's own leg (roster, bind, ...) pass the chain too");

      // Before they leave: what each client received is exactly what its chain let through (message, presence, iq).
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "last before leaving")));
      for (const c of [a1, a2]) {
        await c.waitFor(isGroupchat(r, "last before leaving"));
        const got = c.received.filter((el) => STANZAS.has(el.name)).length;
        const short = (el: Element) => `${el.name} ${el.attrs.type ?? ""} ${el.attrs.id ?? ""} ${el.attrs.from ?? ""} ${el.children.map((x) => typeof x === "string" ? "" : x.name).join(",")}`;
        assert.equal(got, seenBy(c).length, `${c.jid}: every stanza written passed the outbound chain\nclient:\n${c.received.filter((el) => STANZAS.has(el.name)).map(short).join("\n")}\nchain:\n${seenBy(c).map((x) => short(x.el)).join("\n")}`);
      }
      await a1.stop();
      await a2.stop();
      await until("the account's sessions are gone", () => mux.app.accounts.get(`${al}@localhost`)?.sessions.size === 0);
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "while away")));
      await until("queued", async () => ((await mux.app.store?.pending(`${al}@localhost`, Date.now(), 0, 10)) ?? []).length === 1);
      const a3 = await connect(al, "three");
      await a3.waitFor(isCopy(r, "while away"), 10_000);
      const delivered = seenBy(a3).filter((s) => s.el.name === "message" && s.el.getChildText("body") === "while away");
      assert.equal(delivered.length, 1, "the offline delivery passed a3's chain");
      assert.equal(delivered[0]?.origin, "local");
    });

    it("SPEC E7: a stage that throws on an anchor stanza costs only its own handling of it, one throwing toward a device that copy: streams stay up", async () => {
      const r = room();
      const al = await fresh();
      const bob = await connect("bob", `fdb${n}`);
      await join(bob, r, "bob");
      const a1 = await connect(al, "one");
      const victim = await connect(al, "victim");
      await join(a1, r, al);
      await join(victim, r, al);
      const anchor = mux.app.accounts.get(`${al}@localhost`)?.anchor;
      assert.ok(anchor && anchor.state === "online");
      const errors = () => metric(mux.adminPort, "mucmux_stage_errors_total", 'stage="thrower",path="anchor"');
      const outErrors = () => metric(mux.adminPort, "mucmux_stage_errors_total", 'stage="thrower",path="s2c"');
      const before = await errors();
      const beforeOut = await outErrors();
      const bobMark = bob.received.length;
      const mark1 = a1.received.length;
      const markV = victim.received.length;
      for (const body of ["boom-anchor", "after the anchor failure", "boom-out", "after the outbound failure"]) {
        await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, body)));
      }
      await waitAfter(a1, mark1, isGroupchat(r, "after the outbound failure"), 10_000);
      await waitAfter(victim, markV, isGroupchat(r, "after the outbound failure"), 10_000);
      const bodies = (c: TestClient, from: number) => c.received.slice(from)
        .filter((el) => el.name === "message" && el.attrs.type === "groupchat").map((el) => el.getChildText("body"));
      // The failing anchor handler runs before muc-fold: the fan-out still happens (each stage handles an anchor
      // stanza on its own); the failing outbound handler costs the victim's copy only.
      assert.deepEqual(bodies(a1, mark1), ["boom-anchor", "after the anchor failure", "boom-out", "after the outbound failure"], "a1 lost nothing");
      assert.deepEqual(bodies(victim, markV), ["boom-anchor", "after the anchor failure", "after the outbound failure"], "the victim lost its own copy only");
      assert.equal(await errors(), before + 1);
      assert.equal(await outErrors(), beforeOut + 1);
      assert.equal(mux.app.accounts.get(`${al}@localhost`)?.anchor, anchor, "the same anchor");
      assert.equal(anchor.state, "online");
      // The room never saw the account leave or join again (bob is an occupant and sees every presence).
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "bob's last")));
      await waitAfter(bob, bobMark, isGroupchat(r, "bob's last"));
      const presences = bob.received.slice(bobMark).filter((el) => el.name === "presence" && el.attrs.from === `${r}/${al}`);
      assert.deepEqual(presences.map((p) => p.attrs.type ?? "available").filter((t) => t === "unavailable"), [], "no leave");
      assert.equal(victim.errors.length, 0, "the victim's stream stayed up");
    });
  });
}

suite("Prosody 0.12", startProsody);
suite("ejabberd 23.01", startEjabberd);
