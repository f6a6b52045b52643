// The users rows of an `ejabberdctl export2sql` dump (SPEC A12), read without executing SQL: the statements
// ejabberd 23.01 wrote on this machine are read exactly in both escapings, other statements are passed over,
// and a broken INSERT costs that row only.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readUsersFromDump, SqlDumpError } from "../../../src/sasl/import/sql-dump.js";

const read = (text: string, escapes?: "auto" | "backslash" | "standard") => readUsersFromDump(Buffer.from(text, "utf8"), escapes);
const users = (text: string, escapes?: "auto" | "backslash" | "standard") => read(text, escapes).rows.map((r) => Object.fromEntries(r.values));

// Written by ejabberd 23.01 (Mnesia, auth_password_format: scram, no sql_type: backslash escapes), users
// back\slash, alice and élan.
const BACKSLASH_DUMP = `-- 
-- Mnesia table: passwd
--
delete from users where username='back\\\\slash' and 0=0;
INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('back\\\\slash', 'Eh9jpFYgCubN67lpPjpwarOl29g=', 'KY/q4Bkk0E77zPFBBQfaRGw+SfM=', 'rexrRvQ9WACrznd41yrb8A==', 4096);
delete from users where username='alice' and 0=0;
INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('alice', 'sNjWTI3uyyXp5BPYSMRsAcjVJfM=', '9iVfzK1k+SlwiPwa3d4IkjyQysk=', 'abHIuSRiUT0FFpjOp+sNfw==', 4096);
delete from users where username='élan' and 0=0;
INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('élan', 'BbYg8u99rFtxe8Xx/RGLCX2gOCk=', 'PQFngYDNAvPDhiQWtniM0yOElpk=', 'Z+x0yFGa/PX6lM/4XHgLhw==', 4096);
`;

// The same with sql_type: sqlite configured (standard escaping: the backslash is written as it is).
const STANDARD_DUMP = `-- 
-- Mnesia table: passwd
--
delete from users where username='back\\slash' and 0=0;
INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('back\\slash', 'uJ2W1RWuGWYPQ+TP8hlY3Ozr6DA=', 'NC21Ab7tzLmg/4dhomk3w13Q+jA=', 'DTJaWy44pDr/8BKagTySBA==', 4096);
`;

