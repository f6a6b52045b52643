// Room push (SPEC G1–G5) in front of Prosody 0.12 with mod_cloud_notify and ejabberd 23.01 with mod_push, each with a
// stand-in app server that records every publish: a user who enabled push (through mucmux) and turned offline
// delivery on for a room, then went away, is woken by the server's own push within seconds of a room message; the
// next ones coalesce, a mention always wakes; at the next login the device gets the room messages once and no
// wake-up; the user's archive holds none.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { xml, type Element } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { StartServerOptions, XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { startPushAppServer, type PushAppServer } from "../support/push-app-server.js";
import { quietPeriod, until } from "../support/wait.js";
import { RawClient } from "../support/raw-client.js";
import { connectVia, join } from "./muc-support.js";
import { roomKept, submit } from "./muc-offline-support.js";

const WAKEUP = "urn:mucmux:wakeup:0";
const SM = "urn:xmpp:sm:3";
const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const hasWakeup = (el: Element): boolean => el.toString().includes(WAKEUP);
/** XEP-0357 enable as Conversations sends it: the app server, the node, a publish-options form with the secret. */
const pushEnable = (node: string) => xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:push:0", jid: "push.localhost", node },
  xml("x", { xmlns: "jabber:x:data", type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
    xml("field", { var: "secret" }, xml("value", {}, "s3cret")))));

