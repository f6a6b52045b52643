// SPEC A12 against the real servers: accounts are created by Prosody 0.12 (prosodyctl register) and ejabberd
// 23.01 (ejabberdctl register), `mucmux import-verifiers` reads the server's own storage while it runs, and every
// imported verifier is checked against the password: SaltedPassword = PBKDF2(password, salt, i), ClientKey =
// HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key").
// The server's SCRAM server-first message carries the imported salt and iteration count (upstream: true).
// The server's files are left exactly as they were.
import * as assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { importVerifiersCommand } from "../../src/sasl/import/command.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { PgStore } from "../../src/store/pg.js";
import { createLogger } from "../../src/log.js";
import { startPostgres, type PgServer } from "../support/postgres.js";
import type { ScramHash, StoredVerifier } from "../../src/store/store.js";
import { TEST_TMP } from "../support/certs.js";
import { startEjabberd, type EjabberdOptions, type EjabberdServer } from "../support/ejabberd.js";
import { startProsody, type ProsodyOptions, type ProsodyServer } from "../support/prosody.js";
import { deriveScramKeys } from "../support/scram.js";
import { scramProbe, type ProbeMechanism } from "../support/scram-probe.js";

const USERS: Record<string, string> = { alice: "alicepw", bob: "bobpw", "jo.hn": "johnpw", élan: "elanpw" };
const EJABBERD_USERS: Record<string, string> = { alice: "alicepw", bob: "bobpw", "back\\slash": "backpw", élan: "elanpw" };
const MECH: Record<ScramHash, ProbeMechanism> = { "SHA-1": "SCRAM-SHA-1", "SHA-256": "SCRAM-SHA-256", "SHA-512": "SCRAM-SHA-512" };

interface Imported { code: number; out: string; err: string; store: string }

async function runImport(args: string[], secrets: string[]): Promise<Imported> {
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const store = path.join(fs.mkdtempSync(path.join(TEST_TMP, "import-")), "store.sqlite");
  let out = "";
  let err = "";
  const code = await importVerifiersCommand([...args, "--store", store], { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env: {} });
  for (const s of secrets) assert.ok(!out.includes(s) && !err.includes(s), `a secret in the output:\n${out}${err}`);
  return { code, out, err, store };
}

async function storedVerifiers(store: string, users: Record<string, string>): Promise<Map<string, StoredVerifier[]>> {
  const s = new SqliteStore(store);
  try {
    const out = new Map<string, StoredVerifier[]>();
    for (const user of Object.keys(users)) out.set(user, await s.verifiers(`${user}@localhost`.toLowerCase()));
    return out;
  } finally {
    s.close();
  }
}

/** Each user's one verifier, of `hash`, matches the keys derived from the password; returns them. */
async function checkAgainstPasswords(store: string, users: Record<string, string>, hash: ScramHash): Promise<Map<string, StoredVerifier>> {
  const out = new Map<string, StoredVerifier>();
  for (const [user, vs] of await storedVerifiers(store, users)) {
    assert.equal(vs.length, 1, `${user}: one verifier`);
    const v = vs[0] as StoredVerifier;
    assert.equal(v.hash, hash, user);
    assert.deepEqual([v.source, v.upstream, v.sealed], ["imported", true, undefined], user);
    const expected = deriveScramKeys(hash, users[user] as string, v.salt, v.iterations);
    assert.ok(v.storedKey.equals(expected.storedKey), `${user}: StoredKey = H(HMAC(PBKDF2(password, salt, i), "Client Key"))`);
    assert.ok(v.serverKey.equals(expected.serverKey), `${user}: ServerKey = HMAC(PBKDF2(password, salt, i), "Server Key")`);
    out.set(user, v);
  }
  return out;
}

/** The server's own SCRAM exchange for `user` shows the imported salt and count, and the login succeeds. */
async function checkServerFirst(port: number, v: StoredVerifier, user: string, password: string): Promise<void> {
  const probe = await scramProbe(port, "localhost", MECH[v.hash], user, password);
  assert.ok(probe.salt.equals(v.salt), `${user}: the server's s= is the imported salt`);
  assert.equal(probe.iterations, v.iterations);
  assert.equal(probe.success, true, `${user}: the login with the password succeeds`);
}

/** sha256 of every file under `dir` (or of one file): the source must not change. */
function fingerprint(target: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    else out.set(p, `${st.mtimeMs}:${createHash("sha256").update(fs.readFileSync(p)).digest("hex")}`);
  };
  walk(target);
  return out;
}

function secretsOf(users: Record<string, string>): string[] {
  return Object.values(users);
}

// ---- Prosody 0.12 ---------------------------------------------------------------------------------------

