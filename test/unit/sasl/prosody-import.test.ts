// Reading Prosody 0.12's account files for SPEC A12 from a hand-made data directory: names decoded as
// util/datamanager.lua encodes them, internal_hashed accounts become verifiers (SHA-1 or SHA-256 by key length),
// plain-password accounts are skipped, and every broken file is one failure that does not stop the others.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { decodeProsodyName, readProsodyAccounts } from "../../../src/sasl/import/prosody.js";
import type { ImportRecord } from "../../../src/sasl/import/records.js";

const NOW = 1_700_000_000_000;
const SK1 = "bdf259ef50e77552df00209b0b2743e0a792187e";
const SV1 = "ef2157f9178e57e09a3a8d068b4f9f8f838080bd";
const SK256 = "a".repeat(64);
const SV256 = "b".repeat(64);
const SALT = "e736e645-9224-4fa5-aae6-dc2375cfdf86";

const hashed = (stored = SK1, server = SV1, extra = "") =>
  `return {\n\t["stored_key"] = "${stored}";\n\t["salt"] = "${SALT}";\n\t["server_key"] = "${server}";\n\t["iteration_count"] = 10000;${extra}\n};\n`;

let dir: string;
const write = (rel: string, text: string | Buffer) => {
  const file = path.join(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
};
async function all(opts: { host?: string } = {}): Promise<ImportRecord[]> {
  const out: ImportRecord[] = [];
  for await (const r of readProsodyAccounts(dir, { ...opts, now: NOW })) out.push(r);
  return out;
}
const byWhere = (records: ImportRecord[], file: string) => {
  const r = records.find((x) => x.where.startsWith(path.join(dir, file)));
  assert.ok(r, `no record for ${file}`);
  return r;
};

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "mucmux-prosody-data-"));
  write("localhost/accounts/alice.dat", hashed());
  write("localhost/accounts/%c3%a9lan.dat", hashed());
  write("localhost/accounts/jo%2ehn.dat", hashed());
  write("localhost/accounts/plain.dat", 'return {\n\t["password"] = "secret-pw";\n};\n');
  write("localhost/accounts/empty.dat", "return {};\n");
  write("localhost/accounts/alice.dat~", "return { broken");
  write("localhost/accounts/notes.txt", "not an account");
  write("localhost/accounts/upgrade.dat", hashed(SK1, SV1, '\n\t["password"] = "old-plain";'));
  write("localhost/accounts/blank%2dpw.dat", hashed(SK1, SV1, '\n\t["password"] = "";'));
  write("localhost/accounts/broken.dat", 'return {\n\t["stored_key"] = "abc');
  write("localhost/accounts/evil.dat", 'return os.execute("id")');
  write("localhost/accounts/nonhex.dat", hashed(`${SK1.slice(0, 38)}zz`));
  write("localhost/accounts/odd.dat", hashed(SK1.slice(0, 39)));
  write("localhost/accounts/short.dat", hashed(SK1.slice(0, 38), SV1.slice(0, 38)));
  write("localhost/accounts/mixed.dat", hashed(SK1, SV256));
  write("localhost/accounts/numkey.dat", hashed(SK1, SV1).replace('"e736e645-9224-4fa5-aae6-dc2375cfdf86"', "42"));
  write("localhost/accounts/huge.dat", hashed().replace("10000", "1e999"));
  write("localhost/accounts/zero.dat", hashed().replace("10000", "0"));
  write("localhost/accounts/frac.dat", hashed().replace("10000", "4096.5"));
  write("localhost/accounts/notable.dat", 'return "x";');
  write("localhost/accounts/bad%zzname.dat", hashed());
  write("localhost/accounts/big.dat", `return { ["pad"] = "${"x".repeat(70_000)}" };`);
  write("example%2ecom/accounts/bob.dat", hashed(SK256, SV256));
  write("example%2ecom/accounts/alice.dat", hashed(SK1.toUpperCase(), SV1));
  write("_global/roster/x.dat", "return {};");
  write("lost+found/x", "");
  write("not.encoded/accounts/carol.dat", hashed());
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("decodeProsodyName (util/datamanager.lua)", () => {
  it("decodes %xx bytes as UTF-8 and refuses names Prosody would have encoded", () => {
    assert.equal(decodeProsodyName("localhost"), "localhost");
    assert.equal(decodeProsodyName("example%2ecom"), "example.com");
    assert.equal(decodeProsodyName("EXAMPLE%2Ecom"), "EXAMPLE.com"); // decode accepts either case of hex
    assert.equal(decodeProsodyName("%c3%a9lan"), "élan");
    assert.equal(decodeProsodyName("a.b"), undefined);
    assert.equal(decodeProsodyName("a%2"), undefined);
    assert.equal(decodeProsodyName("a%zz"), undefined);
    assert.equal(decodeProsodyName("%ff"), undefined); // not UTF-8
    assert.equal(decodeProsodyName(""), "");
  });
});