function suite(name: string, start: (o: StartServerOptions & { mam?: boolean }) => Promise<XmppTestServer>): void {
  describe(`room push through the server's push module, ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    let app: PushAppServer;
    const open: TestClient[] = [];
    const raws: RawClient[] = [];
    before(async () => {
      server = await start({ push: true, mam: true });
      if (!server.pushComponent) throw new Error("no push component");
      app = await startPushAppServer(server.pushComponent);
      mux = await startMucmux({ upstreamPort: server.port, extra: { muc: { lingerSeconds: 2 }, wakeup: { intervalSeconds: 30, maxPending: 2 } } });
    });
    after(async () => {
      for (const c of raws) c.close();
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await app?.close();
      await server?.stop();
    });
    const wakeups = (outcome: string) => metric(mux.adminPort, "mucmux_wakeups_total", `outcome="${outcome}"`);

    /** An account that enabled push through `m` (as Conversations does at login), turned `r`'s offline setting on, and left. */
    const awayUser = async (m: TestMucmux) => {
      const user = `wk${randomBytes(3).toString("hex")}`;
      await server.register(user, `${user}pw`);
      const node = `node-${user}`;
      const r = `wake-${Date.now().toString(36)}-${user}@conference.localhost`;
      const bob = await connectVia(m.directPort, "bob", `wk-${user}`);
      open.push(bob);
      await bob.send(xml("presence"));
      await join(bob, r, "bob");
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${user}@localhost`, affiliation: "member" }))));
      const phone = await connectVia(m.directPort, user, "phone");
      await phone.send(xml("presence"));
      const enabled = await phone.iq(pushEnable(node));
      assert.equal(enabled.attrs.type, "result");
      await join(phone, r, user);
      await phone.iq(submit(r, user, "1"));
      await phone.stop();
      await roomKept(m, user, r);
      return { user, node, r, bob };
    };

    it("wakes an away account for room messages, coalesces, always for a mention; the next login gets the messages and no wake-up (SPEC G1–G5)", async () => {
      const { user, node, r, bob } = await awayUser(mux);

      // A room message: queued by mucmux, and the server pushes (from its domain JID) for the wake-up.
      const sent = await wakeups("sent");
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "first news")));
      const [first] = await app.waitForPublishes(1, 10_000, node);
      assert.equal(first?.from, "localhost", "published by the user's server");
      assert.deepEqual(first?.publishOptions, { secret: "s3cret" });
      assert.equal(await wakeups("sent"), sent + 1);
      // More while that one is unanswered: coalesced, no new push; a mention of the user's nick wakes anyway.
      const coalesced = await wakeups("coalesced");
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "more news")));
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "and more")));
      await until("coalesced", async () => (await wakeups("coalesced")) === coalesced + 2);
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, `${user}: are you coming?`)));
      await app.waitForPublishes(2, 10_000, node);
      await quietPeriod(2000, "a push is the server's own timer (Prosody batches 1 s)");
      assert.equal(app.publishesFor(node).length, 2, "one for the first message, one for the mention");

      // The next login through mucmux: the room messages once each, no wake-up (the server's offline flood had two).
      const back = await connectVia(mux.directPort, user, "phone2");
      open.push(back);
      await back.send(xml("presence"));
      await until("the queued room messages", () => back.received.filter((el) => el.attrs.type === "groupchat" && el.getChild("body")).length >= 4, 10_000);
      await until("both wake-ups stripped", async () => (await metric(mux.adminPort, "mucmux_wakeups_stripped_total", `where="direct"`)) >= 2, 10_000);
      await quietPeriod(500, "nothing more arrives");
      const bodies = back.received.filter((el) => el.attrs.type === "groupchat").map((el) => el.getChildText("body")).filter(Boolean);
      assert.deepEqual(bodies, ["first news", "more news", "and more", `${user}: are you coming?`]);
      assert.ok(!back.received.some(hasWakeup), "no wake-up reached the device");

      // The user's archive (read straight from the server, bypassing mucmux) holds no wake-up.
      const direct = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: user, password: `${user}pw`, resource: "archive", mechanism: "SCRAM-SHA-1" });
      open.push(direct);
      const fin = await direct.iq(xml("iq", { type: "set" }, xml("query", { xmlns: "urn:xmpp:mam:2", queryid: "q1" })), 10_000);
      assert.equal(fin.attrs.type, "result");
      await quietPeriod(300, "the results come before the answer; a little slack");
      const results = direct.received.filter((el) => el.getChild("result", "urn:xmpp:mam:2"));
      assert.ok(!results.some(hasWakeup), `the archive holds no wake-up (${results.length} results)`);
    });

    it("caps unanswered wake-ups per account (SPEC G3)", async () => {
      const capped = await startMucmux({ upstreamPort: server.port, extra: { muc: { lingerSeconds: 2 }, wakeup: { intervalSeconds: 0, maxPending: 2 } } });
      try {
        const { node, r, bob } = await awayUser(capped);
        const count = (outcome: string) => metric(capped.adminPort, "mucmux_wakeups_total", `outcome="${outcome}"`);
        for (let i = 1; i <= 3; i++) await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, `burst ${i}`)));
        await until("two sent, one capped", async () => (await count("sent")) === 2 && (await count("capped")) === 1);
        await app.waitForPublishes(2, 10_000, node);
        await quietPeriod(2000, "a push is the server's own timer");
        assert.equal(app.publishesFor(node).length, 2);
        await bob.stop();
      } finally {
        await capped.stop();
      }
    });

    it("wakes a hibernated device for a room message; its resumed stream carries no wake-up (SPEC G1, G5)", async () => {
      const user = `hb${randomBytes(3).toString("hex")}`;
      await server.register(user, `${user}pw`);
      const node = `node-${user}`;
      const r = `hib-${Date.now().toString(36)}-${user}@conference.localhost`;
      const bob = await connectVia(mux.directPort, "bob", `hb-${user}`);
      open.push(bob);
      await bob.send(xml("presence"));
      await join(bob, r, "bob");
      const phone = await RawClient.connect(mux.directPort);
      raws.push(phone);
      await phone.login(user, `${user}pw`, "phone");
      phone.text = "";
      phone.send(`<enable xmlns='${SM}' resume='true'/>`);
      const id = (await phone.waitFor(/<enabled xmlns='urn:xmpp:sm:3' id='([^']+)'/))[1] as string;
      phone.send("<presence/>");
      const enable = pushEnable(node);
      enable.attrs.id = "push1";
      phone.send(enable.toString());
      await phone.waitFor(/<iq [^>]*id='push1'[^>]*type='result'|<iq [^>]*type='result'[^>]*id='push1'/);
      phone.send(`<presence to='${r}/${user}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
      await phone.waitFor(new RegExp(`from='${r}/${user}'[^>]*>.*?<status code='110'/>`));
      const got = phone.stanzas();
      phone.send(`<a xmlns='${SM}' h='${got}'/>`);
      await new Promise((res) => setTimeout(res, 200));
      phone.close();
      await until("hibernated", async () => (await metric(mux.adminPort, "mucmux_sm_hibernated_sessions")) >= 1);
      const before = app.publishesFor(node).length;
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "wake the sleeper")));
      await app.waitForPublishes(before + 1, 10_000, node);
      // The device comes back: the room message once, and no wake-up (the server resent it on the resumed leg).
      const stripped = await metric(mux.adminPort, "mucmux_wakeups_stripped_total", `where="direct"`);
      const back = await RawClient.connect(mux.directPort);
      raws.push(back);
      await back.authenticate(user, `${user}pw`);
      assert.match(back.text, /<sm xmlns='urn:xmpp:sm:3'\/>/);
      back.text = "";
      back.send(`<resume xmlns='${SM}' previd='${id}' h='${got}'/>`);
      await back.waitFor(/<resumed /);
      await back.waitFor(/wake the sleeper/);
      await until("the wake-up stripped from the resumed stream", async () => (await metric(mux.adminPort, "mucmux_wakeups_stripped_total", `where="direct"`)) > stripped, 10_000);
      await quietPeriod(300, "nothing more");
      assert.equal(back.text.split("wake the sleeper").length - 1, 1, "the room message once");
      assert.ok(!back.text.includes(WAKEUP), "no wake-up reached the device");
    });
  });
}

suite("Prosody 0.12 (mod_cloud_notify)", (o) => startProsody(o));
suite("ejabberd 23.01 (mod_push)", (o) => startEjabberd(o));
