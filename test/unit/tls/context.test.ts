// TlsMaterial: start-up checks, self-signed fallback, and reload without disturbing live sessions.
import { afterEach, beforeEach, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { createTlsMaterial, generateSelfSigned, TlsError, type TlsLogger, type TlsMaterial, type TlsMaterialOptions } from "../../../src/net/tls/index.js";
import {
  echo, fingerprint, perSocketEchoServer, recordingLog, reloadRecorder, servedFingerprint, sleep, sniEchoServer, tlsClient,
  type EchoServer,
} from "./helpers.js";

const NAMES = ["example.test", "chat.example.test"];
const pairA = generateSelfSigned({ names: NAMES, days: 10 });
const pairB = generateSelfSigned({ names: NAMES, days: 20 });

let dir: string;
const cleanups: (() => unknown)[] = [];
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "mucmux-tls-")); });
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

function writePair(pair: { cert: string; key: string }, at = dir): { cert: string; key: string } {
  const files = { cert: join(at, "fullchain.pem"), key: join(at, "privkey.pem") };
  writeFileSync(files.key, pair.key);
  writeFileSync(files.cert, pair.cert);
  return files;
}

type Extra = Partial<Omit<TlsMaterialOptions, "config" | "log">> & { reloadSeconds?: number; log?: TlsLogger };

async function material(files: { cert?: string; key?: string }, extra: Extra = {}): Promise<TlsMaterial> {
  const { reloadSeconds = 3600, log = recordingLog().log, ...rest } = extra;
  const m = await createTlsMaterial({ config: { ...files, reloadSeconds, names: NAMES }, log, debounceMs: 20, ...rest });
  cleanups.push(() => m.close());
  return m;
}

async function server(kind: typeof sniEchoServer, m: TlsMaterial): Promise<EchoServer> {
  const s = await kind(() => m.current());
  cleanups.push(() => s.close());
  return s;
}

/**
 * A client that trusts only the certificate it expects to be served. (OpenSSL does not reliably pick
 * between two trusted self-signed certificates with the same subject, so both can't be trusted at once.)
 */
async function client(port: number, expected: { cert: string }): Promise<ReturnType<typeof tlsClient>> {
  const socket = await tlsClient(port, expected.cert, "chat.example.test");
  cleanups.push(() => socket.destroy());
  return socket;
}

describe("start-up", () => {
  it("without files, serves a self-signed certificate for the domains and warns", async () => {
    const { log, entries } = recordingLog();
    const m = await material({}, { log });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.level, "warn");
    assert.match(entries[0]?.msg ?? "", /self-signed/);
    assert.equal(m.certificate().subjectAltName, "DNS:example.test, DNS:chat.example.test");
    assert.ok(Math.abs(m.certExpiry().getTime() - (Date.now() + 365 * 86400_000)) < 5000);
    const s = await server(sniEchoServer, m);
    const socket = await tlsClient(s.port, m.certificate().toString(), "example.test");
    cleanups.push(() => socket.destroy());
    assert.equal(await echo(socket, "hi"), "hi");
  });

  it("loads configured files and reports the leaf's notAfter", async () => {
    const { log, entries } = recordingLog();
    const chain = writePair({ cert: pairA.cert + pairB.cert, key: pairA.key }); // fullchain: leaf first
    const m = await material(chain, { log });
    assert.deepEqual(entries, []);
    assert.equal(m.certExpiry().getTime(), Date.parse(m.certificate().validTo));
    assert.equal(m.certificate().fingerprint256, fingerprint(pairA.cert));
  });

  it("fails with a message naming the file", async () => {
    const files = writePair(pairA);
    const missing = join(dir, "missing.pem");
    await assert.rejects(material({ ...files, cert: missing }), (err: unknown) =>
      err instanceof TlsError && err.message.startsWith(`tls: cannot read certificate file ${missing}: ENOENT`));
    writeFileSync(join(dir, "garbage.pem"), "not a certificate");
    await assert.rejects(material({ ...files, cert: join(dir, "garbage.pem") }), /garbage\.pem: not a PEM certificate/);
    await assert.rejects(material({ ...files, key: join(dir, "garbage.pem") }), /garbage\.pem: not a usable unencrypted PEM private key/);
    await assert.rejects(material({ cert: files.cert }), /tls\.cert and tls\.key must be set together/);
    writeFileSync(join(dir, "other-key.pem"), pairB.key);
    await assert.rejects(material({ ...files, key: join(dir, "other-key.pem") }),
      new RegExp(`the private key in ${join(dir, "other-key.pem")} does not match the certificate in ${files.cert}`));
  });

  it("warns when the certificate does not name a domain", async () => {
    const { log, entries } = recordingLog();
    await material(writePair(generateSelfSigned({ names: ["example.test"] })), { log });
    assert.deepEqual(entries.map((e) => [e.level, (e.obj as { uncovered?: string[] }).uncovered]), [["warn", ["chat.example.test"]]]);
  });

  it("accepts a pino logger", async () => {
    const log: TlsLogger = pino({ level: "silent" });
    await material({}, { log });
  });
});

