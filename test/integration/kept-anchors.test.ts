// SPEC G6 (the operator opt-in anchors.keepKeyFile) with a real mucmux process restarted in front of real Prosody 0.12
// with mod_cloud_notify: an account with a room's offline setting on keeps its anchor across the restart, so a room
// message said after the restart and before the user's next login is queued and wakes the phone (the server pushes);
// the store holds the account's credentials only sealed (no password in it).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { xml } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import type { XmppTestServer } from "../support/server.js";
import { writeTestConfig } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { freePorts } from "../support/ports.js";
import { startPushAppServer, type PushAppServer } from "../support/push-app-server.js";
import { quietPeriod, until } from "../support/wait.js";
import { join } from "./muc-support.js";
import { spawnMucmux, submit, type MucmuxProcess } from "./muc-offline-support.js";

const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const TEST_TMP = path.resolve("test", ".tmp");

describe("kept anchors across a mucmux restart, Prosody 0.12 (mod_cloud_notify)", () => {
  let server: XmppTestServer;
  let app: PushAppServer;
  const open: TestClient[] = [];
  before(async () => {
    server = await startProsody({ push: true });
    if (!server.pushComponent) throw new Error("no push component");
    app = await startPushAppServer(server.pushComponent);
  });
  after(async () => {
    await Promise.allSettled(open.map((c) => c.stop()));
    await app?.close();
    await server?.stop();
  });

  it("keeps the anchor of an account with offline delivery: after a restart a room message is queued and wakes the phone", async () => {
    const dir = mkdtempSync(path.join(TEST_TMP, "kept-"));
    const keyFile = path.join(dir, "keep.key");
    writeFileSync(keyFile, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
    const storePath = path.join(dir, "mucmux.sqlite");
    const [starttls = 0, direct = 0, admin = 0] = await freePorts(3);
    const configFile = writeTestConfig({ upstreamPort: server.port, ports: { starttls, direct, admin }, storePath,
      extra: { anchors: { keepKeyFile: keyFile }, muc: { lingerSeconds: 2 } } });
    let proc: MucmuxProcess | undefined = await spawnMucmux(configFile, direct);
    try {
      const user = `kp${randomBytes(3).toString("hex")}`;
      const password = `${user}-Secret-pw`;
      await server.register(user, password);
      const node = `node-${user}`;
      const r = `kept-${Date.now().toString(36)}@conference.localhost`;
      // bob talks to the server directly: he stays while mucmux restarts.
      const bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "kept", mechanism: "SCRAM-SHA-1" });
      open.push(bob);
      await bob.send(xml("presence"));
      await join(bob, r, "bob");
      await bob.iq(xml("iq", { type: "set", to: r }, xml("query", { xmlns: MUC_ADMIN }, xml("item", { jid: `${user}@localhost`, affiliation: "member" }))));
      const phone = await connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: user, password, resource: "phone" });
      await phone.send(xml("presence"));
      const enabled = await phone.iq(xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:push:0", jid: "push.localhost", node })));
      assert.equal(enabled.attrs.type, "result");
      await join(phone, r, user);
      await phone.iq(submit(r, user, "1"));
      await phone.stop();
      const kept = () => {
        const db = new Database(storePath, { readonly: true, fileMustExist: true });
        try {
          return db.prepare("SELECT account, sealed FROM kept_anchors").all() as { account: string; sealed: Buffer }[];
        } catch {
          return [];
        } finally {
          db.close();
        }
      };
      await until("the account's anchor kept in the store", () => kept().some((k) => k.account === `${user}@localhost`));
      const row = kept().find((k) => k.account === `${user}@localhost`);
      assert.ok(row && !row.sealed.includes(Buffer.from(password)), "sealed: the password is not in the store");

      // The restart: the anchor leaves with the old process and comes back by itself with the new one.
      assert.equal(await proc.stop(), 0, proc.output());
      proc = undefined;
      const mark = bob.received.length;
      proc = await spawnMucmux(configFile, direct);
      await until("the account's occupant back in the room, before any login", () => bob.received.slice(mark).some((el) =>
        el.name === "presence" && el.attrs.from === `${r}/${user}` && el.attrs.type === undefined), 15_000);

      // A room message now: queued for the account, and the server pushes for its wake-up.
      await bob.send(xml("message", { to: r, type: "groupchat" }, xml("body", {}, "said after the restart")));
      const [publish] = await app.waitForPublishes(1, 10_000, node);
      assert.equal(publish?.from, "localhost");

      // The next login gets the message once, and no wake-up.
      const back = await connectClient({ service: `xmpps://127.0.0.1:${direct}`, domain: "localhost", username: user, password, resource: "back" });
      open.push(back);
      await back.send(xml("presence"));
      await back.waitFor((el) => el.getChildText("body") === "said after the restart", 10_000);
      await quietPeriod(800, "nothing more arrives");
      assert.equal(back.received.filter((el) => el.getChildText("body") === "said after the restart").length, 1, "once");
      assert.ok(!back.received.some((el) => el.toString().includes("urn:mucmux:wakeup:0")), "no wake-up reached the device");
    } finally {
      await proc?.stop();
    }
  });
});
