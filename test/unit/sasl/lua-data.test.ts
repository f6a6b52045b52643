// The strict reader of Prosody's Lua data files (SPEC A12): what Prosody 0.12's serializer writes is read
// exactly, and anything else — code that would run if the file were evaluated, broken literals, deep nesting,
// oversized numbers — is an error with a line and column that never quotes the file.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { LuaDataError, LuaTable, parseLuaData, type LuaValue } from "../../../src/sasl/import/lua-data.js";

const parse = (text: string | Buffer) => parseLuaData(Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8"));
const table = (v: LuaValue): LuaTable => {
  assert.ok(v instanceof LuaTable, "a table");
  return v;
};
const str = (v: LuaValue | undefined): string => {
  assert.ok(Buffer.isBuffer(v), "a string");
  return v.toString("latin1");
};

/** The error a text gives: its reason and position. */
function failure(text: string | Buffer): { reason: string; line: number; column: number } {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof LuaDataError, `LuaDataError expected, got ${String(err)}`);
    return { reason: err.reason, line: err.line, column: err.column };
  }
  assert.fail("parsed, expected an error");
}

// An account file exactly as Prosody 0.12.3's datamanager wrote it (test/support/prosody.ts, prosodyctl register).
const ACCOUNT = `return {
\t["stored_key"] = "bdf259ef50e77552df00209b0b2743e0a792187e";
\t["salt"] = "e736e645-9224-4fa5-aae6-dc2375cfdf86";
\t["server_key"] = "ef2157f9178e57e09a3a8d068b4f9f8f838080bd";
\t["iteration_count"] = 10000;
};
`;

describe("parseLuaData: what Prosody writes", () => {
  it("reads an account file of internal_hashed", () => {
    const t = table(parse(ACCOUNT));
    assert.deepEqual([...t.fields.keys()], ["stored_key", "salt", "server_key", "iteration_count"]);
    assert.equal(str(t.fields.get("stored_key")), "bdf259ef50e77552df00209b0b2743e0a792187e");
    assert.equal(str(t.fields.get("salt")), "e736e645-9224-4fa5-aae6-dc2375cfdf86");
    assert.equal(t.fields.get("iteration_count"), 10000);
    assert.equal(t.indexed.size, 0);
  });

  it("reads every escape util/serialization.lua writes, and \\xXX", () => {
    // serialize_string: \a \b \f \n \r \t \v \\ \" \' by name, every other control or high byte as \ddd.
    const t = table(parse(String.raw`return { ["s"] = "\a\b\f\n\r\t\v\\\"\'"; ["d"] = "\000\001\127\128\255"; ["x"] = "\x00\x41\xfF"; ["mix"] = "\0659\0650" };`));
    assert.deepEqual([...(t.fields.get("s") as Buffer)], [7, 8, 12, 10, 13, 9, 11, 92, 34, 39]);
    assert.deepEqual([...(t.fields.get("d") as Buffer)], [0, 1, 127, 128, 255]);
    assert.deepEqual([...(t.fields.get("x") as Buffer)], [0, 0x41, 0xff]);
    // \ddd takes at most three digits: "\0659" is "A9", "\0650" is "A0".
    assert.equal(str(t.fields.get("mix")), "A9A0");
  });

  it("keeps a string's bytes: raw UTF-8 and escaped high bytes alike", () => {
    const t = table(parse(Buffer.concat([Buffer.from('return { ["n"] = "'), Buffer.from("élan", "utf8"), Buffer.from('"; ["e"] = "\\195\\169" };')])));
    assert.equal((t.fields.get("n") as Buffer).toString("utf8"), "élan");
    assert.equal((t.fields.get("e") as Buffer).toString("utf8"), "é");
  });

  it("reads numbers as %d and %.18g write them, and (1/0), (-1/0), (0/0)", () => {
    const t = table(parse('return { 0, -12, 4096, 1.5, -2.5e-05, 1e+300, 3E2, (1/0), (-1/0), (0/0) };'));
    assert.deepEqual([...t.indexed.values()].slice(0, 9), [0, -12, 4096, 1.5, -2.5e-05, 1e300, 300, Infinity, -Infinity]);
    assert.ok(Number.isNaN(t.indexed.get(10)));
  });

  it("reads nested tables, positional values, identifier and integer keys, either separator", () => {
    const t = table(parse('return {\n\t["a"] = { 1, 2, { x = true, [3] = false, }, };\n\tb = "c", [-1] = {};\n}'));
    const a = table(t.fields.get("a") as LuaValue);
    assert.deepEqual([a.indexed.get(1), a.indexed.get(2)], [1, 2]);
    const inner = table(a.indexed.get(3) as LuaValue);
    assert.equal(inner.fields.get("x"), true);
    assert.equal(inner.indexed.get(3), false);
    assert.equal(str(t.fields.get("b")), "c");
    assert.equal(table(t.indexed.get(-1) as LuaValue).fields.size, 0);
  });

  it("accepts the file with or without the final ';' and newline, and an empty table", () => {
    assert.equal(table(parse("return {};\n")).fields.size, 0);
    assert.equal(table(parse("return{}")).fields.size, 0);
    assert.equal(parse('return "x"').toString(), "x");
  });
});

