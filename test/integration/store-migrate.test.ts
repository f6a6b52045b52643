// `mucmux store-migrate`: a real SQLite store written by SqliteStore, copied into a real PostgreSQL 15
// (test/support/postgres.ts) and read back through PgStore: registrations with their catch-up points, the queue in
// its order, verifiers, FAST tokens, kept anchors. A target with data is refused unless --force (which replaces it,
// without duplicates); --config gives the URL; nothing printed carries the password.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startPostgres, type PgServer } from "../support/postgres.js";
import { run as runProcess } from "../support/proc.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { PgStore } from "../../src/store/pg.js";
import { storeMigrateCommand } from "../../src/store/migrate-command.js";
import type { FastToken, StoredVerifier } from "../../src/store/store.js";
import { createLogger } from "../../src/log.js";

let server: PgServer;
before(async () => {
  server = await startPostgres({ name: "store-migrate" });
});
after(async () => {
  await server?.stop();
});

const NOW = Date.now();
const A = "alice@localhost";
const B = "bob@localhost";
const R1 = "room1@conference.localhost";
const R2 = "room2@conference.localhost";
const big = { maxPerAccount: 10_000, maxPerRoom: 10_000 };
const log = createLogger("silent");
const password = () => decodeURIComponent(new URL(server.url).password);

const verifier = (account: string, hash: "SHA-1" | "SHA-256", sealed: boolean): StoredVerifier => ({
  account, hash, salt: Buffer.from(`salt-${account}`), iterations: 4096, storedKey: Buffer.alloc(hash === "SHA-1" ? 20 : 32, 1),
  serverKey: Buffer.alloc(hash === "SHA-1" ? 20 : 32, 2), source: sealed ? "learned" : "imported", upstream: !sealed,
  sealed: sealed ? Buffer.from("sealed") : undefined, updatedAt: NOW,
});
const token = (n: number, agent: string): FastToken => ({
  account: A, hash: Buffer.alloc(32, n), agent, responder: Buffer.alloc(32, 100 + n), sealed: Buffer.from(`secret-${n}`),
  expiresAt: NOW + 86_400_000, count: n, createdAt: NOW + n,
});

/** An SQLite store file with some of everything; returns its path. */
async function sqliteFile(): Promise<string> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "mucmux-migrate-")), "mucmux.sqlite");
  const s = new SqliteStore(file);
  await s.saveRegistration({ account: A, room: R1, nick: "alice", offline: true, createdViaMucmux: true }, NOW - 1000);
  await s.saveRegistration({ account: A, room: R2, nick: "al", offline: false, createdViaMucmux: false }, NOW - 2000);
  await s.saveRegistration({ account: B, room: R1, nick: "bob", offline: true, createdViaMucmux: false }, NOW - 3000);
  for (let i = 0; i < 1200; i++) {
    const account = i % 3 === 0 ? B : A;
    const room = i % 2 ? R1 : R2;
    await s.enqueue({ account, room, stanza: `<message from='${room}/x'><body>${i}</body></message>`, receivedAt: NOW + i,
      expiresAt: NOW + 3_600_000, ...(i % 5 === 0 ? { key: `sid-${i}` } : {}) }, big, NOW);
  }
  // Some removed: the ids the copy sees have gaps.
  const some = (await s.pending(A, NOW, 0, 50)).filter((_, i) => i % 2 === 0).map((m) => m.id);
  await s.remove(some);
  await s.markSeen(A, R1, "sid-seen", NOW + 5000);
  await s.saveVerifiers([verifier(A, "SHA-1", false), verifier(A, "SHA-256", true), verifier(B, "SHA-1", true)]);
  await s.saveFastToken(token(1, "phone"), 5, NOW);
  await s.saveFastToken(token(2, ""), 5, NOW);
  await s.saveKeptAnchor(A, Buffer.from([1, 2, 3]), NOW);
  s.close();
  return file;
}

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = "";
  let err = "";
  const code = await storeMigrateCommand(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env });
  return { code, out, err };
}

