// RFC 5802 §3 key derivation, written out for tests that check an imported verifier against the password it
// was made from (independent of src/): SaltedPassword = Hi(password, salt, i) = PBKDF2-HMAC-H, ClientKey =
// HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key").
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";

export type TestScramHash = "SHA-1" | "SHA-256" | "SHA-512";

const ALGO: Record<TestScramHash, "sha1" | "sha256" | "sha512"> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512" };

export function deriveScramKeys(hash: TestScramHash, password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  const h = ALGO[hash];
  // RFC 5802 normalizes the password with SASLprep; the test passwords are ASCII, which it leaves alone.
  const salted = pbkdf2Sync(Buffer.from(password, "utf8"), salt, iterations, createHash(h).digest().length, h);
  const clientKey = createHmac(h, salted).update("Client Key").digest();
  return { storedKey: createHash(h).update(clientKey).digest(), serverKey: createHmac(h, salted).update("Server Key").digest() };
}
