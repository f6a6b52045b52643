// SPEC F8: with stream management, a queued offline room message leaves the store when the client acknowledges it,
// not when it was written: a session that takes the queue and is lost before acknowledging leaves it queued for
// the next login. In front of real Prosody 0.12 and ejabberd 23.01.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import type { TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { connectVia, join } from "./muc-support.js";
import { roomKept, submit, until } from "./muc-offline-support.js";

const SM = "urn:xmpp:sm:3";
const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`acknowledged offline delivery on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const open: TestClient[] = [];
    const raws: RawClient[] = [];
    before(async () => {
      server = await start();
      mux = await startMucmux({ upstreamPort: server.port, extra: { muc: { lingerSeconds: 2 } } });
    });
    after(async () => {
      for (const c of raws) c.close();
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
    });
    const queued = async (user: string) => ((await mux.app.store?.pending(`${user}@localhost`, Date.now(), 0, 100)) ?? []).length;

    /** A raw SM session of `user` (resumable for `max` s) that sends its initial presence; the catch-up follows. */
    const smLogin = async (user: string, resource: string, max: number) => {
      const c = await RawClient.connect(mux.directPort);
      raws.push(c);
      await c.login(user, `${user}pw`, resource);
      c.text = "";
      c.send(`<enable xmlns='${SM}' resume='true' max='${max}'/>`);
      await c.waitFor(/<enabled xmlns='urn:xmpp:sm:3' id='[^']+' resume='true'/);
      c.send("<presence/>");
      return c;
    };
    const offlineBodies = (c: RawClient) => [...c.text.matchAll(/<body>(queued \d)<\/body>/g)].map((m) => m[1]);

    it("removes queued messages only once acknowledged; a session lost first leaves them queued (SPEC F8)", async () => {
      const user = `sm${Date.now().toString(36).slice(-6)}`;
      await server.register(user, `${user}pw`);
      const r = `smoff-${Date.now().toString(36)}@conference.localhost`;
      const bob = await connectVia(mux.directPort, "bob", "smoff");
      open.push(bob);
      await bob.send(xml("presence"));
      await join(bob, r, "bob");
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${user}@localhost`, affiliation: "member" }))));
      const a = await connectVia(mux.directPort, user, "siskin");
      await a.send(xml("presence"));
      await join(a, r, user);
      await a.iq(submit(r, user, "1"));
      await a.stop();
      await roomKept(mux, user, r);
      for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, `queued ${i}`)));
      await until("three queued", async () => (await queued(user)) === 3);

      // A phone takes the queue and loses its connection before acknowledging anything.
      const lost = await smLogin(user, "lost", 1);
      await lost.waitFor(/queued 3/);
      assert.deepEqual(offlineBodies(lost), ["queued 1", "queued 2", "queued 3"]);
      await new Promise((res) => setTimeout(res, 300));
      assert.equal(await queued(user), 3, "written but not acknowledged: still in the store");
      const expired = await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="expired"`);
      lost.close();
      await until("the hibernation expired", async () => (await metric(mux.adminPort, "mucmux_sm_hibernation_ends_total", `outcome="expired"`)) > expired);
      assert.equal(await queued(user), 3, "never acknowledged: queued for the next login");

      // The next login gets them again and acknowledges: then they leave the store.
      const next = await smLogin(user, "next", 60);
      await next.waitFor(/queued 3/);
      assert.deepEqual(offlineBodies(next), ["queued 1", "queued 2", "queued 3"]);
      const received = next.stanzas();
      next.send(`<a xmlns='${SM}' h='${received}'/>`);
      await until("acknowledged ones removed", async () => (await queued(user)) === 0);

      // That phone loses its network: while its only session is hibernated, room messages go to the store, not
      // into a queue that a phone which never comes back would take with it; the resumed session gets them.
      const resumable = (next.text.match(/<enabled xmlns='urn:xmpp:sm:3' id='([^']+)'/) ?? [])[1] as string;
      next.close();
      await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) === 1);
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "queued 4")));
      await until("queued while hibernated", async () => (await queued(user)) === 1);
      const back = await RawClient.connect(mux.directPort);
      raws.push(back);
      await back.authenticate(user, `${user}pw`);
      assert.match(back.text, /<sm xmlns='urn:xmpp:sm:3'\/>/);
      back.text = "";
      back.send(`<resume xmlns='${SM}' previd='${resumable}' h='${received}'/>`);
      await back.waitFor(/<resumed /);
      await back.waitFor(/queued 4/);
      assert.deepEqual(offlineBodies(back), ["queued 4"], "only what was queued meanwhile");
      const more = back.stanzas();
      back.send(`<a xmlns='${SM}' h='${received + more}'/>`);
      await until("acknowledged, removed", async () => (await queued(user)) === 0);
    });
  });
}

suite("Prosody 0.12", () => startProsody());
suite("ejabberd 23.01", () => startEjabberd());
