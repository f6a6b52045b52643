// SCRAM toward clients against real servers (SPEC A10–A13): slixmpp pinned to one SCRAM mechanism logs in on its
// first ever login through mucmux (relayed, SPEC A13); a PLAIN login teaches mucmux the account's verifiers
// (SPEC A11), which survive a restart and let SCRAM-only sessions fold onto one anchor; a password changed on the
// server makes the stored verifier stale.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync } from "node:fs";
import { xml } from "@xmpp/xml";
import { startProsody } from "../support/prosody.js";
import { startEjabberd } from "../support/ejabberd.js";
import type { XmppTestServer } from "../support/server.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { scramLogin } from "../support/scram-client.js";
import { readProsodyAccounts } from "../../src/sasl/import/prosody.js";
import { readEjabberdSqlite } from "../../src/sasl/import/ejabberd.js";
import { run } from "../support/proc.js";
import { testCertificate, TEST_TMP } from "../support/certs.js";
import { addTestSecret } from "../support/log-audit.js";
import { until } from "../support/wait.js";
import { connectVia, isGroupchat, join, roomSettled, settledUpstreamCopies, waitAfter } from "./muc-support.js";

const SLIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "clients", "slix_chat.py");

/** slixmpp pinned to `mech` logs in through mucmux's STARTTLS port and sends `to` one chat message. */
async function slixLogin(port: number, jid: string, password: string, mech: string): Promise<void> {
  const { stdout } = await run("/usr/bin/python3", [SLIX, "--jid", jid, "--password", password, "--port", String(port),
    "--to", "bob@localhost", "--body", `via ${mech}`, "--ca", testCertificate().certFile, "--mech", mech], { timeoutMs: 30_000 });
  assert.ok(stdout.split("\n").filter(Boolean).some((l) => (JSON.parse(l) as { event: string }).event === "session_start"), `slixmpp session started: ${stdout}`);
}

const authCount = (mux: TestMucmux, mechanism: string, pathLabel: string, result: string) =>
  metric(mux.adminPort, "mucmux_client_auth_total", `mechanism="${mechanism}",path="${pathLabel}",result="${result}"`);