describe("reload", () => {
  for (const kind of [sniEchoServer, perSocketEchoServer]) {
    it(`serves a rewritten pair to new connections and keeps established ones (${kind.name})`, async () => {
      const reloads = reloadRecorder();
      const { log, entries } = recordingLog();
      const files = writePair(pairA);
      const m = await material(files, { onReload: reloads.onReload, log });
      const s = await server(kind, m);
      const before = await client(s.port, pairA);
      assert.equal(servedFingerprint(before), fingerprint(pairA.cert));

      const next = reloads.next();
      writePair(pairB);
      assert.equal(await next, "success");
      assert.equal(m.certExpiry().getTime(), Date.parse(new X509Certificate(pairB.cert).validTo));
      assert.ok(entries.some((e) => e.level === "info" && /reloaded/.test(e.msg ?? "")));

      const after = await client(s.port, pairB);
      assert.equal(servedFingerprint(after), fingerprint(pairB.cert));
      // The session negotiated with the old certificate carries on over the same socket.
      assert.equal(await echo(before, "still here"), "still here");
      assert.equal(before.authorized, true);
      assert.deepEqual(reloads.results, ["success"]);
    });
  }

  it("keeps the old pair when the new one is invalid, then recovers", async () => {
    const reloads = reloadRecorder();
    const { log, entries } = recordingLog();
    const files = writePair(pairA);
    const m = await material(files, { onReload: reloads.onReload, log });
    const s = await server(sniEchoServer, m);
    const expiry = m.certExpiry();

    const failed = reloads.next();
    writeFileSync(files.cert, pairB.cert); // new certificate, old key
    assert.equal(await failed, "failure");
    assert.ok(entries.some((e) => e.level === "error" && /invalid; keeping the current/.test(e.msg ?? "")));
    assert.equal(servedFingerprint(await client(s.port, pairA)), fingerprint(pairA.cert));
    assert.equal(m.certExpiry(), expiry);
    assert.equal(await m.reload(), "unchanged"); // the same bad files are reported once

    const recovered = reloads.next();
    writeFileSync(files.key, pairB.key);
    assert.equal(await recovered, "success");
    assert.equal(servedFingerprint(await client(s.port, pairB)), fingerprint(pairB.cert));
  });

  it("detects a Kubernetes secret update (..data symlink swapped by rename)", async () => {
    // The kubelet's AtomicWriter layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    const version = (name: string, pair: { cert: string; key: string }) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "tls.crt"), pair.cert);
      writeFileSync(join(dir, name, "tls.key"), pair.key);
    };
    version("..2024_01_01_00_00_00.1", pairA);
    symlinkSync("..2024_01_01_00_00_00.1", join(dir, "..data"));
    symlinkSync("..data/tls.crt", join(dir, "tls.crt"));
    symlinkSync("..data/tls.key", join(dir, "tls.key"));

    const reloads = reloadRecorder();
    const m = await material({ cert: join(dir, "tls.crt"), key: join(dir, "tls.key") }, { onReload: reloads.onReload });
    const s = await server(sniEchoServer, m);
    const before = await client(s.port, pairA);
    assert.equal(servedFingerprint(before), fingerprint(pairA.cert));

    const next = reloads.next();
    version("..2024_02_01_00_00_00.2", pairB);
    symlinkSync("..2024_02_01_00_00_00.2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    rmSync(join(dir, "..2024_01_01_00_00_00.1"), { recursive: true });
    assert.equal(await next, "success");
    assert.equal(servedFingerprint(await client(s.port, pairB)), fingerprint(pairB.cert));
    assert.equal(await echo(before, "ok"), "ok");
  });

  it("polls when filesystem events are not available", async () => {
    const reloads = reloadRecorder();
    const files = writePair(pairA);
    const m = await material(files, { onReload: reloads.onReload, watch: false, reloadSeconds: 0.05 });
    const next = reloads.waitFor("success");
    writePair(pairB);
    await next;
    assert.equal(m.certificate().fingerprint256, fingerprint(pairB.cert));
  });

  it("reports unreadable files once and keeps serving", async () => {
    const reloads = reloadRecorder();
    const files = writePair(pairA);
    const m = await material(files, { onReload: reloads.onReload });
    unlinkSync(files.key);
    assert.equal(await m.reload(), "failure");
    assert.equal(await m.reload(), "unchanged");
    assert.equal(m.certificate().fingerprint256, fingerprint(pairA.cert));
    writeFileSync(files.key, pairA.key);
    assert.equal(await m.reload(), "unchanged"); // same contents as before: nothing to do
  });

  it("stops watching after close()", async () => {
    const reloads = reloadRecorder();
    const files = writePair(pairA);
    const m = await material(files, { onReload: reloads.onReload, reloadSeconds: 0.05 });
    m.close();
    writePair(pairB);
    await sleep(300);
    assert.deepEqual(reloads.results, []);
    assert.equal(await m.reload(), "unchanged");
    assert.equal(m.certificate().fingerprint256, fingerprint(pairA.cert));
  });
});