function prosodySuite(title: string, opts: ProsodyOptions, hash: ScramHash): void {
  describe(`SPEC A12: import from Prosody 0.12 (${title})`, () => {
    let server: ProsodyServer;
    before(async () => { server = await startProsody({ ...opts, muc: false, tls: false, users: USERS }); });
    after(async () => { await server?.stop(); });

    it("imports every account's verifier, right for its password, from the running server's data directory", async () => {
      const data = path.join(server.dir, "data");
      const before = fingerprint(data);
      const r = await runImport(["--prosody-data", data], secretsOf(USERS));
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^localhost: 4 imported, 0 skipped, 0 failed$/m);
      const verifiers = await checkAgainstPasswords(r.store, USERS, hash);
      assert.deepEqual(fingerprint(data), before, "the data directory is unchanged");
      for (const user of ["alice", "jo.hn"]) await checkServerFirst(server.port, verifiers.get(user)!, user, USERS[user]!);
      // Prosody's salt is a UUID string (util/uuid.lua) and 10000 iterations its default.
      assert.match(verifiers.get("alice")!.salt.toString("latin1"), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(verifiers.get("alice")!.iterations, 10000);
    });
  });
}

prosodySuite("internal_hashed, default password_hash SHA-1", {}, "SHA-1");
prosodySuite("internal_hashed, password_hash SHA-256", { passwordHash: "SHA-256" }, "SHA-256");

describe("SPEC A12: import from Prosody 0.12 (internal_plain)", () => {
  let server: ProsodyServer;
  before(async () => { server = await startProsody({ authentication: "internal_plain", muc: false, tls: false, users: { alice: "alicepw" } }); });
  after(async () => { await server?.stop(); });

  it("reports plain-password accounts as skipped: there is no verifier to import", async () => {
    const r = await runImport(["--prosody-data", path.join(server.dir, "data")], ["alicepw"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: 0 imported, 1 skipped, 0 failed\n {2}skipped 1: plain password/m);
    assert.deepEqual((await storedVerifiers(r.store, { alice: "" })).get("alice"), []);
  });
});

// ---- ejabberd 23.01 -------------------------------------------------------------------------------------

function ejabberdSuite(title: string, opts: EjabberdOptions, body: (server: () => EjabberdServer) => void): void {
  describe(`SPEC A12: import from ejabberd 23.01 (${title})`, () => {
    let server: EjabberdServer;
    before(async () => { server = await startEjabberd({ muc: false, tls: false, users: EJABBERD_USERS, ...opts }); });
    after(async () => { await server?.stop(); });
    body(() => server);
  });
}

/** Runs `ejabberdctl export2sql localhost FILE`; returns the dump and how the command ended. */
async function export2sql(server: EjabberdServer): Promise<{ dump: string; outcome: string }> {
  const dump = path.join(server.dir, "export.sql"); // the ejabberd user writes it: its own directory
  const outcome = await server.ctl(["export2sql", "localhost", dump], 60_000).then(() => "ok", (e: Error) => e.message);
  return { dump, outcome };
}

ejabberdSuite("Mnesia, scram, export2sql, no sql_type", {}, (server) => {
  it("export2sql writes the users rows (backslash escapes) and they import right", async () => {
    const { dump, outcome } = await export2sql(server());
    // COMPAT(ejabberd-23.01): export2sql writes the passwd table first; without mod_muc it then stops at mod_mam's
    // export (gen_mod:get_module_opt_hosts/2: module_not_loaded), exit 1, with the users rows already written.
    assert.ok(outcome === "ok" || /module_not_loaded,mod_muc/.test(outcome), outcome);
    const text = fs.readFileSync(dump, "utf8");
    assert.match(text, /^INSERT INTO users\(username, password, serverkey, salt, iterationcount\) VALUES \('back\\\\slash', /m);
    const r = await runImport(["--ejabberd-sql", dump, "--host", "localhost"], secretsOf(EJABBERD_USERS));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: 4 imported, 0 skipped, 0 failed$/m);
    const verifiers = await checkAgainstPasswords(r.store, EJABBERD_USERS, "SHA-1");
    await checkServerFirst(server().port, verifiers.get("alice")!, "alice", "alicepw");
    assert.equal(verifiers.get("alice")!.iterations, 4096);
    assert.equal(verifiers.get("alice")!.salt.length, 16);
  });
});

ejabberdSuite("Mnesia, scram with auth_scram_hash sha256, export2sql with sql_type: sqlite and mod_muc", {
  muc: true, scramHash: "sha256", sqlite: { auth: "mnesia" },
}, (server) => {
  it("export2sql finishes (standard escapes, sha256: prefix) and the rows import right", async () => {
    const { dump, outcome } = await export2sql(server());
    assert.equal(outcome, "ok");
    const text = fs.readFileSync(dump, "utf8");
    assert.match(text, /VALUES \('back\\slash', 'sha256:/);
    const r = await runImport(["--ejabberd-sql", dump, "--host", "localhost"], secretsOf(EJABBERD_USERS));
    assert.equal(r.code, 0, r.err);
    const verifiers = await checkAgainstPasswords(r.store, EJABBERD_USERS, "SHA-256");
    await checkServerFirst(server().port, verifiers.get("bob")!, "bob", "bobpw");
  });
});

ejabberdSuite("SQLite, scram, old schema", { sqlite: {} }, (server) => {
  it("reads the running server's database read-only and imports every account right", async () => {
    const db = server().sqliteFile!;
    const siblings = () => fs.readdirSync(path.dirname(db)).filter((n) => n.startsWith(path.basename(db))).sort();
    const before = [fingerprint(db), siblings()];
    const r = await runImport(["--ejabberd-sqlite", db, "--host", "localhost"], secretsOf(EJABBERD_USERS));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: 4 imported, 0 skipped, 0 failed$/m);
    const verifiers = await checkAgainstPasswords(r.store, EJABBERD_USERS, "SHA-1");
    assert.deepEqual([fingerprint(db), siblings()], before, "the database unchanged, no journal or WAL file left");
    await checkServerFirst(server().port, verifiers.get("alice")!, "alice", "alicepw");
    const noHost = await runImport(["--ejabberd-sqlite", db], []);
    assert.equal(noHost.code, 2);
    assert.match(noHost.err, /give --host/);
  });
});

ejabberdSuite("SQLite, scram with auth_scram_hash sha512, new_sql_schema", { sqlite: { newSchema: true }, scramHash: "sha512" }, (server) => {
  it("takes the host from server_host and the hash from the sha512: prefix", async () => {
    const r = await runImport(["--ejabberd-sqlite", server().sqliteFile!], secretsOf(EJABBERD_USERS));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: 4 imported, 0 skipped, 0 failed$/m);
    const verifiers = await checkAgainstPasswords(r.store, EJABBERD_USERS, "SHA-512");
    await checkServerFirst(server().port, verifiers.get("élan")!, "élan", "elanpw");
  });
});

ejabberdSuite("Mnesia, auth_password_format: plain (ejabberd's default)", { passwordFormat: "plain" }, (server) => {
  it("a SCRAM login gets a fresh salt every time: there is no stored verifier, and the import skips the accounts", async () => {
    // xmpp 1.6.1 xmpp_sasl_scram:mech_step/2: for a plain password the salt is p1_rand:bytes(16) per exchange,
    // with ?SCRAM_DEFAULT_ITERATION_COUNT (4096), for whichever SCRAM hash the client picked.
    for (const mech of ["SCRAM-SHA-1", "SCRAM-SHA-256"] as const) {
      const first = await scramProbe(server().port, "localhost", mech, "alice", "alicepw");
      const second = await scramProbe(server().port, "localhost", mech, "alice", "alicepw");
      assert.equal(first.success, true);
      assert.equal(second.success, true);
      assert.equal(first.salt.length, 16);
      assert.equal(first.iterations, 4096);
      assert.ok(!first.salt.equals(second.salt), `${mech}: two logins, two salts`);
    }
    const { dump } = await export2sql(server());
    const r = await runImport(["--ejabberd-sql", dump, "--host", "localhost"], secretsOf(EJABBERD_USERS));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: 0 imported, 4 skipped, 0 failed\n {2}skipped 4: plain password \(auth_password_format: plain\)/m);
  });
});