function suite(name: string, start: () => Promise<XmppTestServer>, firstLogins: string[], importable = false): void {
  describe(`SCRAM toward clients on ${name}`, () => {
    let server: XmppTestServer;
    let mux: TestMucmux;
    let dir: string;
    const open: TestClient[] = [];
    const storePath = () => path.join(dir, "mucmux.sqlite");
    const startMux = () => startMucmux({ upstreamPort: server.port, storePath: storePath(), extra: { muc: { lingerSeconds: 2 } } });

    before(async () => {
      server = await start();
      dir = mkdtempSync(path.join(TEST_TMP, "scram-"));
      mux = await startMux();
    });
    after(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await mux?.stop();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const mech of firstLogins) {
      it(`SPEC A10/A13: a client pinned to ${mech} logs in on its first ever login (relayed to the server)`, async () => {
        const user = `first${mech.replace(/\W/g, "").toLowerCase()}`;
        addTestSecret(`${user}secret`);
        await server.register(user, `${user}secret`);
        const before = await authCount(mux, mech, "relayed", "success");
        await slixLogin(mux.starttlsPort, `${user}@localhost/s`, `${user}secret`, mech);
        // The label is the client's mechanism as mucmux saw it: slixmpp used the pinned one, and it was relayed.
        assert.equal(await authCount(mux, mech, "relayed", "success"), before + 1, "relayed: mucmux had no verifier");
        assert.deepEqual(await mux.app.store?.verifiers(`${user}@localhost`), [], "SPEC A13: a relayed login teaches nothing");
        await assert.rejects(slixLogin(mux.starttlsPort, `${user}@localhost/s`, "wrong", mech), /failed_auth/, "a wrong password is refused");
      });
    }

    it("SPEC A11: after one PLAIN login and a restart, two SCRAM-only sessions fold: one upstream copy per room message", async () => {
      const plain = await connectVia(mux.directPort, "carol", "plain");
      await plain.stop();
      await until("carol's verifiers learned", async () => ((await mux.app.store?.verifiers("carol@localhost")) ?? []).length > 0, 10_000);
      const learned = (await mux.app.store?.verifiers("carol@localhost")) ?? [];
      assert.ok(learned.some((v) => v.hash === "SHA-1"), "a SHA-1 verifier (what @xmpp/client speaks)");
      for (const v of learned) {
        assert.equal(v.source, "learned");
        assert.ok(v.sealed, "the password is sealed, never in clear");
        assert.equal(v.sealed.includes(Buffer.from("carolpw")), false);
      }
      await mux.stop();
      mux = await startMux();

      const bob = await connectVia(mux.directPort, "bob", "b1");
      open.push(bob);
      const c1 = await connectVia(mux.directPort, "carol", "c1", "SCRAM-SHA-1");
      const c2 = await connectVia(mux.directPort, "carol", "c2", "SCRAM-SHA-1");
      open.push(c1, c2);
      assert.equal(await authCount(mux, "SCRAM-SHA-1", "terminated", "success"), 2, "SPEC A10: both terminated by mucmux");
      const room = `scram${Date.now().toString(36)}@conference.localhost`;
      await join(bob, room, "bob");
      await join(c1, room, "carol");
      await join(c2, room, "carol");
      await roomSettled(room, c1, c2, bob);
      const account = mux.app.accounts.get("carol@localhost");
      assert.equal(account?.anchor?.state, "online", "the anchor logged in from the learned verifier");
      const from1 = c1.received.length;
      const from2 = c2.received.length;
      await bob.send(xml("message", { to: room, type: "groupchat", id: "scram-fold-1" }, xml("body", {}, "hello carols")));
      await waitAfter(c1, from1, isGroupchat(room, "hello carols"));
      await waitAfter(c2, from2, isGroupchat(room, "hello carols"));
      assert.equal(await settledUpstreamCopies(server, bob, room, "carol@localhost", "scram-fold-1"), 1, "one upstream copy for two sessions");
    });

    if (importable) {
      it("SPEC A12: imported verifiers let a SCRAM-only account fold on its first login: the ClientKey logs the anchor in", async () => {
        addTestSecret("frankpw1");
        await server.register("frank", "frankpw1");
        for await (const r of readProsodyAccounts(path.join(server.dir, "data"))) {
          if (r.kind === "verifier" && r.account === "frank@localhost") await mux.app.store?.saveVerifiers([r.verifier]);
        }
        const imported = (await mux.app.store?.verifiers("frank@localhost")) ?? [];
        assert.deepEqual(imported.map((v) => [v.hash, v.source, v.upstream, v.sealed]), [["SHA-1", "imported", true, undefined]]);
        const before = await authCount(mux, "SCRAM-SHA-1", "terminated", "success");
        const c = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "frank", password: "frankpw1", resource: "f", mechanism: "SCRAM-SHA-1" });
        open.push(c);
        assert.equal(await authCount(mux, "SCRAM-SHA-1", "terminated", "success"), before + 1, "terminated with the imported verifier");
        const room = `imported${Date.now().toString(36)}@conference.localhost`;
        await join(c, room, "frank");
        assert.equal(mux.app.accounts.get("frank@localhost")?.anchor?.state, "online", "the anchor logged in with the ClientKey");
      });
    }

    it("SPEC A11: a password changed on the server makes the verifier stale: not-authorized, dropped, learned again at the next PLAIN login", async () => {
      addTestSecret("erinsecret1");
      addTestSecret("erinsecret2");
      await server.register("erin", "erinsecret1");
      // PLAIN with xmpp.js; SCRAM with the raw SCRAM client, which reports a refusal instead of throwing it.
      const login = async (step: string, password: string, mechanism?: "SCRAM-SHA-1") => {
        if (mechanism) {
          const r = await scramLogin({ port: mux.directPort, transport: "direct", username: "erin", password, mechanism, bind: step });
          r.conn.close();
          return r.sasl.kind === "success" && r.jid ? "ok" : `${step}: ${JSON.stringify(r.sasl)}`;
        }
        const c = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "erin", password, resource: step });
        await c.stop();
        return "ok";
      };
      const sha1 = async () => ((await mux.app.store?.verifiers("erin@localhost")) ?? []).some((v) => v.hash === "SHA-1");
      assert.equal(await login("plain1", "erinsecret1"), "ok");
      await until("erin's verifiers learned", sha1, 10_000);
      await server.setPassword("erin", "erinsecret2");
      const stale = await authCount(mux, "SCRAM-SHA-1", "terminated", "not-authorized");
      // The old password still matches the stored verifier, but the server refuses what it unlocks.
      assert.match(await login("old", "erinsecret1", "SCRAM-SHA-1"), /not-authorized/);
      assert.equal(await authCount(mux, "SCRAM-SHA-1", "terminated", "not-authorized"), stale + 1);
      assert.equal(await sha1(), false, "the stale verifier was dropped");
      // The new password logs in (relayed now), and the next PLAIN login learns the new verifier.
      assert.equal(await login("new-scram", "erinsecret2", "SCRAM-SHA-1"), "ok");
      assert.equal(await login("new-plain", "erinsecret2"), "ok");
      await until("erin's new verifier learned", sha1, 10_000);
      assert.equal(await login("new-terminated", "erinsecret2", "SCRAM-SHA-1"), "ok");
    });
  });
}

