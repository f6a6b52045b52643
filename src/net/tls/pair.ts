/**
 * A certificate chain and its private key turned into a SecureContext, with errors that name the
 * file at fault so that an operator knows which of the two to fix.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";

/**
 * TLS 1.2 suites: forward-secret AEAD only (no CBC, no RSA key exchange). TLS 1.3 suites are all AEAD
 * and are configured separately by OpenSSL. TLS 1.0/1.1 are refused by minVersion.
 */
export const AEAD_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export class TlsError extends Error {
  readonly code = "ERR_MUCMUX_TLS";
  constructor(message: string) {
    super(message);
    this.name = "TlsError";
  }
}

/** Where the PEM came from, for messages; "(self-signed)" when generated in memory. */
export interface PairSource {
  readonly cert: string;
  readonly key: string;
}

export interface Pair {
  readonly context: SecureContext;
  /** The first certificate of the chain: the one whose names and expiry matter. */
  readonly leaf: X509Certificate;
  readonly notAfter: Date;
}

/** Identifies file contents cheaply, so that an unchanged pair is never rebuilt or re-reported. */
export function hashPair(cert: Buffer | string, key: Buffer | string): string {
  const h = createHash("sha256");
  for (const part of [cert, key]) h.update(createHash("sha256").update(part).digest());
  return h.digest("hex");
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0];

/** Validates the pair and builds the context; throws TlsError naming the offending file. */
export function buildPair(cert: Buffer | string, key: Buffer | string, source: PairSource): Pair {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert); // parses the first PEM block: the leaf of a fullchain file
  } catch (err) {
    throw new TlsError(`tls: ${source.cert}: not a PEM certificate (${firstLine(err)})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsError(`tls: ${source.key}: not a usable unencrypted PEM private key (${firstLine(err)})`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsError(`tls: the private key in ${source.key} does not match the certificate in ${source.cert}`);
  }
  let context: SecureContext;
  try {
    // ALPN is chosen per socket by the listener (XEP-0368 'xmpp-client'), so it is not set here.
    context = createSecureContext({ cert, key, minVersion: "TLSv1.2", ciphers: AEAD_CIPHERS, honorCipherOrder: true });
  } catch (err) {
    throw new TlsError(`tls: cannot use ${source.cert} with ${source.key}: ${firstLine(err)}`);
  }
  const notAfter = new Date(leaf.validTo);
  if (Number.isNaN(notAfter.getTime())) throw new TlsError(`tls: ${source.cert}: unreadable notAfter '${leaf.validTo}'`);
  return { context, leaf, notAfter };
}