// ---- into PostgreSQL (several replicas, SPEC H) ------------------------------------------------------------

describe("SPEC A12: import into the PostgreSQL store several replicas share", () => {
  let server: ProsodyServer;
  let pgServer: PgServer;
  before(async () => {
    [server, pgServer] = await Promise.all([startProsody({ muc: false, tls: false, users: USERS }), startPostgres({ name: "import" })]);
  });
  after(async () => { await Promise.all([server?.stop(), pgServer?.stop()]); });

  it("writes the verifiers into store.url, and prints no password of the URL", async () => {
    const password = decodeURIComponent(new URL(pgServer.url).password);
    let out = "";
    let err = "";
    const code = await importVerifiersCommand(["--prosody-data", path.join(server.dir, "data"), "--store", pgServer.url],
      { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env: {} });
    assert.equal(code, 0, err);
    assert.match(out, /into PostgreSQL 127\.0\.0\.1:\d+\/mucmux/);
    assert.match(out, /^localhost: 4 imported, 0 skipped, 0 failed$/m);
    for (const s of [password, ...secretsOf(USERS)]) assert.ok(!out.includes(s) && !err.includes(s), "no secret in the output");
    const pg = await PgStore.open(pgServer.url, { poolSize: 1, timeoutMs: 5000, log: createLogger("silent") });
    try {
      for (const [user, pw] of Object.entries(USERS)) {
        const [v, ...more] = await pg.verifiers(`${user}@localhost`.toLowerCase());
        assert.equal(more.length, 0, user);
        assert.ok(v && deriveScramKeys(v.hash, pw, v.salt, v.iterations).storedKey.equals(v.storedKey), `${user}: the imported verifier matches`);
      }
    } finally {
      await pg.end();
    }
  });
});
