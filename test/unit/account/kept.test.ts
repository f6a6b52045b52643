// SPEC G6: the operator's key file, read strictly: 32 bytes raw, as 64 hex digits or as base64; anything else refuses.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { readKeepKey } from "../../../src/account/kept.js";

const dir = mkdtempSync(path.join(tmpdir(), "keep-key-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => {
  const f = path.join(dir, name);
  writeFileSync(f, content);
  return f;
};

describe("readKeepKey", () => {
  it("takes 32 raw bytes, 64 hex digits or base64 of 32 bytes", () => {
    const key = randomBytes(32);
    assert.deepEqual(readKeepKey(file("raw", key)), key);
    assert.deepEqual(readKeepKey(file("hex", `${key.toString("hex")}\n`)), key);
    assert.deepEqual(readKeepKey(file("b64", `${key.toString("base64")}\n`)), key);
  });

  it("refuses anything else with the file and what it needs", () => {
    for (const [name, content] of [["short", randomBytes(16).toString("base64")], ["empty", ""], ["text", "not a key at all, clearly"]] as const) {
      assert.throws(() => readKeepKey(file(name, content)), /anchors\.keepKeyFile must hold a 32-byte key/);
    }
  });
});
