// Smoke test of the real-server harness: Prosody and ejabberd start on loopback, two @xmpp/client users
// exchange a chat message directly (no mucmux yet), and the slixmpp client logs in to Prosody.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { xml } from "@xmpp/xml";
import type { Element } from "@xmpp/xml";

import { connectClient, type TestClient } from "../support/clients.js";
import { startEjabberd } from "../support/ejabberd.js";
import { run } from "../support/proc.js";
import { startProsody } from "../support/prosody.js";
import type { XmppTestServer } from "../support/server.js";

const SLIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "clients", "slix_chat.py");

const chatFrom = (from: string, body: string) => (el: Element) =>
  el.is("message") && (el.attrs.from ?? "").startsWith(from) && el.getChildText("body") === body;

function directChat(name: string, start: () => Promise<XmppTestServer>): void {
  describe(`harness: ${name} direct`, () => {
    let server: XmppTestServer | undefined;
    const clients: TestClient[] = [];
    const connect = async (user: string, secure: boolean) => {
      const s = server!;
      const service = secure ? `xmpps://127.0.0.1:${s.directTlsPort}` : `xmpp://127.0.0.1:${s.port}`;
      const c = await connectClient({ service, domain: s.domain, username: user, password: `${user}pw`, resource: "it" });
      clients.push(c);
      return c;
    };

    before(async () => {
      server = await start();
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.stop()));
      await server?.stop();
    });

    it("two users exchange a chat message (STARTTLS and direct TLS)", async () => {
      const alice = await connect("alice", false);
      const bob = await connect("bob", true);
      assert.equal(alice.xmpp.isSecure(), true, "STARTTLS was offered and used");
      await Promise.all([alice.send(xml("presence")), bob.send(xml("presence"))]);
      await bob.waitFor((el) => el.is("presence") && el.attrs.from === bob.jid);
      await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hello bob")));
      await bob.waitFor(chatFrom("alice@localhost/it", "hello bob"));
      await bob.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hello alice")));
      await alice.waitFor(chatFrom("bob@localhost/it", "hello alice"));
      const pong = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(pong.attrs.type, "result");
    });

    it("waitFor rejects with what was received", async () => {
      const alice = clients[0]!;
      await assert.rejects(alice.waitFor(() => false, 200), /nothing matched within 200 ms[\s\S]*received \d+ stanza/);
    });

    it("register() adds an account to the running server", async () => {
      await server!.register("dave", "davepw");
      const dave = await connectClient({ service: `xmpp://127.0.0.1:${server!.port}`, domain: "localhost", username: "dave", password: "davepw" });
      clients.push(dave);
      assert.match(dave.jid, /^dave@localhost\//);
    });

    it("kill() then restart() keeps ports and the accounts made at start", async () => {
      // (ejabberd may lose accounts registered just before a SIGKILL: mnesia's log is not synced)
      const s = server!;
      const before = s.pid;
      await s.kill();
      await s.restart();
      assert.notEqual(s.pid, before);
      clients.push(await connect("carol", false));
    });
  });
}

directChat("Prosody", () => startProsody({ debugLog: true }));
directChat("ejabberd", () => startEjabberd());

describe("harness: slixmpp against Prosody", () => {
  let server: XmppTestServer | undefined;
  let bob: TestClient | undefined;
  before(async () => {
    server = await startProsody({ debugLog: true });
    bob = await connectClient({ service: `xmpp://127.0.0.1:${server.port}`, domain: "localhost", username: "bob", password: "bobpw", resource: "b" });
    await bob.send(xml("presence"));
  });
  after(async () => {
    await bob?.stop();
    await server?.stop();
  });

  const slix = (...args: string[]) =>
    run("/usr/bin/python3", [SLIX, "--jid", "alice@localhost/slix", "--password", "alicepw", "--port", String(server!.port),
      "--to", "bob@localhost/b", ...args], { timeoutMs: 30_000 });

  it("sends over STARTTLS (trusting the test CA) and Prosody logs the delivery", async () => {
    const { stdout } = await slix("--body", "from slix", "--ca", server!.certFile);
    const events = stdout.trim().split("\n").map((l) => JSON.parse(l) as { event: string; ok?: boolean });
    assert.deepEqual(events.map((e) => e.event), ["session_start", "sent", "done"]);
    await bob!.waitFor(chatFrom("alice@localhost/slix", "from slix"));
    assert.match(fs.readFileSync(server!.logFile, "utf8"), /Sending\[c2s\]: <message[^\n]*to='bob@localhost\/b'/);
  });

  it("waits for an expected reply in plaintext and fails on timeout", async () => {
    const reply = bob!.waitFor(chatFrom("alice@localhost/slix2", "ping")).then((m) =>
      bob!.send(xml("message", { to: m.attrs.from, type: "chat" }, xml("body", {}, "pong"))));
    const ok = slix("--jid", "alice@localhost/slix2", "--body", "ping", "--expect", "pong");
    await Promise.all([reply, ok]);
    await assert.rejects(slix("--body", "again", "--expect", "never", "--timeout", "1"), /exit 1[\s\S]*timeout after 1/);
  });
});
