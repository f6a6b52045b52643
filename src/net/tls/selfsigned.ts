/**
 * A self-signed X.509 v3 certificate (RFC 5280) made in memory with node:crypto only, for running
 * without configured cert/key files (first start, tests). EC P-256 with ecdsa-with-SHA256.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { bitString, boolean, explicit, implicit, integer, octetString, oid, sequence, setOf, time, utf8String } from "./der.js";

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2", // RFC 5758 §3.2
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

// A DNS name as it may appear in a dNSName SAN (RFC 5280 §4.2.1.6), optionally with a leftmost wildcard.
const DNS_NAME = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface SelfSignedOptions {
  /** DNS names for subjectAltName; the first is also the subject and issuer CN. */
  readonly names: readonly string[];
  /** Validity from now; the certificate starts an hour in the past to tolerate clock skew. Default 365. */
  readonly days?: number;
}

export function generateSelfSigned(opts: SelfSignedOptions): { cert: string; key: string } {
  const { names, days = 365 } = opts;
  const [first] = names;
  if (first === undefined) throw new Error("self-signed certificate: at least one name is required");
  for (const name of names) {
    if (!DNS_NAME.test(name) || name.length > 253) throw new Error(`self-signed certificate: '${name}' is not a DNS name`);
  }
  if (!Number.isInteger(days) || days < 1) throw new Error(`self-signed certificate: days must be a positive integer (got ${days})`);

  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const now = Date.now();
  const algorithm = sequence(oid(OID.ecdsaWithSha256)); // RFC 5758 §3.2: parameters absent

  const tbs = sequence(
    explicit(0, integer(2)), // version v3
    integer(serialNumber()),
    algorithm,
    distinguishedName(first), // issuer = subject: self-signed
    sequence(time(new Date(now - 3600_000)), time(new Date(now + days * 86400_000))),
    distinguishedName(first),
    spki,
    explicit(3, sequence(...extensions(names, spki))),
  );
  const signature = sign("sha256", tbs, privateKey); // DER-encoded ECDSA-Sig-Value by default
  const der = sequence(tbs, algorithm, bitString(signature));

  return { cert: pem("CERTIFICATE", der), key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** RFC 5280 §4.1.2.2: positive, at most 20 octets, unpredictable. */
function serialNumber(): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive and without a leading zero octet
  return serial;
}

function distinguishedName(commonName: string): Buffer {
  return sequence(setOf(sequence(oid(OID.commonName), utf8String(commonName))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

function extensions(names: readonly string[], spki: Buffer): Buffer[] {
  return [
    // RFC 5280 §4.2.1.6: the names live in subjectAltName; dNSName is [2] IA5String.
    extension(OID.subjectAltName, false, sequence(...names.map((n) => implicit(2, Buffer.from(n, "ascii"))))),
    // CA:TRUE so the certificate can be its own trust anchor (tests pass it as `ca`).
    extension(OID.basicConstraints, true, sequence(boolean(true))),
    // digitalSignature (bit 0) and keyCertSign (bit 5): 0b1000_0100, the two trailing zero bits unused.
    extension(OID.keyUsage, true, bitString(Buffer.from([0x84]), 2)),
    extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth))),
    // RFC 7093 §2 method 4 (hash of the DER SubjectPublicKeyInfo), truncated to the customary 160 bits.
    extension(OID.subjectKeyIdentifier, false, octetString(createHash("sha256").update(spki).digest().subarray(0, 20))),
  ];
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
