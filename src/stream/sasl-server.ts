// SASL termination toward clients (SPEC A2): mucmux offers PLAIN (over TLS only) and maps the upstream
// outcome to RFC 6120 §6.5 conditions.
import { decodePayload, validUsername } from "../sasl/scram.js";
import { escapeText } from "../xml/serialize.js";

export type SaslCondition =
  | "aborted" | "account-disabled" | "credentials-expired" | "encryption-required" | "incorrect-encoding"
  | "invalid-authzid" | "invalid-mechanism" | "malformed-request" | "mechanism-too-weak" | "not-authorized"
  | "temporary-auth-failure";

export interface PlainCredentials { authzid: string; username: string; password: string }

/** RFC 4616 message from the base64 text of `<auth>`/`<response>`; a SASL condition when it is unusable. */
export function parsePlain(b64text: string): PlainCredentials | SaslCondition {
  const decoded = decodePayload(b64text);
  if ("error" in decoded) return decoded.error;
  const parts = decoded.text.split("\0");
  if (parts.length !== 3) return "malformed-request";
  const [authzid, username, password] = parts as [string, string, string];
  if (username === "" || password === "") return "not-authorized";
  if (!validUsername(username)) return "not-authorized";
  return { authzid, username, password };
}

/** Is the authzid acceptable for this username? Only empty or the account's own bare JID (no proxy auth). */
export function authzidAllowed(authzid: string, username: string, domain: string): boolean {
  return authzid === "" || authzid.toLowerCase() === `${username}@${domain}`.toLowerCase();
}

/** A relayed exchange (SPEC A13) is the client's own: what the server says about its messages passes too. */
const RELAYED = new Set(["malformed-request", "incorrect-encoding", "invalid-mechanism", "mechanism-too-weak", "encryption-required", "temporary-auth-failure"]);
const PASS_THROUGH = new Set(["not-authorized", "account-disabled", "credentials-expired", "invalid-authzid", "aborted"]);

/**
 * Map the upstream failure to what the client should see. Conditions about the client's credentials pass
 * through; conditions about the mechanism mucmux chose upstream are mucmux's problem, not the client's,
 * so the client gets temporary-auth-failure, except in a relayed exchange.
 */
export function mapUpstreamFailure(condition: string, relayed = false): SaslCondition {
  if (PASS_THROUGH.has(condition) || (relayed && RELAYED.has(condition))) return condition as SaslCondition;
  return "temporary-auth-failure";
}

/** SASL1's `<failure/>`, or SASL2's (XEP-0388: the condition keeps the SASL1 namespace). */
export function saslFailureXml(condition: SaslCondition, text?: string, sasl2 = false): string {
  const t = text ? `<text xml:lang='en'>${escapeText(text)}</text>` : "";
  return sasl2
    ? `<failure xmlns='urn:xmpp:sasl:2'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>${t}</failure>`
    : `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><${condition}/>${t}</failure>`;
}
