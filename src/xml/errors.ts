// Stream-level errors raised by the XML layer. The condition names are the defined stream error
// conditions of RFC 6120 §4.9.3; the stream layer turns an XmlStreamError into <stream:error/>.

export type StreamErrorCondition =
  | "bad-format"
  | "bad-namespace-prefix"
  | "conflict"
  | "connection-timeout"
  | "host-gone"
  | "host-unknown"
  | "improper-addressing"
  | "internal-server-error"
  | "invalid-from"
  | "invalid-namespace"
  | "invalid-xml"
  | "not-authorized"
  | "not-well-formed"
  | "policy-violation"
  | "remote-connection-failed"
  | "reset"
  | "resource-constraint"
  | "restricted-xml"
  | "see-other-host"
  | "system-shutdown"
  | "undefined-condition"
  | "unsupported-encoding"
  | "unsupported-feature"
  | "unsupported-stanza-type"
  | "unsupported-version";

/** Application-specific condition element (RFC 6120 §4.9.4), e.g. `<stanza-too-big xmlns='urn:xmpp:errors'/>`. */
export interface AppCondition {
  name: string;
  xmlns: string;
}

export class XmlStreamError extends Error {
  constructor(
    readonly condition: StreamErrorCondition,
    message: string,
    readonly appCondition?: AppCondition,
  ) {
    super(message);
    this.name = "XmlStreamError";
  }
}

/** SPEC E1: the app condition sent with policy-violation when a stanza exceeds the byte cap. */
export const STANZA_TOO_BIG: AppCondition = { name: "stanza-too-big", xmlns: "urn:xmpp:errors" };
