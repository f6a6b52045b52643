// SASL client mechanisms mucmux uses toward the upstream server (SPEC A2): SCRAM-SHA-256, SCRAM-SHA-1
// (RFC 5802 / RFC 7677, no channel binding: "n,,"), and PLAIN (RFC 4616) only over TLS or loopback.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const pbkdf2Async = promisify(pbkdf2);
const MAX_ITERATIONS = 1_000_000; // a hostile or broken upstream must not pin a CPU for minutes

export type UpstreamMechanism = "SCRAM-SHA-256" | "SCRAM-SHA-1" | "PLAIN";

export function chooseMechanism(offered: string[], plainAllowed: boolean): UpstreamMechanism | undefined {
  for (const m of ["SCRAM-SHA-256", "SCRAM-SHA-1"] as const) if (offered.includes(m)) return m;
  if (plainAllowed && offered.includes("PLAIN")) return "PLAIN";
  return undefined;
}

/** One mechanism exchange: initial response, then one step per challenge; `verify` checks the success data. */
export interface SaslClient {
  initial(): string;
  step(challenge: string): Promise<string>;
  verify(successData: string): boolean;
}

export function createSaslClient(mech: UpstreamMechanism, username: string, password: string, nonce?: string): SaslClient {
  if (mech === "PLAIN") {
    return {
      initial: () => `\0${username}\0${password}`,
      step: async () => { throw new Error("PLAIN has no challenges"); },
      verify: () => true,
    };
  }
  return scram(mech === "SCRAM-SHA-256" ? "sha256" : "sha1", username, password, nonce ?? randomBytes(18).toString("base64"));
}

// RFC 5802 §5.1: ',' and '=' in the username are escaped.
const saslName = (s: string) => s.replace(/=/g, "=3D").replace(/,/g, "=2C");

function parseAttrs(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0] as string, part.slice(2));
  }
  return out;
}

function scram(hash: "sha1" | "sha256", username: string, password: string, clientNonce: string): SaslClient {
  const clientFirstBare = `n=${saslName(username)},r=${clientNonce}`;
  let expectedServerSignature: Buffer | undefined;
  const hmac = (key: Buffer, data: string) => createHmac(hash, key).update(data).digest();
  return {
    initial: () => `n,,${clientFirstBare}`,
    async step(serverFirst: string): Promise<string> {
      const a = parseAttrs(serverFirst);
      const nonce = a.get("r");
      const salt = a.get("s");
      const iterations = Number(a.get("i"));
      if (a.has("m") || !nonce || !nonce.startsWith(clientNonce) || !salt) throw new Error("bad SCRAM server-first");
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
        throw new Error("bad SCRAM iteration count");
      }
      const len = hash === "sha1" ? 20 : 32;
      // pbkdf2 runs on the libuv pool: a burst of logins must not stall the event loop (SPEC E1).
      const salted = await pbkdf2Async(password.normalize("NFKC"), Buffer.from(salt, "base64"), iterations, len, hash);
      const clientKey = hmac(salted, "Client Key");
      const storedKey = createHash(hash).update(clientKey).digest();
      const finalNoProof = `c=biws,r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.alloc(clientKey.length);
      for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
      expectedServerSignature = hmac(hmac(salted, "Server Key"), authMessage);
      return `${finalNoProof},p=${proof.toString("base64")}`;
    },
    verify(successData: string): boolean {
      const v = parseAttrs(successData).get("v");
      if (!v || !expectedServerSignature) return false;
      const got = Buffer.from(v, "base64");
      return got.length === expectedServerSignature.length && timingSafeEqual(got, expectedServerSignature);
    },
  };
}
