// Channel binding data of a client's TLS connection, server side, for SCRAM-*-PLUS (SPEC A14). Two types,
// advertised with XEP-0440; tls-unique is not offered (not defined for TLS 1.3, RFC 9266 §3).
//
// tls-exporter (RFC 9266 §2): 32 bytes of keying material exported with the label
// "EXPORTER-Channel-Binding" and an *empty* context. Offered on TLS 1.3 only. RFC 9266 §2 defines it only
// when the handshake gives unique master secrets: always on TLS 1.3, on TLS 1.2 only with the extended
// master secret (RFC 7627), and never while renegotiation is enabled. Node does not tell whether EMS was
// negotiated (OpenSSL's SSL_get_extms_support is not exposed), and a TLS 1.2 server socket accepts client
// renegotiations unless disableRenegotiation() was called; so on TLS 1.2 the type is not offered (its data
// is undefined) and TLS 1.2 clients use tls-server-end-point.
// The context: RFC 5705 §4 (TLS 1.2) hashes "no context" and "empty context" differently, and Node passes
// a context to OpenSSL only when one is given; RFC 8446 §7.5 (TLS 1.3) makes them equal. The empty Buffer
// below is what RFC 9266 asks for in both versions (test/unit/sasl/channel-binding.test.ts compares it
// with `openssl s_client -keymatexport`, which passes no context, on TLS 1.3).
//
// tls-server-end-point (RFC 5929 §4.1): the hash of the certificate this server presented on the
// connection (DER), with the hash function of the certificate's own signature algorithm; MD5 and SHA-1
// become SHA-256. A signature algorithm that uses no hash function or several (Ed25519, Ed448) leaves it
// undefined ("undefined at this time", RFC 5929 §4.1), so it is not offered with such a certificate.
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { childrenOf, DerError, readOid, readTlv, type Tlv } from "../net/tls/der-reader.js";

export type ChannelBindingType = "tls-exporter" | "tls-server-end-point";

/** In the order they are advertised (XEP-0440 lists; the client picks). */
export const CHANNEL_BINDING_TYPES: readonly ChannelBindingType[] = ["tls-exporter", "tls-server-end-point"];

export const EXPORTER_LABEL = "EXPORTER-Channel-Binding";
const EXPORTER_LENGTH = 32;
const EMPTY_CONTEXT = Buffer.alloc(0);

/** The channel binding data of `type` on this connection, or undefined when the type is not defined here. */
export function channelBindingData(socket: TLSSocket, type: ChannelBindingType): Buffer | undefined {
  if (socket.destroyed || !socket.encrypted) return undefined;
  if (type === "tls-exporter") {
    if (socket.getProtocol() !== "TLSv1.3") return undefined;
    try {
      return socket.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, EMPTY_CONTEXT);
    } catch {
      return undefined; // handshake not finished (ERR_TLS_INVALID_STATE)
    }
  }
  const cert = socket.getCertificate(); // the one served on this connection (after SNI); {} when none
  const raw = cert && "raw" in cert ? cert.raw : undefined;
  return raw && raw.length > 0 ? tlsServerEndPoint(raw) : undefined;
}

/** The types whose data is defined on this connection, in advertising order. */
export function channelBindingTypes(socket: TLSSocket): ChannelBindingType[] {
  return CHANNEL_BINDING_TYPES.filter((t) => channelBindingData(socket, t) !== undefined);
}

/** RFC 5929 §4.1 over a DER certificate; undefined for an unreadable certificate or no single hash. */
export function tlsServerEndPoint(certDer: Buffer): Buffer | undefined {
  const hash = endPointHash(certDer);
  return hash === undefined ? undefined : createHash(hash).update(certDer).digest();
}

export type EndPointHash = "sha224" | "sha256" | "sha384" | "sha512" | "sha3-224" | "sha3-256" | "sha3-384" | "sha3-512";
type SignatureHash = EndPointHash | "md5" | "sha1";

// signatureAlgorithm OIDs with exactly one hash function (RFC 3279, RFC 4055, RFC 5758, RFC 8692 names).
const SIGNATURE_HASH: Readonly<Record<string, SignatureHash>> = {
  "1.2.840.113549.1.1.4": "md5", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha1", // sha1WithRSAEncryption
  "1.3.14.3.2.29": "sha1", // sha1WithRSASignature (OIW)
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.10040.4.3": "sha1", // dsa-with-sha1
  "2.16.840.1.101.3.4.3.1": "sha224", // dsa-with-sha224
  "2.16.840.1.101.3.4.3.2": "sha256", // dsa-with-sha256
  "2.16.840.1.101.3.4.3.9": "sha3-224", // ecdsa-with-SHA3-*
  "2.16.840.1.101.3.4.3.10": "sha3-256",
  "2.16.840.1.101.3.4.3.11": "sha3-384",
  "2.16.840.1.101.3.4.3.12": "sha3-512",
  "2.16.840.1.101.3.4.3.13": "sha3-224", // id-rsassa-pkcs1-v1_5-with-sha3-*
  "2.16.840.1.101.3.4.3.14": "sha3-256",
  "2.16.840.1.101.3.4.3.15": "sha3-384",
  "2.16.840.1.101.3.4.3.16": "sha3-512",
};
const RSASSA_PSS = "1.2.840.113549.1.1.10";
// Hash algorithm OIDs (RFC 3279, RFC 5754, NIST CSOR) for RSASSA-PSS parameters.
const HASH: Readonly<Record<string, SignatureHash>> = {
  "1.2.840.113549.2.5": "md5",
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
  "2.16.840.1.101.3.4.2.7": "sha3-224",
  "2.16.840.1.101.3.4.2.8": "sha3-256",
  "2.16.840.1.101.3.4.2.9": "sha3-384",
  "2.16.840.1.101.3.4.2.10": "sha3-512",
};

/** The hash RFC 5929 §4.1 uses for this certificate; undefined when the signature has no single hash. */
export function endPointHash(certDer: Buffer): EndPointHash | undefined {
  let hash: SignatureHash | undefined;
  try {
    // RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    const [, algorithm] = childrenOf(readTlv(certDer));
    if (!algorithm) return undefined;
    const [id, params] = childrenOf(algorithm);
    if (!id) return undefined;
    const oid = readOid(id);
    hash = oid === RSASSA_PSS ? pssHash(params) : SIGNATURE_HASH[oid];
  } catch (e) {
    if (e instanceof DerError) return undefined;
    throw e;
  }
  return hash === "md5" || hash === "sha1" ? "sha256" : hash;
}

/** RFC 4055 §3.1: RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] DEFAULT sha1, ... }. */
function pssHash(params: Tlv | undefined): SignatureHash | undefined {
  if (!params || params.tag !== 0x30) return undefined; // parameters are required for PSS in certificates
  const explicit = childrenOf(params).find((c) => c.tag === 0xa0);
  if (!explicit) return "sha1";
  const [algorithm] = childrenOf(explicit);
  const [id] = algorithm ? childrenOf(algorithm) : [];
  return id ? HASH[readOid(id)] : undefined;
}