describe("readProsodyAccounts", () => {
  it("turns internal_hashed accounts into imported verifiers (SHA-1: 20-byte keys)", async () => {
    const r = byWhere(await all(), "localhost/accounts/alice.dat");
    assert.equal(r.kind, "verifier");
    assert.ok(r.kind === "verifier");
    assert.deepEqual(r.verifier, {
      account: "alice@localhost", hash: "SHA-1", salt: Buffer.from(SALT, "latin1"), iterations: 10000,
      storedKey: Buffer.from(SK1, "hex"), serverKey: Buffer.from(SV1, "hex"),
      source: "imported", upstream: true, sealed: undefined, updatedAt: NOW,
    });
  });

  it("decodes user and host names from the paths", async () => {
    const accounts = (await all()).flatMap((r) => (r.kind === "verifier" ? [r.account] : []));
    assert.ok(accounts.includes("élan@localhost"));
    assert.ok(accounts.includes("jo.hn@localhost"));
    assert.ok(accounts.includes("bob@example.com"));
  });

  it("reads SHA-256 verifiers (password_hash = \"SHA-256\": 32-byte keys) and upper-case hex", async () => {
    const records = await all();
    const bob = byWhere(records, "example%2ecom/accounts/bob.dat");
    assert.ok(bob.kind === "verifier" && bob.verifier.hash === "SHA-256" && bob.verifier.storedKey.equals(Buffer.from(SK256, "hex")));
    const alice = byWhere(records, "example%2ecom/accounts/alice.dat");
    assert.ok(alice.kind === "verifier" && alice.verifier.storedKey.equals(Buffer.from(SK1, "hex")));
  });

  it("skips accounts without a verifier: a plain password, or none at all", async () => {
    const records = await all();
    for (const [file, reason] of [["plain.dat", /plain password/], ["upgrade.dat", /plain password/], ["empty.dat", /no credentials/]] as const) {
      const r = byWhere(records, `localhost/accounts/${file}`);
      assert.equal(r.kind, "skipped", file);
      assert.match((r as { reason: string }).reason, reason);
    }
    // An empty password next to hashed fields is what internal_hashed ignores.
    assert.equal(byWhere(records, "localhost/accounts/blank%2dpw.dat").kind, "verifier");
  });

  it("reports each broken file as one failure, with a reason and no secret, and goes on", async () => {
    const records = await all();
    const expect: Record<string, RegExp> = {
      "broken.dat": /^unterminated string$/,
      "evil.dat": /only data is read/,
      "nonhex.dat": /stored_key is not hexadecimal/,
      "odd.dat": /stored_key is not hexadecimal/,
      "short.dat": /19 bytes: neither SHA-1 \(20\) nor SHA-256 \(32\)/,
      "mixed.dat": /server key is 32 bytes, SHA-1 needs 20/,
      "numkey.dat": /salt is missing or not a string/,
      "huge.dat": /iteration count is not an integer/,
      "zero.dat": /iteration count is not an integer/,
      "frac.dat": /iteration count is not an integer/,
      "notable.dat": /not a table/,
      "bad%zzname.dat": /not a user name Prosody encodes/,
      "big.dat": /larger than 65536 bytes/,
    };
    for (const [file, reason] of Object.entries(expect)) {
      const r = byWhere(records, `localhost/accounts/${file}`);
      assert.equal(r.kind, "failed", file);
      assert.match((r as { reason: string }).reason, reason, file);
      assert.ok(!JSON.stringify(r).includes(SK1.slice(0, 10)) && !JSON.stringify(r).includes(SALT), `${file}: a secret in ${JSON.stringify(r)}`);
    }
    assert.equal(byWhere(records, "localhost/accounts/broken.dat").where, `${path.join(dir, "localhost/accounts/broken.dat")}:2:19`);
    const carol = records.find((r) => r.where === path.join(dir, "not.encoded"));
    assert.ok(carol?.kind === "failed" && /not a host name Prosody encodes/.test(carol.reason));
  });

  it("ignores scratch files, other files and directories without accounts", async () => {
    const wheres = (await all()).map((r) => r.where);
    for (const w of wheres) assert.ok(!/\.dat~|notes\.txt|_global|lost\+found/.test(w), w);
    assert.equal(wheres.length, 23);
  });

  it("reads one host only with --host (any case)", async () => {
    const records = await all({ host: "Example.COM" });
    assert.deepEqual(records.map((r) => r.host), ["example.com", "example.com"]);
  });
});
