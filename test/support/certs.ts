// One self-signed EC P-256 test certificate per checkout, shared by every server and client of a run.
// `openssl req -x509` makes it CA:TRUE, so it is its own trust anchor: scripts/run-tests.mjs creates it
// (same logic, duplicated there) before starting node and points NODE_EXTRA_CA_CERTS at certFile.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const CERT_NAMES = ["localhost", "example.test", "conference.localhost"] as const;
const SAN = [...CERT_NAMES.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");

export const TEST_TMP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", ".tmp");
export const CERT_DIR = path.join(TEST_TMP, "certs");

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

function usable(certFile: string, keyFile: string): boolean {
  try {
    if (!fs.existsSync(keyFile)) return false;
    const x = new X509Certificate(fs.readFileSync(certFile));
    const names = x.subjectAltName ?? "";
    return Date.parse(x.validTo) - Date.now() > 86_400_000 && CERT_NAMES.every((n) => names.includes(`DNS:${n}`));
  } catch {
    return false;
  }
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

let cached: TestCertificate | undefined;

/** Creates (when missing, expiring within a day, or lacking a name) and returns the run's test certificate. */
export function testCertificate(): TestCertificate {
  if (cached) return cached;
  const certFile = path.join(CERT_DIR, "cert.pem");
  const keyFile = path.join(CERT_DIR, "key.pem");
  fs.mkdirSync(CERT_DIR, { recursive: true });
  const lock = path.join(CERT_DIR, ".lock");
  const deadline = Date.now() + 30_000;
  while (!usable(certFile, keyFile)) {
    try {
      fs.mkdirSync(lock); // atomic: one writer at a time across concurrent runs
    } catch {
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`testCertificate: ${lock} held for too long`);
      sleepSync(100);
      continue;
    }
    try {
      const tmpKey = `${keyFile}.${process.pid}.tmp`;
      const tmpCert = `${certFile}.${process.pid}.tmp`;
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
        "-subj", "/CN=localhost", "-addext", `subjectAltName=${SAN}`, "-keyout", tmpKey, "-out", tmpCert,
      ], { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
      fs.chmodSync(tmpKey, 0o644); // throwaway key; servers running as other users (ejabberd) read copies
      fs.renameSync(tmpKey, keyFile);
      fs.renameSync(tmpCert, certFile);
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  cached = { certFile, keyFile, cert: fs.readFileSync(certFile, "utf8"), key: fs.readFileSync(keyFile, "utf8") };
  return cached;
}
