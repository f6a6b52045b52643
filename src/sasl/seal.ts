// AES-256-GCM blobs for secrets mucmux stores only in sealed form (SPEC A11, A15): version byte, 12-byte IV,
// 16-byte tag, ciphertext. The key is derived from what a login proves and the store never holds.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const VERSION = 1;

/** HKDF-SHA-256 of `ikm` with `salt` and `info`: a 256-bit sealing key. */
export const sealingKey = (ikm: Buffer, salt: Buffer, info: string): Buffer => Buffer.from(hkdfSync("sha256", ikm, salt, info, 32));

export function sealBlob(key: Buffer, aad: Buffer, plain: string): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv).setAAD(aad);
  const body = Buffer.concat([c.update(plain, "utf8"), c.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, c.getAuthTag(), body]);
}

/** The plaintext, or undefined for another key, another `aad`, or a damaged blob. */
export function openBlob(key: Buffer, aad: Buffer, blob: Buffer): string | undefined {
  if (blob.length < 29 || blob[0] !== VERSION) return undefined;
  try {
    const d = createDecipheriv("aes-256-gcm", key, blob.subarray(1, 13)).setAAD(aad);
    d.setAuthTag(blob.subarray(13, 29));
    return Buffer.concat([d.update(blob.subarray(29)), d.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}
