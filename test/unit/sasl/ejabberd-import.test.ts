// Reading ejabberd 23.01's users table for SPEC A12, from an SQLite file of its layout and from a dump: scram
// rows become verifiers (the hash from the "sha256:"/"sha512:" prefix, SHA-1 without), plain rows are skipped,
// broken rows fail one by one, and layouts other than 23.01's are refused as a whole.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { EjabberdSourceError, readEjabberdDump, readEjabberdSqlite } from "../../../src/sasl/import/ejabberd.js";
import type { ImportRecord } from "../../../src/sasl/import/records.js";
import { deriveScramKeys } from "../../support/scram.js";

const NOW = 1_700_000_000_000;
const SALT = Buffer.from("0123456789abcdef");
const k1 = deriveScramKeys("SHA-1", "alicepw", SALT, 4096);
const k256 = deriveScramKeys("SHA-256", "bobpw", SALT, 4096);
const k512 = deriveScramKeys("SHA-512", "carolpw", SALT, 4096);
const b64 = (b: Buffer) => b.toString("base64");

// sql/lite.sql and sql/lite.new.sql of ejabberd 23.01 (users only).
const OLD_SCHEMA = `CREATE TABLE users (username text PRIMARY KEY, password text NOT NULL, serverkey text NOT NULL DEFAULT '',
  salt text NOT NULL DEFAULT '', iterationcount integer NOT NULL DEFAULT 0, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);`;
const NEW_SCHEMA = `CREATE TABLE users (username text NOT NULL, server_host text NOT NULL, password text NOT NULL,
  serverkey text NOT NULL DEFAULT '', salt text NOT NULL DEFAULT '', iterationcount integer NOT NULL DEFAULT 0,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (server_host, username));`;

let dir: string;
function database(name: string, schema: string, rows: unknown[][]): string {
  const file = path.join(dir, name);
  const db = new Database(file);
  db.exec(schema);
  if (rows.length === 0) { db.close(); return file; }
  const cols = (db.prepare("SELECT name FROM pragma_table_info('users') WHERE name <> 'created_at'").all() as { name: string }[]).map((c) => c.name);
  const insert = db.prepare(`INSERT INTO users (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`);
  for (const row of rows) insert.run(...row);
  db.close();
  return file;
}
const kinds = (records: ImportRecord[]) => records.map((r) => [r.kind, r.kind === "failed" ? r.reason : r.kind === "skipped" ? r.reason : r.account]);