suite("Prosody 0.12", () => startProsody({ muc: true, debugLog: true }), ["SCRAM-SHA-1"], true);
// ejabberd's default password format (plain): it then offers SCRAM-SHA-1, -256 and -512 (with `scram`, only its one hash).
suite("ejabberd 23.01", () => startEjabberd({ muc: true, debugLog: true, passwordFormat: "plain" }), ["SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1"]);

// SPEC A12 against ejabberd: its SQL users table (sql_type: sqlite, auth_password_format: scram) imported, then a
// SCRAM-only account folds on its first login: ejabberd checks the ClientKey mucmux recovered, exactly as its own.
describe("SCRAM toward clients on ejabberd 23.01 with SQL accounts (scram format)", () => {
  let server: XmppTestServer;
  let mux: TestMucmux;
  before(async () => {
    server = await startEjabberd({ muc: true, sqlite: {} });
    mux = await startMucmux({ upstreamPort: server.port });
  });
  after(async () => {
    await mux?.stop();
    await server?.stop();
  });

  it("SPEC A12: verifiers imported from ejabberd's users table let a SCRAM-only account fold on its first login", async () => {
    const file = (server as XmppTestServer & { sqliteFile?: string }).sqliteFile;
    assert.ok(file);
    const records = readEjabberdSqlite(file, { host: "localhost" }).filter((r) => r.kind === "verifier");
    assert.ok(records.length >= 3, "alice, bob and carol");
    await mux.app.store?.saveVerifiers(records.map((r) => (r as Extract<typeof r, { kind: "verifier" }>).verifier));
    const c = await connectClient({ service: `xmpps://127.0.0.1:${mux.directPort}`, domain: "localhost", username: "bob", password: "bobpw", resource: "b", mechanism: "SCRAM-SHA-1" });
    try {
      assert.equal(await authCount(mux, "SCRAM-SHA-1", "terminated", "success"), 1, "terminated with the imported verifier");
      await join(c, `ejimport${Date.now().toString(36)}@conference.localhost`, "bob");
      assert.equal(mux.app.accounts.get("bob@localhost")?.anchor?.state, "online", "the anchor logged in with the ClientKey");
    } finally {
      await c.stop();
    }
  });
});
