// The certificates of the replicas' internal mutual-TLS link in the cluster tests: a test CA made with openssl and
// one leaf certificate and key per replica, signed by it (EC P-256, SAN IP:127.0.0.1 and DNS:localhost, serverAuth
// and clientAuth). Cached under test/.tmp/cluster-certs like test/support/certs.ts caches the server certificate:
// made again when a file is missing or expires within a day; a directory lock keeps concurrent runs apart.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { TEST_TMP } from "./certs.js";

export const CLUSTER_CERT_DIR = path.join(TEST_TMP, "cluster-certs");

export interface ReplicaCertificate {
  certFile: string;
  keyFile: string;
}

export interface ClusterCertificates {
  /** The CA every replica trusts (cluster.ca). */
  caFile: string;
  /** One per replica, in order (cluster.cert, cluster.key). */
  replicas: ReplicaCertificate[];
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function valid(certFile: string, issuer?: X509Certificate): X509Certificate | undefined {
  try {
    const x = new X509Certificate(fs.readFileSync(certFile));
    if (Date.parse(x.validTo) - Date.now() <= 86_400_000) return undefined;
    if (issuer && !x.verify(issuer.publicKey)) return undefined;
    return x;
  } catch {
    return undefined;
  }
}

const openssl = (args: string[]) => void execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });

/** A CA and `count` replica certificates signed by it (made when missing or expiring). */
export function clusterCertificates(count = 3): ClusterCertificates {
  const dir = CLUSTER_CERT_DIR;
  fs.mkdirSync(dir, { recursive: true });
  const caFile = path.join(dir, "ca.pem");
  const caKey = path.join(dir, "ca.key");
  const replicas = Array.from({ length: count }, (_, i) => ({
    certFile: path.join(dir, `replica-${i + 1}.pem`),
    keyFile: path.join(dir, `replica-${i + 1}.key`),
  }));
  const usable = () => {
    const ca = fs.existsSync(caKey) ? valid(caFile) : undefined;
    return !!ca && replicas.every((r) => fs.existsSync(r.keyFile) && !!valid(r.certFile, ca));
  };
  const lock = path.join(dir, ".lock");
  const deadline = Date.now() + 60_000;
  while (!usable()) {
    try {
      fs.mkdirSync(lock); // atomic: one writer at a time across concurrent runs
    } catch {
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`clusterCertificates: ${lock} held for too long`);
      sleepSync(100);
      continue;
    }
    try {
      const tmp = (f: string) => `${f}.${process.pid}.tmp`;
      let ca = fs.existsSync(caKey) ? valid(caFile) : undefined;
      if (!ca) {
        openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
          "-subj", "/CN=mucmux test cluster CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", tmp(caKey), "-out", tmp(caFile)]);
        fs.renameSync(tmp(caKey), caKey);
        fs.renameSync(tmp(caFile), caFile);
        ca = valid(caFile);
      }
      const ext = path.join(dir, `leaf.${process.pid}.ext`);
      fs.writeFileSync(ext, [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth,clientAuth",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ].join("\n") + "\n");
      try {
        replicas.forEach((r, i) => {
          if (fs.existsSync(r.keyFile) && valid(r.certFile, ca)) return;
          const csr = path.join(dir, `replica-${i + 1}.${process.pid}.csr`);
          openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", `/CN=mucmux test replica ${i + 1}`, "-keyout", tmp(r.keyFile), "-out", csr]);
          openssl(["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-days", "30",
            "-sha256", "-extfile", ext, "-out", tmp(r.certFile)]);
          fs.rmSync(csr, { force: true });
          fs.chmodSync(tmp(r.keyFile), 0o600);
          fs.renameSync(tmp(r.keyFile), r.keyFile);
          fs.renameSync(tmp(r.certFile), r.certFile);
        });
      } finally {
        fs.rmSync(ext, { force: true });
      }
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  return { caFile, replicas };
}
