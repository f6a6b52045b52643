// SASL client mechanisms mucmux uses toward the upstream server (SPEC A2): SCRAM-SHA-512, -256, -1 (RFC 5802 /
// RFC 7677, no channel binding: "n,,") with the password or with a ClientKey (SPEC A12), and PLAIN (RFC 4616)
// only over TLS or loopback. A relayed client exchange (SPEC A13) is an UpstreamAuth of its own (link-auth.ts).
import { randomBytes } from "node:crypto";
import type { Credentials } from "../account/credentials.js";
import {
  SCRAM_HASHES, MAX_ITERATIONS, mechanismName, parseMechanism, parseAttributes, encodeSaslName, equalKeys, hmac, digest,
  xor, keysOf, saltedPassword, type ScramHash,
} from "../sasl/scram.js";
import type { UpstreamSalt } from "../sasl/verifiers.js";

/** One mechanism exchange: initial response, then one step per challenge; `verify` checks the success data. */
export interface SaslClient {
  initial(): string;
  step(challenge: string): Promise<string>;
  verify(successData: string): boolean;
}

/** How a leg authenticates upstream: which of the offered mechanisms, and its exchange. */
export interface UpstreamAuth {
  readonly username: string;
  /** Only learn what the upstream offers (SPEC A10), then close: no authentication. */
  readonly probeOnly?: boolean;
  /** A client's own exchange (SPEC A13): the server's verdict is about the client's messages. */
  readonly relayed?: boolean;
  choose(offered: readonly string[], plainAllowed: boolean): string | undefined;
  start(mechanism: string): SaslClient;
}


/** The upstream's salt or iteration count differs from the verifier's: the password changed there (SPEC A11). */
export class StaleKey extends Error {}

/** Authentication with an account's credentials; `learned()` tells what a SCRAM password login saw (SPEC A11). */
export interface CredentialAuth extends UpstreamAuth {
  learned(): UpstreamSalt | undefined;
}

export function credentialAuth(creds: Credentials, nonce?: string): CredentialAuth {
  let learned: UpstreamSalt | undefined;
  const secret = creds.secret;
  return {
    username: creds.username,
    choose(offered, plainAllowed) {
      if (secret.kind === "client-key") {
        const m = mechanismName(secret.hash);
        return offered.includes(m) ? m : undefined;
      }
      for (const h of SCRAM_HASHES) if (offered.includes(mechanismName(h))) return mechanismName(h);
      return plainAllowed && offered.includes("PLAIN") ? "PLAIN" : undefined;
    },
    start(mechanism) {
      const scram = parseMechanism(mechanism);
      if (!scram || scram.plus) {
        if (secret.kind !== "password") throw new Error(`${mechanism} needs the password`);
        return { initial: () => `\0${creds.username}\0${secret.password}`, step: async () => { throw new Error("PLAIN has no challenges"); }, verify: () => true };
      }
      return scramClient(scram.hash, creds, nonce ?? randomBytes(18).toString("base64"), (l) => { learned = l; });
    },
    learned: () => learned,
  };
}

function scramClient(hash: ScramHash, creds: Credentials, clientNonce: string, learn: (l: UpstreamSalt) => void): SaslClient {
  const clientFirstBare = `n=${encodeSaslName(creds.username)},r=${clientNonce}`;
  let expectedServerSignature: Buffer | undefined;
  const secret = creds.secret;
  return {
    initial: () => `n,,${clientFirstBare}`,
    async step(serverFirst: string): Promise<string> {
      const a = parseAttributes(serverFirst);
      const nonce = a?.get("r");
      const saltText = a?.get("s");
      const iterations = Number(a?.get("i"));
      if (!a || a.has("m") || !nonce || !nonce.startsWith(clientNonce) || nonce === clientNonce || !saltText) {
        throw new Error("bad SCRAM server-first");
      }
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) throw new Error("bad SCRAM iteration count");
      const salt = Buffer.from(saltText, "base64");
      let clientKey: Buffer;
      let serverKey: Buffer;
      if (secret.kind === "client-key") {
        if (secret.hash !== hash) throw new Error("ClientKey of another hash");
        if (!equalKeys(salt, secret.salt) || iterations !== secret.iterations) throw new StaleKey("the upstream's salt changed");
        ({ clientKey, serverKey } = secret);
      } else {
        const salted = await saltedPassword(hash, secret.password, salt, iterations);
        ({ clientKey, serverKey } = keysOf(hash, salted));
        learn({ hash, salt, iterations, salted });
      }
      const finalNoProof = `c=biws,r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
      const proof = xor(clientKey, hmac(hash, digest(hash, clientKey), authMessage));
      expectedServerSignature = hmac(hash, serverKey, authMessage);
      return `${finalNoProof},p=${proof.toString("base64")}`;
    },
    verify(successData: string): boolean {
      const v = parseAttributes(successData)?.get("v");
      if (!v || !expectedServerSignature) return false;
      return equalKeys(Buffer.from(v, "base64"), expectedServerSignature);
    },
  };
}

/** Learns the upstream's mechanisms and authenticates nothing (SPEC A10). */
export const PROBE: UpstreamAuth = {
  username: "",
  probeOnly: true,
  choose: () => undefined,
  start: () => { throw new Error("a probe does not authenticate"); },
};