describe("readUsersFromDump", () => {
  it("reads export2sql's users rows, backslash-escaped (every sql_type but sqlite)", () => {
    const r = read(BACKSLASH_DUMP);
    assert.equal(r.escapes, "backslash");
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.rows.map((row) => [row.values.get("username"), row.line]), [["back\\slash", 5], ["alice", 7], ["élan", 9]]);
    assert.deepEqual(Object.fromEntries(r.rows[1]?.values ?? []), {
      username: "alice", password: "sNjWTI3uyyXp5BPYSMRsAcjVJfM=", serverkey: "9iVfzK1k+SlwiPwa3d4IkjyQysk=",
      salt: "abHIuSRiUT0FFpjOp+sNfw==", iterationcount: 4096,
    });
  });

  it("recognises sqlite's standard escaping by a backslash ejabberd_sql:escape/1 never writes", () => {
    const r = read(STANDARD_DUMP);
    assert.equal(r.escapes, "standard");
    assert.equal(r.rows[0]?.values.get("username"), "back\\slash");
    // A backslash the two escapings read differently: auto reads what a server without SQL writes.
    assert.equal(users("INSERT INTO users(username) VALUES ('a\\\\b');")[0]?.username, "a\\b");
    assert.equal(users("INSERT INTO users(username) VALUES ('a\\\\b');", "standard")[0]?.username, "a\\\\b");
    // Raw characters escape/1 always escapes prove the standard form too, in any statement.
    assert.equal(read("INSERT INTO muc_room(opts) VALUES ('[{title,<<\"x\">>}]'); INSERT INTO users(username) VALUES ('a\\\\b');").escapes, "standard");
  });

  it("decodes every escape of ejabberd_sql:escape/1, and doubled quotes in both forms", () => {
    assert.equal(users("INSERT INTO users(username) VALUES ('\\0\\n\\t\\b\\r\\\"\\\\''x');", "backslash")[0]?.username, "\0\n\t\b\r\"\\'x");
    assert.equal(users("INSERT INTO users(username) VALUES ('it''s');", "standard")[0]?.username, "it's");
    const bad = read("INSERT INTO users(username) VALUES ('a\\qb');", "backslash");
    assert.deepEqual(bad.rows, []);
    assert.match(bad.errors[0]?.reason ?? "", /backslash sequence ejabberd does not write/);
  });

  it("reads new_sql_schema's server_host, quoted column names, several rows per INSERT and any keyword case", () => {
    const text = `insert into "users" ("username", server_host, \`password\`, serverkey, salt, iterationcount)
      values ('a', 'example.com', 'p', 's', 'x', 4096), ('b', 'example.org', 'p', 's', 'x', 1);`;
    assert.deepEqual(users(text).map((u) => [u.username, u.server_host, u.password, u.iterationcount]),
      [["a", "example.com", "p", 4096], ["b", "example.org", "p", 1]]);
  });

  it("passes over other statements, with ';', '--' and quotes inside their literals", () => {
    const text = `INSERT INTO rosterusers(username, jid) VALUES ('a;b', '-- not a comment');
      INSERT INTO users_old(username) VALUES ('x');
      delete from users where username='alice' and 0=0;
      INSERT INTO vcard(vcard) VALUES ('<vCard>it''s; INSERT INTO users(username) VALUES (''evil'');</vCard>');
      INSERT INTO users(username) VALUES ('real'); -- trailing comment
      INSERT INTO users(username) VALUES ('last')`;
    assert.deepEqual(users(text).map((u) => u.username), ["real", "last"]);
  });

  it("a malformed users INSERT is an error for that statement only, with its line", () => {
    const text = [
      "INSERT INTO users(username, iterationcount) VALUES ('a', 1);",
      "INSERT INTO users(username, iterationcount) VALUES ('b', 99999999999999999999);",
      "INSERT INTO users(username, iterationcount) VALUES ('c', 1.5);",
      "INSERT INTO users(username, iterationcount) VALUES ('d');",
      "INSERT INTO users VALUES ('e', 1);",
      "INSERT INTO users(username, username) VALUES ('f', 'f');",
      "INSERT INTO users(username) VALUES ('g'), ;",
      "INSERT INTO users(username) VALUES (lower('h'));",
      "INSERT INTO users(username) VALUES ('i') ON CONFLICT DO NOTHING;",
      "INSERT INTO users(username) SELECT username FROM x;",
      "INSERT INTO users(username) VALUES (NULL);",
      "INSERT INTO users(username, iterationcount) VALUES ('z', -1);",
    ].join("\n");
    const r = read(text);
    assert.deepEqual(r.rows.map((row) => row.values.get("username")), ["a", "z"]);
    assert.deepEqual(r.errors.map((e) => e.line), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (const e of r.errors) assert.match(e.reason, /^INSERT INTO users: /);
  });

  it("refuses a file it cannot split: not UTF-8, an unterminated literal", () => {
    assert.throws(() => readUsersFromDump(Buffer.from([0x27, 0xff, 0x27])), (e: unknown) => e instanceof SqlDumpError && e.message === "not UTF-8 text");
    assert.throws(() => read("INSERT INTO users(username) VALUES ('a);\nselect 1;"), /line 1: unterminated string literal/);
  });

  it("is linear on large inputs (no backtracking, no per-character copies)", () => {
    const row = "INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('u', 'sNjWTI3uyyXp5BPYSMRsAcjVJfM=', '9iVfzK1k+SlwiPwa3d4IkjyQysk=', 'abHIuSRiUT0FFpjOp+sNfw==', 4096);\n";
    const big = `INSERT INTO archive(txt) VALUES ('${"x".repeat(8_000_000)}');\n${row.repeat(20_000)}`;
    const started = process.hrtime.bigint();
    const r = read(big);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(r.rows.length, 20_000);
    assert.ok(ms < 5000, `${ms} ms`);
  });
});