before(() => { dir = mkdtempSync(path.join(os.tmpdir(), "mucmux-ejabberd-import-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

describe("readEjabberdSqlite", () => {
  it("reads scram rows of every hash, skips plain rows, fails broken rows one by one", () => {
    const file = database("old.db", OLD_SCHEMA, [
      ["alice", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096],
      ["bob", `sha256:${b64(k256.storedKey)}`, b64(k256.serverKey), b64(SALT), 4096],
      ["carol", `sha512:${b64(k512.storedKey)}`, b64(k512.serverKey), b64(SALT), 4096],
      ["dave", "plain-secret", "", "", 0],
      ["eve", `sha256:${b64(k1.storedKey)}`, b64(k1.serverKey), b64(SALT), 4096],
      ["frank", "not base64!", b64(k1.serverKey), b64(SALT), 4096],
      ["gina", b64(k1.storedKey), `${b64(k1.serverKey)}\n`, b64(SALT), 4096],
      ["hank", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 0],
      ["ivan", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), "4096x"],
      ["jane", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 2 ** 40],
      ["kate", b64(k1.storedKey), b64(k1.serverKey), "", 4096],
      [Buffer.from("blob"), b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096],
      ["Mixed", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096],
    ]);
    const records = readEjabberdSqlite(file, { host: "LocalHost", now: NOW });
    assert.deepEqual(kinds(records), [
      ["verifier", "mixed@localhost"],
      ["verifier", "alice@localhost"],
      ["verifier", "bob@localhost"],
      ["verifier", "carol@localhost"],
      ["skipped", "plain password (auth_password_format: plain): no SCRAM verifier stored"],
      ["failed", "stored key is 20 bytes, SHA-256 needs 32"],
      ["failed", "stored key is not base64"],
      ["failed", "serverkey is not base64"],
      ["failed", "iteration count is not an integer from 1 to 2147483647"],
      ["failed", "iterationcount is not an integer"],
      ["failed", "iteration count is not an integer from 1 to 2147483647"],
      ["failed", "salt is not base64"],
      ["failed", "username is not text"], // a BLOB sorts after every text
    ]);
    const alice = records[1];
    assert.ok(alice?.kind === "verifier");
    assert.deepEqual(alice.verifier, {
      account: "alice@localhost", hash: "SHA-1", salt: SALT, iterations: 4096, storedKey: k1.storedKey, serverKey: k1.serverKey,
      source: "imported", upstream: true, sealed: undefined, updatedAt: NOW,
    });
    const bob = records[2];
    assert.ok(bob?.kind === "verifier" && bob.verifier.hash === "SHA-256" && bob.verifier.storedKey.equals(k256.storedKey));
    const carol = records[3];
    assert.ok(carol?.kind === "verifier" && carol.verifier.hash === "SHA-512" && carol.verifier.serverKey.equals(k512.serverKey));
    assert.match(records[6]?.where ?? "", /users row 7 \(frank@localhost\)$/);
    for (const r of records) assert.ok(!JSON.stringify(r).includes("plain-secret") && !JSON.stringify(r).includes(b64(k1.storedKey)));
  });

  it("reads new_sql_schema's server_host; --host selects one host", () => {
    const file = database("new.db", NEW_SCHEMA, [
      ["alice", "example.com", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096],
      ["alice", "Example.ORG", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096],
    ]);
    assert.deepEqual(kinds(readEjabberdSqlite(file)).sort(), [["verifier", "alice@example.com"], ["verifier", "alice@example.org"]]);
    assert.deepEqual(readEjabberdSqlite(file, { host: "example.org" }).map((r) => r.host), ["example.org"]);
  });

  it("refuses a database that is not 23.01's users table, or does not name its host", () => {
    const refuses = (file: string, re: RegExp, host?: string) =>
      assert.throws(() => readEjabberdSqlite(file, host ? { host } : {}), (e: unknown) => e instanceof EjabberdSourceError && re.test(e.message));
    refuses(database("old2.db", OLD_SCHEMA, []), /do not name their host \(no server_host column\): give --host/);
    refuses(database("typed.db", "CREATE TABLE users (username text, type smallint, password text, serverkey text, salt text, iterationcount integer);", []),
      /'type' column \(ejabberd 25\.03 or later\)/, "localhost");
    refuses(database("nokeys.db", "CREATE TABLE users (username text, password text);", []), /no column serverkey, salt, iterationcount/, "localhost");
    refuses(database("none.db", "CREATE TABLE other (x);", []), /no column username, password/, "localhost");
    const text = path.join(dir, "text.db");
    writeFileSync(text, "this is not a database, it is text long enough to have a header".repeat(20));
    refuses(text, /not a readable SQLite database|cannot open it/, "localhost");
    refuses(path.join(dir, "missing.db"), /cannot open it as an SQLite database/, "localhost");
  });

  it("opens the file read-only: it is not changed, not even a journal mode", () => {
    const file = database("ro.db", OLD_SCHEMA, [["alice", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096]]);
    const before = new Database(file).pragma("journal_mode", { simple: true });
    readEjabberdSqlite(file, { host: "localhost" });
    assert.equal(new Database(file).pragma("journal_mode", { simple: true }), before);
  });
});

describe("readEjabberdDump", () => {
  const row = (user: string, password: string, serverkey: string, salt: string, i: number | string) =>
    `delete from users where username='${user}' and 0=0;\nINSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('${user}', '${password}', '${serverkey}', '${salt}', ${i});\n`;
  const dump = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `-- \n-- Mnesia table: passwd\n--\n${text}`);
    return file;
  };

  it("reads the rows of export2sql with the host given, reporting broken rows by line", async () => {
    const file = dump("d1.sql", row("alice", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096) +
      row("dave", "plain-secret", "", "", 0) + row("eve", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), "'x'") +
      row("o''brien\\\\x", `sha256:${b64(k256.storedKey)}`, b64(k256.serverKey), b64(SALT), 4096) +
      "INSERT INTO users(username, password) VALUES ('broken';\n");
    const records = await readEjabberdDump(file, { host: "localhost", now: NOW });
    assert.deepEqual(kinds(records), [
      ["failed", "INSERT INTO users: expected ','"],
      ["verifier", "alice@localhost"],
      ["skipped", "plain password (auth_password_format: plain): no SCRAM verifier stored"],
      ["failed", "iterationcount is not an integer"],
      ["verifier", "o'brien\\x@localhost"],
    ]);
    assert.equal(records[0]?.where, `${file}:12`);
    assert.equal(records[1]?.where, `${file}:5`);
  });

  it("reads export2sql's plain-password rows (username and password only) as skipped", async () => {
    const file = dump("plain.sql", "INSERT INTO users(username, password) VALUES ('dave', 'plain-secret');\n" +
      "INSERT INTO users(username, password, salt) VALUES ('eve', 'x', 'y');\n");
    assert.deepEqual(kinds(await readEjabberdDump(file, { host: "localhost" })), [
      ["skipped", "plain password (auth_password_format: plain): no SCRAM verifier stored"],
      ["failed", "the INSERT names salt but not all of serverkey, salt, iterationcount"],
    ]);
    await assert.rejects(readEjabberdDump(dump("nopw.sql", "INSERT INTO users(username) VALUES ('a');"), { host: "h" }), /no column password/);
  });

  it("needs --host unless the rows name their host", async () => {
    const file = dump("d2.sql", row("alice", b64(k1.storedKey), b64(k1.serverKey), b64(SALT), 4096));
    await assert.rejects(readEjabberdDump(file), /give --host/);
    const withHost = dump("d3.sql", `INSERT INTO users(username, server_host, password, serverkey, salt, iterationcount) VALUES ('a', 'x.org', '${b64(k1.storedKey)}', '${b64(k1.serverKey)}', '${b64(SALT)}', 4096);`);
    assert.deepEqual(kinds(await readEjabberdDump(withHost)), [["verifier", "a@x.org"]]);
  });

  it("a dump without users rows imports nothing; an unsplittable one is refused as a whole", async () => {
    assert.deepEqual(await readEjabberdDump(dump("d4.sql", "INSERT INTO roster(a) VALUES ('b');"), {}), []);
    await assert.rejects(readEjabberdDump(dump("d5.sql", "INSERT INTO users(username) VALUES ('a);"), { host: "h" }),
      (e: unknown) => e instanceof EjabberdSourceError && /d5\.sql: line 4: unterminated string literal/.test(e.message));
  });
});
