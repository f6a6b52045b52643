// SCRAM (RFC 5802, RFC 7677) pieces both sides share: key derivation, the strict message grammar, and the
// server's proof check. mucmux is a SCRAM server toward clients (SPEC A10) and a SCRAM client upstream (SPEC A2).
import { createHash, createHmac, pbkdf2, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const pbkdf2Async = promisify(pbkdf2);

/** A SCRAM hash function mucmux speaks (SHA-512 as XEP-0438 and ejabberd name it). */
export type ScramHash = "SHA-1" | "SHA-256" | "SHA-512";
export const SCRAM_HASHES: readonly ScramHash[] = ["SHA-512", "SHA-256", "SHA-1"]; // strongest first

const NODE_NAME: Record<ScramHash, string> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512" };
const LENGTH: Record<ScramHash, number> = { "SHA-1": 20, "SHA-256": 32, "SHA-512": 64 };

/** A hostile or broken peer must not pin a CPU for minutes (a server's own counts are 4096–100000). */
export const MAX_ITERATIONS = 1_000_000;

/** `SCRAM-SHA-256-PLUS` → { hash: "SHA-256", plus: true }; undefined for anything else. */
export function parseMechanism(name: string): { hash: ScramHash; plus: boolean } | undefined {
  const m = /^SCRAM-(SHA-1|SHA-256|SHA-512)(-PLUS)?$/.exec(name);
  return m ? { hash: m[1] as ScramHash, plus: m[2] !== undefined } : undefined;
}

export const mechanismName = (hash: ScramHash, plus = false): string => `SCRAM-${hash}${plus ? "-PLUS" : ""}`;

export const hmac = (hash: ScramHash, key: Buffer, data: string | Buffer): Buffer =>
  createHmac(NODE_NAME[hash], key).update(data).digest();
export const digest = (hash: ScramHash, data: Buffer): Buffer => createHash(NODE_NAME[hash]).update(data).digest();

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

/**
 * Hi(Normalize(password), salt, i). Normalize is SASLprep (RFC 4013), approximated by NFKC as most servers do
 * (Prosody and ejabberd apply their own stringprep; the two agree on every printable password). On the libuv
 * pool: a burst of logins must not stall the event loop (SPEC E1).
 */
export function saltedPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(password.normalize("NFKC"), salt, iterations, LENGTH[hash], NODE_NAME[hash]);
}

export interface ScramKeys { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer }

export function keysOf(hash: ScramHash, salted: Buffer): ScramKeys {
  const clientKey = hmac(hash, salted, "Client Key");
  return { clientKey, storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, "Server Key") };
}

export const equalKeys = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

// ---- the message grammar (RFC 5802 §7) ------------------------------------------------------------------

export type ScramError = "malformed-request" | "incorrect-encoding" | "invalid-authzid" | "not-authorized" | "mechanism-too-weak" | "invalid-mechanism";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** printable ASCII except ',' (RFC 5802 `printable`). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const MAX_MESSAGE = 4096; // far above any honest message; bounds the work per login

/** A saslname (RFC 5802 §5.1): ',' and '=' only as =2C and =3D; any other '=' is malformed. */
export function decodeSaslName(s: string): string | undefined {
  if (s === "" || /=(?!2C|3D)/.test(s)) return undefined;
  return s.replace(/=2C/g, ",").replace(/=3D/g, "=");
}
export const encodeSaslName = (s: string): string => s.replace(/=/g, "=3D").replace(/,/g, "=2C");

/** The bytes of strict (padded, RFC 4648) base64 text; undefined for anything else. */
export const decodeBase64 = (text: string): Buffer | undefined => (BASE64.test(text) ? Buffer.from(text, "base64") : undefined);

/** The text of UTF-8 bytes; undefined when they are not UTF-8. */
export function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** The decoded text of an `<auth>`/`<response>` payload, or the SASL condition when it is not UTF-8 base64. */
export function decodePayload(b64text: string): { text: string } | { error: ScramError } {
  const text = b64text.trim();
  if (text === "" || text === "=") return { error: "malformed-request" };
  const bytes = decodeBase64(text);
  const decoded = bytes && utf8(bytes);
  return decoded === undefined ? { error: "incorrect-encoding" } : { text: decoded };
}

