// `mucmux import-verifiers` (SPEC A12): usage errors exit 2, a clean import 0, an import with broken files 1
// after importing the rest; the store gets imported verifiers (a learned one with the same keys is kept, an
// imported one of another hash is removed); the output counts per host and never holds a key, salt or password.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { helpText } from "../../../src/config/index.js";
import { importVerifiersCommand } from "../../../src/sasl/import/command.js";
import { SqliteStore } from "../../../src/store/sqlite.js";
import type { StoredVerifier } from "../../../src/store/store.js";
import { deriveScramKeys } from "../../support/scram.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SALT = "e736e645-9224-4fa5-aae6-dc2375cfdf86";
const alice = deriveScramKeys("SHA-1", "alicepw", Buffer.from(SALT), 10000);
const bob = deriveScramKeys("SHA-256", "bobpw", Buffer.from(SALT), 10000);
const hex = (b: Buffer) => b.toString("hex");
const account = (k: { storedKey: Buffer; serverKey: Buffer }) =>
  `return {\n\t["stored_key"] = "${hex(k.storedKey)}";\n\t["salt"] = "${SALT}";\n\t["server_key"] = "${hex(k.serverKey)}";\n\t["iteration_count"] = 10000;\n};\n`;
/** Every secret of the fixture, in every spelling the output could carry it. */
const SECRETS = [SALT, "alicepw", "bobpw", "plain-secret", ...[alice, bob].flatMap((k) => [k.storedKey, k.serverKey]).flatMap((b) => [hex(b), b.toString("base64")])];

let dir: string;
let data: string;
const file = (rel: string, text: string) => {
  const f = path.join(dir, rel);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, text);
  return f;
};

async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await importVerifiersCommand(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env });
  for (const s of SECRETS) assert.ok(!out.includes(s) && !err.includes(s), `a secret in the output:\n${out}${err}`);
  return { code, out, err };
}