describe("parseLuaData: hostile and broken input", () => {
  it("never runs code: calls, names and expressions are errors", () => {
    const marker = `/tmp/mucmux-lua-eval-${process.pid}`;
    for (const code of [
      `return os.execute("touch ${marker}")`,
      `return { ["a"] = io.open("/etc/passwd"):read("*a") }`,
      `return (function() os.execute("touch ${marker}") end)()`,
      `return {}; os.execute("touch ${marker}")`,
      `return { ["a"] = "x" .. os.getenv("HOME") }`,
      `return { a = os.exit }`,
      `return { [os.time()] = 1 }`,
      `return { ["a"] = require "os" }`,
      `return -x`,
      `return { ["a"] = 1 + 2 }`,
      `return { ["a"] = #"x" }`,
      `return nil`,
      `return setmetatable({}, {__index = os})`,
    ]) {
      assert.throws(() => parse(code), LuaDataError, code);
    }
    assert.equal(existsSync(marker), false);
  });

  it("refuses what Prosody never writes: comments, long strings, single quotes, hex numbers, other keys", () => {
    for (const text of ["-- c\nreturn {}", "return { -- c\n}", "return [[x]]", "return { ['a'] = 1 }", "return 0x10",
      "return { [true] = 1 }", "return { [1.5] = 1 }", "return { [\"a\"] == 1 }", "return { a }", "return { end = 1 }",
      "return {} {}", "return", "", "\uFEFFreturn {}", "returnx {}", "return { [\"a\"] = 1 [\"b\"] = 2 }", "return .5", "return 1.",
      "return 1e", "return 01x", "return - 1"]) {
      assert.throws(() => parse(text), LuaDataError, JSON.stringify(text));
    }
  });

  it("reports broken strings with their position", () => {
    assert.deepEqual(failure('return {\n\t["salt"] = "abc'), { reason: "unterminated string", line: 2, column: 13 });
    assert.deepEqual(failure('return "a\nb"'), { reason: "unterminated string", line: 1, column: 8 });
    assert.equal(failure('return "a\\q"').reason, "unknown escape sequence in a string");
    assert.deepEqual(failure('return "ab\\256"'), { reason: "decimal escape larger than 255", line: 1, column: 11 });
    assert.equal(failure('return "\\x4"').reason, "\\x needs two hexadecimal digits");
    assert.equal(failure('return "\\xg0"').reason, "\\x needs two hexadecimal digits");
    assert.equal(failure('return "\\').reason, "unterminated string at the end of the file");
    assert.equal(failure('return "a\tb"').reason, "control character in a string (Prosody escapes them)");
    assert.equal(failure('return "\\z  x"').reason, "unknown escape sequence in a string");
    assert.equal(failure('return "\\u{41}"').reason, "unknown escape sequence in a string");
  });

  it("survives deep nesting without exhausting the stack", () => {
    assert.equal(failure(`return ${"{".repeat(100_000)}`).reason, "tables nested deeper than 32");
    assert.equal(failure(`return ${"{ ".repeat(33)}${"} ".repeat(33)}`).reason, "tables nested deeper than 32");
    assert.ok(parse(`return ${"{ ".repeat(32)}${"} ".repeat(32)}`) instanceof LuaTable);
  });

  it("bounds number literals; huge values parse as numbers for the caller to refuse", () => {
    assert.equal(failure(`return ${"9".repeat(65)}`).reason, "number literal too long");
    assert.equal(parse("return 1e999"), Infinity);
    assert.equal(parse("return 99999999999999999999"), 1e20);
  });

  it("refuses duplicate keys (Prosody never writes one; which would win is Lua's business)", () => {
    assert.deepEqual(failure('return {\n["a"] = 1;\n["a"] = 2 }'), { reason: "duplicate table key", line: 3, column: 1 });
    assert.equal(failure("return { 1, [1] = 2 }").reason, "duplicate table key");
  });

  it("never quotes the input in its messages", () => {
    const secret = "bdf259ef50e77552df00209b0b2743e0a792187e";
    for (const text of [`return { ["stored_key"] = "${secret}`, `return { ["stored_key"] = "${secret}\\q" }`, `return { ["${secret}"] }`,
      `return { ["stored_key"] = ${secret} }`, `return { x${secret} }`, `return { ["a"] = "${secret}" ["b"] }`]) {
      const err = (() => {
        try {
          parse(text);
        } catch (e) {
          return e;
        }
        assert.fail(`parsed: ${text}`);
      })();
      assert.ok(err instanceof LuaDataError, text);
      assert.ok(!err.message.includes(secret.slice(0, 8)), err.message);
    }
  });
});
