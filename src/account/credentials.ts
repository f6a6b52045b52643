// What an account logs in upstream with (SPEC A3: memory only, never logged, never written in clear).
import type { ScramHash } from "../sasl/scram.js";

export type Secret =
  /** From a PLAIN login, or opened from a sealed verifier at a SCRAM login (SPEC A11). */
  | { kind: "password"; password: string }
  /**
   * The ClientKey a SCRAM login proved against a verifier whose salt and iteration count are the upstream's own
   * (SPEC A12): it authenticates upstream with SCRAM of the same hash, and nothing else.
   */
  | { kind: "client-key"; hash: ScramHash; clientKey: Buffer; serverKey: Buffer; salt: Buffer; iterations: number };

export interface Credentials { username: string; secret: Secret }

export const passwordCredentials = (username: string, password: string): Credentials => ({ username, secret: { kind: "password", password } });