describe("mucmux store-migrate", () => {
  it("copies everything in one go; the PostgreSQL store reads it as the SQLite store did", async () => {
    await server.reset();
    const file = await sqliteFile();
    const res = await run(["--from", file, "--to", server.url]);
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, new RegExp(`into postgres 127\\.0\\.0\\.1:${server.port}/mucmux`));
    const sqlite = new SqliteStore(file);
    const expectedQueue = { a: await sqlite.pending(A, NOW, 0, 10_000), b: await sqlite.pending(B, NOW, 0, 10_000) };
    assert.match(res.out, new RegExp(`copied: 3 registrations, ${expectedQueue.a.length + expectedQueue.b.length} queued messages, ` +
      "3 SCRAM verifiers, 2 FAST tokens, 1 kept anchors"));
    assert.ok(!(res.out + res.err).includes(password()), "no password printed");
    const pgs = await PgStore.open(server.url, { poolSize: 2, timeoutMs: 5000, log });
    try {
      for (const account of [A, B]) assert.deepEqual(await pgs.registrations(account), await sqlite.registrations(account));
      for (const [account, room] of [[A, R1], [A, R2], [B, R1]] as const) {
        assert.deepEqual(await pgs.catchUpFrom(account, room), await sqlite.catchUpFrom(account, room), `${account} ${room}`);
      }
      assert.deepEqual(await pgs.catchUpFrom(A, R1), { key: "sid-seen", at: NOW + 5000 });
      const strip = (ms: { id: number }[]) => ms.map(({ id: _id, ...rest }) => rest);
      const gotA = await pgs.pending(A, NOW, 0, 10_000);
      assert.deepEqual(strip(gotA), strip(expectedQueue.a), "alice's queue, in order");
      assert.deepEqual(strip(await pgs.pending(B, NOW, 0, 10_000)), strip(expectedQueue.b), "bob's queue, in order");
      // Keys came along: the same stable id is a duplicate in PostgreSQL too.
      const again = await pgs.enqueue({ account: B, room: R2, stanza: "<message/>", receivedAt: NOW, expiresAt: NOW + 1000, key: "sid-0" }, big, NOW);
      assert.equal(again.duplicate, true);
      for (const account of [A, B]) assert.deepEqual(await pgs.verifiers(account), await sqlite.verifiers(account));
      for (const n of [1, 2]) assert.deepEqual(await pgs.fastToken(A, Buffer.alloc(32, n), NOW), await sqlite.fastToken(A, Buffer.alloc(32, n), NOW));
      assert.deepEqual(await pgs.keptAnchors(), await sqlite.keptAnchors());
    } finally {
      await pgs.end();
      sqlite.close();
    }
  });

  it("refuses a target with data unless --force, which replaces it without duplicates", async () => {
    await server.reset();
    const file = await sqliteFile();
    assert.equal((await run(["--from", file, "--to", server.url])).code, 0);
    const refused = await run(["--from", file, "--to", server.url]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /has data already .*offline_registrations.*--force/);
    assert.ok(!(refused.out + refused.err).includes(password()));
    const forced = await run(["--from", file, "--to", server.url, "--force"]);
    assert.equal(forced.code, 0, forced.err);
    const pgs = await PgStore.open(server.url, { poolSize: 2, timeoutMs: 5000, log });
    const sqlite = new SqliteStore(file);
    try {
      assert.equal(await pgs.queueDepth(NOW), await sqlite.queueDepth(NOW));
      assert.equal((await pgs.registrations(A)).length, 2);
      assert.equal((await pgs.keptAnchors()).length, 1);
    } finally {
      await pgs.end();
      sqlite.close();
    }
  });

  it("--config gives store.path and store.url; usage errors exit 2 without echoing the password", async () => {
    await server.reset();
    const file = await sqliteFile();
    const dir = mkdtempSync(path.join(os.tmpdir(), "mucmux-migrate-config-"));
    const config = path.join(dir, "mucmux.yaml");
    writeFileSync(config, `domains: [localhost]\nstore: { path: ${JSON.stringify(file)}, url: ${JSON.stringify(server.url)} }\n` +
      // Required with store.url (the replicas' internal link); the command does not read them.
      "cluster: { cert: /nonexistent/c.pem, key: /nonexistent/k.pem, ca: /nonexistent/ca.pem }\n");
    const res = await run(["--config", config]);
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /copied: 3 registrations/);
    assert.ok(!(res.out + res.err).includes(password()));

    const noTarget = await run(["--from", file], {});
    assert.equal(noTarget.code, 2);
    assert.match(noTarget.err, /no PostgreSQL store/);
    const stray = await run(["--from", file, server.url]);
    assert.equal(stray.code, 2);
    assert.ok(!stray.err.includes(password()), stray.err);
    const missing = await run(["--from", path.join(dir, "none.sqlite"), "--to", server.url]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read .*ENOENT/);
    const help = await run(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.out, /Usage: mucmux store-migrate/);
  });

  it("the real command line: `mucmux store-migrate` is wired in src/cli.ts", async () => {
    await server.reset();
    const file = await sqliteFile();
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const { stdout, stderr } = await runProcess(process.execPath, ["--import", "tsx", "src/main.ts", "store-migrate", "--from", file, "--to", server.url],
      { cwd: root, timeoutMs: 60_000 });
    assert.match(stdout, /copied: 3 registrations, \d+ queued messages, 3 SCRAM verifiers, 2 FAST tokens, 1 kept anchors/);
    assert.ok(!(stdout + stderr).includes(password()));
  });

  it("an unreachable PostgreSQL: exit 1 with host:port/database, nothing else", async () => {
    const file = await sqliteFile();
    const url = server.url.replace(`:${server.port}/`, ":1/");
    const res = await run(["--from", file, "--to", url]);
    assert.equal(res.code, 1);
    assert.match(res.err, /postgres 127\.0\.0\.1:1\/mucmux: .*ECONNREFUSED/);
    assert.ok(!(res.out + res.err).includes(password()));
  });
});
