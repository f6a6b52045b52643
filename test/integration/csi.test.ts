// CSI at mucmux (SPEC C15, C16) in front of Prosody 0.12 and ejabberd 23.01: an inactive device in a room with
// presence and chat-state churn gets a fraction of it, every message with a body at once (after what was held, in
// order), and on <active/> the current state of the room; an active device of another account sees everything.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml, type Element } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import type { TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { until } from "../support/wait.js";
import { connectVia, isGroupchat, join, waitAfter } from "./muc-support.js";

const CSI = "urn:xmpp:csi:0";
const CHURNERS = 5;
const ROUNDS = 20;

const csiCount = (mux: TestMucmux, outcome: string) => metric(mux.adminPort, "mucmux_csi_stanzas_total", `outcome="${outcome}"`);

/** Presence updates and bare chat states from the room's churners (not the joins themselves). */
const isChurn = (room: string) => (el: Element) => {
  const [bare, nick] = (el.attrs.from ?? "").split("/");
  if (bare !== room || !nick?.startsWith("churn")) return false;
  return (el.name === "presence" && el.getChildText("status")?.startsWith("round") === true) ||
    (el.name === "message" && !el.getChild("body") && !!el.getChild("composing", "http://jabber.org/protocol/chatstates"));
};

/** Each churner's latest status as `c` saw it. */
function statuses(c: TestClient, room: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const el of c.received) {
    const [bare, nick] = (el.attrs.from ?? "").split("/");
    if (el.name === "presence" && bare === room && nick?.startsWith("churn")) out[nick] = el.getChildText("status") ?? "";
  }
  return out;
}

function suite(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`CSI at mucmux on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    const open: TestClient[] = [];
    const connect = async (user: string, resource: string) => {
      const c = await connectVia(mux.directPort, user, resource);
      open.push(c);
      await c.send(xml("presence"));
      return c;
    };

    before(async () => {
      server = await start();
      for (let i = 1; i <= CHURNERS; i++) await server.register(`churn${i}`, `churn${i}pw`);
      mux = await startMucmux({ upstreamPort: server.port });
    });
    after(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
    });

    it("SPEC C15: CSI is offered after login whatever the server does", async () => {
      const raw = await RawClient.connect(mux.directPort);
      await raw.login("alice", "alicepw", "features");
      assert.match(raw.text, /<csi xmlns='urn:xmpp:csi:0'\/>/);
      raw.close();
    });

    it("SPEC C15/C16: an inactive device gets under 1 in 5 of the churn, bodies at once after what was held, the current state on <active/>", async () => {
      const room = `csi${Date.now().toString(36)}@conference.localhost`;
      const carol = await connect("carol", "watch"); // active, another account: sees every stanza
      const phone = await connect("alice", "phone");
      const churners: TestClient[] = [];
      for (let i = 1; i <= CHURNERS; i++) churners.push(await connect(`churn${i}`, "c"));
      await join(carol, room, "carol");
      await join(phone, room, "alice");
      for (const [i, c] of churners.entries()) await join(c, room, `churn${i + 1}`);
      await until("carol saw every churner join", () => Object.keys(statuses(carol, room)).length === CHURNERS);

      await phone.send(xml("inactive", { xmlns: CSI }));
      const heldBefore = await csiCount(mux, "held");
      const churn = async (label: string) => {
        for (let r = 1; r <= ROUNDS; r++) {
          for (const [i, c] of churners.entries()) {
            await c.send(xml("presence", { to: `${room}/churn${i + 1}` }, xml("status", {}, `round ${label}${r}`)));
            await c.send(xml("message", { to: room, type: "groupchat" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
          }
        }
      };
      const fromCarol = carol.received.length;
      const fromPhone = phone.received.length;
      await churn("a");
      // The last round's presences reached carol: the churn is through (the servers may coalesce chat states).
      const lastRound = (label: string) => () => Object.values(statuses(carol, room)).every((v) => v === `round ${label}${ROUNDS}`);
      await until("carol saw the first churn", lastRound("a"), 20_000);
      const firstChurn = carol.received.slice(fromCarol).filter(isChurn(room)).length;
      // Every churn stanza reached mucmux's outbound path for the phone (held or superseded), none went out yet.
      await until("mucmux held the churn for the phone", async () => (await csiCount(mux, "held")) - heldBefore >= firstChurn, 20_000);
      assert.equal(phone.received.slice(fromPhone).filter(isChurn(room)).length, 0, "nothing of the churn yet");

      // A message with a body reaches the inactive phone at once, after the latest of what was held.
      await churners[0]?.send(xml("message", { to: room, type: "groupchat", id: "csi-body" }, xml("body", {}, "hello phone")));
      const body = await waitAfter(phone, fromPhone, isGroupchat(room, "hello phone"));
      const bodyAt = phone.received.indexOf(body);
      const flushed = phone.received.slice(fromPhone, bodyAt).filter(isChurn(room)).length;
      assert.ok(flushed > 0 && flushed <= 2 * CHURNERS, `the latest presence and chat state per churner, before the body (${flushed})`);
      assert.equal(phone.received.slice(bodyAt + 1).filter(isChurn(room)).length, 0, "nothing of the churn after it");

      await churn("b");
      await until("carol saw the second churn", lastRound("b"), 20_000);
      const allChurn = carol.received.slice(fromCarol).filter(isChurn(room)).length;
      await until("mucmux held the second churn", async () => (await csiCount(mux, "held")) - heldBefore >= allChurn, 20_000);
      await phone.send(xml("active", { xmlns: CSI }));
      await until("the phone has the room's current state", () => {
        const s = statuses(phone, room);
        return Object.keys(s).length === CHURNERS && Object.values(s).every((v) => v === `round b${ROUNDS}`);
      }, 10_000);
      assert.deepEqual(statuses(phone, room), statuses(carol, room), "the same view of the room as an active device");
      const phoneChurn = phone.received.slice(fromPhone).filter(isChurn(room)).length;
      const carolChurn = carol.received.slice(fromCarol).filter(isChurn(room)).length;
      assert.ok(phoneChurn * 5 < carolChurn, `the phone got ${phoneChurn} of ${carolChurn} churn stanzas`);
      assert.ok(await csiCount(mux, "superseded") > 0);
    });
  });
}

suite("Prosody 0.12", () => startProsody({ muc: true }));
suite("ejabberd 23.01", () => startEjabberd({ muc: true }));