async function verifiers(store: string, jid: string): Promise<StoredVerifier[]> {
  const s = new SqliteStore(store);
  try {
    return await s.verifiers(jid);
  } finally {
    s.close();
  }
}

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "mucmux-import-cli-"));
  data = path.join(dir, "prosody");
  file("prosody/localhost/accounts/alice.dat", account(alice));
  file("prosody/localhost/accounts/dave.dat", 'return { ["password"] = "plain-secret" };\n');
  file("prosody/example%2ecom/accounts/bob.dat", account(bob));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("mucmux import-verifiers: usage", () => {
  it("has its own --help, and mucmux --help mentions it", async () => {
    const r = await run(["--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: mucmux import-verifiers \(--prosody-data DIR \| --ejabberd-sqlite FILE \| --ejabberd-sql FILE\)/);
    assert.match(helpText(), /mucmux import-verifiers .*--prosody-data DIR/);
    assert.match(helpText(), /mucmux import-verifiers --help/);
  });

  it("exits 2 on usage errors, before touching a store", async () => {
    const store = path.join(dir, "never.sqlite");
    const cases: [string[], RegExp][] = [
      [[], /exactly one of --prosody-data, --ejabberd-sqlite, --ejabberd-sql/],
      [["--prosody-data", data, "--ejabberd-sql", data], /exactly one of/],
      [["--prosody-data"], /argument missing/],
      [["--prosody-data", data, "extra"], /positional argument/],
      [["--prosody-data", data, "--hots", "x"], /Unknown option '--hots'/],
      [["--prosody-data", path.join(dir, "nope")], /cannot read .*nope: ENOENT/],
      [["--prosody-data", path.join(data, "localhost/accounts/alice.dat")], /is not a directory/],
      [["--ejabberd-sqlite", data], /is not a file/],
      [["--prosody-data", data, "--ejabberd-sql-escapes", "standard"], /--ejabberd-sql-escapes goes with --ejabberd-sql/],
      [["--ejabberd-sql", path.join(data, "localhost/accounts/alice.dat"), "--ejabberd-sql-escapes", "mysql"], /auto, backslash or standard/],
      [["--prosody-data", data, "--host", "a@b"], /--host is a domain name/],
      [["--prosody-data", data, "--store", ":memory:"], /':memory:': an import there keeps nothing/],
      [["--prosody-data", data], /config: .*domains.*is required/], // no --store: the configuration must load
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, re, args.join(" "));
      assert.match(r.err, /see mucmux import-verifiers --help/);
    }
    const noHost = file("ej.sql", "INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('a', 'x', 'y', 'z', 1);");
    const r = await run(["--ejabberd-sql", noHost, "--store", store]);
    assert.equal(r.code, 2);
    assert.match(r.err, /do not name their host .*give --host/);
    assert.equal(existsSync(store), false);
  });
});

describe("mucmux import-verifiers: importing", () => {
  it("imports, counts per host, and writes imported verifiers", async () => {
    const store = path.join(dir, "s1", "store.sqlite");
    const r = await run(["--prosody-data", data, "--store", store]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "");
    assert.equal(r.out, [
      `importing SCRAM verifiers from Prosody data directory ${data} into ${store}`,
      "example.com: 1 imported, 0 skipped, 0 failed",
      "localhost: 1 imported, 1 skipped, 0 failed",
      "  skipped 1: plain password (internal_plain, or not yet hashed): no SCRAM verifier stored",
      "total: 2 imported, 1 skipped, 0 failed",
      "",
    ].join("\n"));
    const [a] = await verifiers(store, "alice@localhost");
    assert.ok(a);
    assert.deepEqual({ ...a, updatedAt: 0 }, {
      account: "alice@localhost", hash: "SHA-1", salt: Buffer.from(SALT), iterations: 10000, storedKey: alice.storedKey,
      serverKey: alice.serverKey, source: "imported", upstream: true, sealed: undefined, updatedAt: 0,
    });
    assert.deepEqual((await verifiers(store, "bob@example.com")).map((v) => v.hash), ["SHA-256"]);
    assert.deepEqual(await verifiers(store, "dave@localhost"), []);
  });

  it("keeps a learned verifier with the same keys, replaces a different one, removes stale imported hashes", async () => {
    const store = path.join(dir, "s2.sqlite");
    const s = new SqliteStore(store);
    const base = { salt: Buffer.from(SALT), iterations: 10000, upstream: true, updatedAt: 1 } as const;
    await s.saveVerifiers([{ ...base, account: "alice@localhost", hash: "SHA-1", ...alice, source: "learned", sealed: Buffer.from("sealed") }]);
    await s.saveVerifiers([{ ...base, account: "bob@example.com", hash: "SHA-256", storedKey: Buffer.alloc(32), serverKey: Buffer.alloc(32), source: "learned", sealed: Buffer.from("old") }]);
    await s.saveVerifiers([{ ...base, account: "bob@example.com", hash: "SHA-1", storedKey: Buffer.alloc(20), serverKey: Buffer.alloc(20), source: "imported", sealed: undefined }]);
    await s.saveVerifiers([{ ...base, account: "bob@example.com", hash: "SHA-512", storedKey: Buffer.alloc(64), serverKey: Buffer.alloc(64), source: "learned", sealed: Buffer.from("x") }]);
    s.close();
    assert.equal((await run(["--prosody-data", data, "--store", store])).code, 0);
    const [a] = await verifiers(store, "alice@localhost");
    assert.equal(a?.source, "learned");
    assert.deepEqual(a?.sealed, Buffer.from("sealed"));
    const b = (await verifiers(store, "bob@example.com")).sort((x, y) => x.hash.localeCompare(y.hash));
    assert.deepEqual(b.map((v) => [v.hash, v.source]), [["SHA-256", "imported"], ["SHA-512", "learned"]]);
    assert.ok(b[0]?.storedKey.equals(bob.storedKey) && b[0].sealed === undefined);
    // Again: nothing changes.
    assert.equal((await run(["--prosody-data", data, "--store", store])).code, 0);
    assert.deepEqual((await verifiers(store, "bob@example.com")).length, 2);
  });

  it("imports the good files and exits 1 when some failed, naming them on stderr", async () => {
    const broken = path.join(dir, "broken");
    file("broken/localhost/accounts/alice.dat", account(alice));
    file("broken/localhost/accounts/eve.dat", `return { ["stored_key"] = "${hex(alice.storedKey)}`);
    file("broken/localhost/accounts/zed.dat", account(alice).replace("10000", "1e999"));
    const store = path.join(dir, "s3.sqlite");
    const r = await run(["--prosody-data", broken, "--store", store, "--host", "localhost"]);
    assert.equal(r.code, 1);
    assert.match(r.out, /^localhost: 1 imported, 0 skipped, 2 failed$/m);
    assert.equal(r.err, [
      `failed: ${path.join(broken, "localhost/accounts/eve.dat")}:1:27: unterminated string`,
      `failed: ${path.join(broken, "localhost/accounts/zed.dat")}: iteration count is not an integer from 1 to 2147483647`,
      "",
    ].join("\n"));
    assert.equal((await verifiers(store, "alice@localhost")).length, 1);
  });

  it("writes the store of the configuration (--config, MUCMUX_STORE_PATH) when --store is not given", async () => {
    const store = path.join(dir, "configured.sqlite");
    const config = file("mucmux.yaml", `domains: [localhost]\nstore:\n  path: ${store}\n`);
    assert.equal((await run(["--prosody-data", data, "--config", config])).code, 0);
    assert.equal((await verifiers(store, "alice@localhost")).length, 1);
    const byEnv = path.join(dir, "env.sqlite");
    const r = await run(["--prosody-data", data, "--config", config], { MUCMUX_STORE_PATH: byEnv });
    assert.match(r.out, new RegExp(`into ${byEnv}\n`));
    assert.equal((await verifiers(byEnv, "alice@localhost")).length, 1);
  });

  it("exits 1 when the store cannot be opened", async () => {
    const r = await run(["--prosody-data", data, "--store", dir]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^mucmux import-verifiers: store /);
  });

  it("runs as `mucmux import-verifiers` from the command line", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "main.ts"), "import-verifiers", "--prosody-data", data,
      "--store", path.join(dir, "proc.sqlite")], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    assert.equal(code, 0, out);
    assert.match(out, /total: 2 imported, 1 skipped, 0 failed/);
    for (const s of SECRETS) assert.ok(!out.includes(s));
  });
});