/** A username is an XMPP localpart (RFC 7622 §3.3): no JID separators, at most 1023 bytes. */
export const validUsername = (u: string): boolean => !/[@/\s"&'<>:]/.test(u) && Buffer.byteLength(u) <= 1023;

export interface ClientFirst {
  /** `n`: no channel binding; `y`: the client could bind but thinks the server cannot; a type name: -PLUS. */
  binding: "n" | "y" | { type: string };
  /** The gs2 header as sent (`n,,`, `p=tls-exporter,,` …): it comes back base64 in the final message's c=. */
  gs2Header: string;
  authzid: string | undefined;
  username: string;
  nonce: string;
  /** client-first-message-bare: part of AuthMessage. */
  bare: string;
}

/** Parse a client-first-message; every field checked, no extension accepted (RFC 5802 §5.1 'm'). */
export function parseClientFirst(msg: string): ClientFirst | ScramError {
  if (msg.length > MAX_MESSAGE) return "malformed-request";
  const m = /^(n|y|p=([A-Za-z0-9.-]+)),(a=[^,]*)?,(.*)$/s.exec(msg);
  if (!m) return "malformed-request";
  const [, flag, cbType, authzPart, bare] = m as unknown as [string, string, string | undefined, string | undefined, string];
  let authzid: string | undefined;
  if (authzPart !== undefined) {
    authzid = decodeSaslName(authzPart.slice(2));
    if (authzid === undefined) return "malformed-request";
  }
  const parts = bare.split(",");
  if (parts.length < 2 || !parts[0]!.startsWith("n=") || !parts[1]!.startsWith("r=")) return "malformed-request";
  if (parts.slice(2).some((p) => !/^[a-zA-Z]=/.test(p))) return "malformed-request"; // extensions: ignored, but well-formed
  const username = decodeSaslName(parts[0]!.slice(2));
  const nonce = parts[1]!.slice(2);
  if (username === undefined || !NONCE.test(nonce)) return "malformed-request";
  return {
    binding: flag === "n" || flag === "y" ? flag : { type: cbType as string },
    gs2Header: msg.slice(0, msg.length - bare.length),
    authzid,
    username,
    nonce,
    bare,
  };
}

export interface ClientFinal {
  /** The decoded c= attribute: the gs2 header followed by the channel binding data (if any). */
  binding: Buffer;
  nonce: string;
  proof: Buffer;
  /** client-final-message-without-proof: part of AuthMessage. */
  withoutProof: string;
}

export function parseClientFinal(msg: string): ClientFinal | ScramError {
  if (msg.length > MAX_MESSAGE) return "malformed-request";
  const at = msg.lastIndexOf(",p=");
  if (at < 0) return "malformed-request";
  const withoutProof = msg.slice(0, at);
  const proofText = msg.slice(at + 3);
  const parts = withoutProof.split(",");
  if (parts.length < 2 || !parts[0]!.startsWith("c=") || !parts[1]!.startsWith("r=")) return "malformed-request";
  if (parts.slice(2).some((p) => !/^[a-zA-Z]=/.test(p))) return "malformed-request";
  const c = parts[0]!.slice(2);
  const nonce = parts[1]!.slice(2);
  if (!BASE64.test(c) || c === "" || !BASE64.test(proofText) || proofText === "") return "malformed-request";
  if (!NONCE.test(nonce)) return "malformed-request";
  return { binding: Buffer.from(c, "base64"), nonce, proof: Buffer.from(proofText, "base64"), withoutProof };
}

/** What the server checks a client's proof against: the account's verifier for this hash. */
export interface Verifier {
  hash: ScramHash;
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export const serverFirstMessage = (nonce: string, v: Verifier): string =>
  `r=${nonce},s=${v.salt.toString("base64")},i=${v.iterations}`;

/**
 * The server's check (RFC 5802 §3): ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), accepted when
 * H(ClientKey) = StoredKey. Returns the ClientKey and the ServerSignature for the server-final message.
 */
export function checkProof(v: Verifier, authMessage: string, proof: Buffer): { clientKey: Buffer; serverSignature: Buffer } | undefined {
  if (proof.length !== v.storedKey.length) return undefined;
  const clientKey = xor(proof, hmac(v.hash, v.storedKey, authMessage));
  if (!equalKeys(digest(v.hash, clientKey), v.storedKey)) return undefined;
  return { clientKey, serverSignature: hmac(v.hash, v.serverKey, authMessage) };
}

/** Attributes of a server message (r=, s=, i=, v=, e=); a repeated or unnamed one makes it malformed. */
export function parseAttributes(msg: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const part of msg.split(",")) {
    if (part.length < 2 || part[1] !== "=" || out.has(part[0] as string)) return undefined;
    out.set(part[0] as string, part.slice(2));
  }
  return out;
}
