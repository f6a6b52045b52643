// A raw XMPP client that logs in with exactly one SCRAM mechanism, the way a client that pins its mechanism
// does: SCRAM-SHA-1/-256/-512 (RFC 5802, RFC 7677, draft-melnikov-scram-sha-512) and their -PLUS variants
// with channel binding (SPEC A14): tls-exporter (RFC 9266) or tls-server-end-point (RFC 5929 §4.1). The
// binding data is computed here, client side, from this socket alone (not with src/sasl/channel-binding.ts),
// so the two sides meet only on the wire. Hooks let a test break any step: rewrite client-first or
// client-final (before base64), send its own text in <auth>/<response>, or its own element instead.
//
//   const r = await scramLogin({ port, transport: "direct", username: "alice", password: "alicepw",
//     mechanism: "SCRAM-SHA-256-PLUS", channelBinding: "tls-exporter" });
//   r.features.channelBindings  // ["tls-exporter", ...] from XEP-0440
//   r.sasl                      // { kind: "success", ... } (server signature verified) or a failure
//   r.jid; r.conn.send("<presence/>"); await r.conn.next(); r.conn.close();
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { promisify } from "node:util";
import type { Element } from "@xmpp/xml";
import { XmppConnection } from "./xmpp-connection.js";

export { XmppConnection };
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL_CB = "urn:xmpp:sasl-cb:0"; // XEP-0440
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

export type ScramHash = "SHA-1" | "SHA-256" | "SHA-512";
export type ScramMechanism = `SCRAM-${ScramHash}` | `SCRAM-${ScramHash}-PLUS`;
/** The types this client can compute; any other name needs `channelBindingData`. */
export type ClientCbType = "tls-exporter" | "tls-server-end-point";

export interface ScramLoginOptions {
  port: number;
  host?: string; // default 127.0.0.1
  /** STARTTLS on a plain port (RFC 6120 §5), direct TLS (XEP-0368), or no TLS at all. */
  transport: "starttls" | "direct" | "plain";
  domain?: string; // stream `to`, default localhost
  servername?: string; // SNI, default `domain`
  /** Default true: the test CA is trusted through NODE_EXTRA_CA_CERTS (scripts/run-tests.mjs). */
  rejectUnauthorized?: boolean;
  ca?: string | Buffer;
  maxTlsVersion?: tls.SecureVersion; // e.g. "TLSv1.2"
  username: string;
  password: string;
  mechanism: ScramMechanism;
  /** For -PLUS (default tls-exporter); sent in the GS2 header `p=<type>`. */
  channelBinding?: ClientCbType | (string & {});
  /** Sent instead of the computed channel binding data (-PLUS). */
  channelBindingData?: Buffer;
  nonce?: string;
  /** Rewrites client-first (GS2 header + bare). The rest follows what is sent: c= carries the sent header. */
  clientFirst?: (message: string) => string;
  /** Rewrites client-final-without-proof (`c=…,r=…`); the proof is computed over the result. */
  clientFinalWithoutProof?: (message: string) => string;
  /** Rewrites the whole client-final, after the proof. */
  clientFinal?: (message: string) => string;
  /** Text of <auth> as is (any base64, or none of it), instead of base64(client-first). */
  authText?: string;
  /** Text of the <response> to server-first as is, instead of base64(client-final). */
  responseText?: string;
  /** Raw XML sent instead of the <auth> element. */
  authElement?: string;
  /** Raw XML sent instead of the <response> to server-first. */
  responseElement?: string;
  /** After success: restart the stream and bind this resource (default "scram"); false stops after SASL. */
  bind?: string | false;
  timeoutMs?: number; // each wait, default 10 s
}

export interface StreamFeatures {
  element: Element;
  starttls: boolean;
  mechanisms: string[];
  /** XEP-0440 `<sasl-channel-binding><channel-binding type=…/>` types. */
  channelBindings: string[];
}

export type SaslOutcome =
  | { kind: "success"; serverFinal: string } // and the server signature (v=) was verified
  | { kind: "failure"; condition: string; text: string | undefined }
  | { kind: "stream-error"; condition: string; text: string | undefined }
  /** This client refused what the server sent (wrong nonce, bad server signature, …) and aborted. */
  | { kind: "client-abort"; reason: string }
  | { kind: "closed" };

export interface ScramLoginResult {
  features: StreamFeatures; // the features SASL was chosen from (after STARTTLS)
  tlsProtocol: string | null;
  channelBinding: { type: string; data: Buffer } | undefined;
  sasl: SaslOutcome;
  postAuthFeatures: StreamFeatures | undefined;
  jid: string | undefined;
  /** The connection, open unless the server closed it: raw send/receive from here on. */
  conn: XmppConnection;
}

const HASH: Record<ScramHash, "sha1" | "sha256" | "sha512"> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512" };
const pbkdf2Async = promisify(pbkdf2);
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (text: string) => Buffer.from(text === "=" ? "" : text, "base64").toString("utf8");

/** Connects, negotiates TLS as asked, authenticates with `mechanism`, and (on success) binds. */
export async function scramLogin(o: ScramLoginOptions): Promise<ScramLoginResult> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const domain = o.domain ?? "localhost";
  let conn = new XmppConnection(await connect(o), timeoutMs);
  try {
    conn.open(domain);
    let features = readFeatures(await conn.expect("stream:features"));
    if (o.transport === "starttls") {
      if (!features.starttls) throw new Error(`scramLogin: no STARTTLS offered: ${features.element.toString()}`);
      conn.send(`<starttls xmlns='${NS_TLS}'/>`);
      await conn.expect("proceed");
      conn = new XmppConnection(await secure(o, conn.socket), timeoutMs);
      conn.open(domain);
      features = readFeatures(await conn.expect("stream:features"));
    }
    const socket = conn.socket instanceof tls.TLSSocket ? conn.socket : undefined;
    const result: ScramLoginResult = {
      features, tlsProtocol: socket?.getProtocol() ?? null, channelBinding: undefined, sasl: { kind: "closed" },
      postAuthFeatures: undefined, jid: undefined, conn,
    };
    if (o.mechanism.endsWith("-PLUS")) {
      const type = o.channelBinding ?? "tls-exporter";
      result.channelBinding = { type, data: o.channelBindingData ?? clientChannelBinding(socket, type) };
    }
    result.sasl = await authenticate(o, conn, result.channelBinding);
    if (result.sasl.kind === "success" && o.bind !== false) {
      conn.open(domain); // RFC 6120 §6.4.6: a new stream after <success/> (the parser was reset on it)
      result.postAuthFeatures = readFeatures(await conn.expect("stream:features"));
      result.jid = await bind(conn, o.bind ?? "scram");
    }
    return result;
  } catch (e) {
    conn.destroy(); // a broken step leaves no socket behind
    throw e;
  }
}

/** RFC 6120 §7: binds `resource`; returns the full JID the server assigned. */
async function bind(conn: XmppConnection, resource: string): Promise<string> {
  conn.send(`<iq type='set' id='bind-1'><bind xmlns='${NS_BIND}'><resource>${escapeXml(resource)}</resource></bind></iq>`);
  const iq = await conn.expect("iq");
  const jid = iq.getChild("bind", NS_BIND)?.getChildText("jid");
  if (iq.attrs.type !== "result" || !jid) throw new Error(`scramLogin: bind failed: ${iq.toString()}`);
  return jid;
}

/** RFC 5802 §3 and §5, one mechanism; the outcome says how it ended. */
async function authenticate(o: ScramLoginOptions, conn: XmppConnection, cb: ScramLoginResult["channelBinding"]): Promise<SaslOutcome> {
  const hash = HASH[o.mechanism.replace(/^SCRAM-|-PLUS$/g, "") as ScramHash];
  const gs2 = cb ? `p=${cb.type},,` : "n,,";
  const nonce = o.nonce ?? randomBytes(18).toString("base64");
  const clientFirst = (o.clientFirst ?? ((m) => m))(`${gs2}n=${saslName(o.username)},r=${nonce}`);
  const [, sentGs2 = "", bare = ""] = /^([^,]*,[^,]*,)(.*)$/s.exec(clientFirst) ?? [];
  const clientNonce = attrs(bare).get("r") ?? "";
  conn.send(o.authElement ?? `<auth xmlns='${NS_SASL}' mechanism='${o.mechanism}'>${o.authText ?? b64(clientFirst)}</auth>`);

  let serverSignature: Buffer | undefined;
  let verified = false;
  const abort = (reason: string): SaslOutcome => {
    conn.send(`<abort xmlns='${NS_SASL}'/>`); // the server's <failure><aborted/> is left unread in conn
    return { kind: "client-abort", reason };
  };
  const checkServerFinal = (text: string): string | undefined => {
    const v = attrs(text).get("v");
    if (v === undefined || !serverSignature) return `no server signature in '${text}'`;
    const got = Buffer.from(v, "base64");
    if (got.length !== serverSignature.length || !timingSafeEqual(got, serverSignature)) return "wrong server signature";
    verified = true;
    return undefined;
  };
  for (;;) {
    const el = await conn.nextOrClosed();
    if (!el) return { kind: "closed" };
    if (el.name === "stream:error") return { kind: "stream-error", ...condition(el, "urn:ietf:params:xml:ns:xmpp-streams") };
    if (el.attrs.xmlns !== NS_SASL) return abort(`unexpected ${el.toString()}`);
    if (el.name === "failure") return { kind: "failure", ...condition(el, NS_SASL) };
    const text = unb64(el.text().trim());
    if (el.name === "success") {
      const problem = verified ? undefined : checkServerFinal(text);
      return problem ? { kind: "client-abort", reason: problem } : { kind: "success", serverFinal: text };
    }
    if (el.name !== "challenge") return abort(`unexpected ${el.name}`);
    if (serverSignature) { // server-final in a challenge (RFC 6120 §6.4.5): verify, then an empty response
      const problem = checkServerFinal(text);
      if (problem) return abort(problem);
      conn.send(`<response xmlns='${NS_SASL}'/>`);
      continue;
    }
    const a = attrs(text);
    const [r, s, i] = [a.get("r") ?? "", a.get("s") ?? "", Number(a.get("i"))];
    if (text.startsWith("m=") || !r.startsWith(clientNonce) || r === clientNonce || !s || !Number.isInteger(i) || i < 1) {
      return abort(`bad server-first '${text}'`);
    }
    const salted = await pbkdf2Async(o.password.normalize("NFKC"), Buffer.from(s, "base64"), i, createHash(hash).digest().length, hash);
    const hmac = (key: Buffer, data: string) => createHmac(hash, key).update(data).digest();
    const cbind = Buffer.concat([Buffer.from(sentGs2, "utf8"), cb?.data ?? Buffer.alloc(0)]).toString("base64");
    const withoutProof = (o.clientFinalWithoutProof ?? ((m) => m))(`c=${cbind},r=${r}`);
    const authMessage = `${bare},${text},${withoutProof}`;
    const clientKey = hmac(salted, "Client Key");
    const signature = hmac(createHash(hash).update(clientKey).digest(), authMessage);
    const proof = Buffer.from(clientKey.map((b, k) => b ^ (signature[k] ?? 0)));
    serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    const clientFinal = (o.clientFinal ?? ((m) => m))(`${withoutProof},p=${proof.toString("base64")}`);
    conn.send(o.responseElement ?? `<response xmlns='${NS_SASL}'>${o.responseText ?? b64(clientFinal)}</response>`);
  }
}

/**
 * Channel binding data as a client computes it from its own TLS socket: RFC 9266 (exporter, empty
 * context, 32 bytes) or RFC 5929 §4.1 (hash of the server certificate's DER, with its signature's hash).
 */
export function clientChannelBinding(socket: tls.TLSSocket | undefined, type: string): Buffer {
  if (!socket) throw new Error(`channel binding ${type}: no TLS on this connection`);
  if (type === "tls-exporter") return socket.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
  if (type !== "tls-server-end-point") throw new Error(`channel binding ${type}: not computed by this client; pass channelBindingData`);
  const der = socket.getPeerCertificate(true).raw;
  return createHash(endPointHashOf(der)).update(der).digest();
}

// Content bytes of signatureAlgorithm OIDs (RFC 3279, RFC 4055, RFC 5758) → RFC 5929 §4.1 hash.
const SIGNATURE_OID_HASH: Record<string, string> = {
  "2a864886f70d010104": "sha256", "2a864886f70d010105": "sha256", // md5/sha1WithRSAEncryption: SHA-256
  "2a864886f70d01010b": "sha256", "2a864886f70d01010c": "sha384", "2a864886f70d01010d": "sha512",
  "2a8648ce3d0401": "sha256", // ecdsa-with-SHA1: SHA-256
  "2a8648ce3d040302": "sha256", "2a8648ce3d040303": "sha384", "2a8648ce3d040304": "sha512",
};

/** The hash for tls-server-end-point, read from the DER: Certificate → (skip tbsCertificate) → algorithm OID. */
export function endPointHashOf(der: Buffer): string {
  const header = (pos: number): [start: number, end: number] => { // tag at pos → content start/end
    const first = der[pos + 1] ?? 0;
    const n = first & 0x80 ? first & 0x7f : 0;
    const len = n ? der.subarray(pos + 2, pos + 2 + n).reduce((acc, b) => acc * 256 + b, 0) : first;
    return [pos + 2 + n, pos + 2 + n + len];
  };
  const [tbs] = header(0);
  const [algorithm] = header(header(tbs)[1]);
  const [oidStart, oidEnd] = header(algorithm);
  const hash = SIGNATURE_OID_HASH[der.subarray(oidStart, oidEnd).toString("hex")];
  if (!hash) throw new Error(`tls-server-end-point: signature algorithm ${der.subarray(oidStart, oidEnd).toString("hex")} not known to this client`);
  return hash;
}

function connect(o: ScramLoginOptions): Promise<net.Socket> {
  const host = o.host ?? "127.0.0.1";
  if (o.transport === "direct") return secure(o, undefined, host);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: o.port }, () => { s.off("error", reject); resolve(s); });
    s.once("error", reject);
  });
}

/** A TLS client socket, over `socket` (STARTTLS) or a new connection to host:port (direct TLS). */
function secure(o: ScramLoginOptions, socket: net.Socket | undefined, host?: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      ...(socket ? { socket } : { host, port: o.port }), servername: o.servername ?? o.domain ?? "localhost",
      rejectUnauthorized: o.rejectUnauthorized ?? true, ALPNProtocols: ["xmpp-client"],
      ...(o.ca !== undefined ? { ca: o.ca } : {}), ...(o.maxTlsVersion ? { maxVersion: o.maxTlsVersion } : {}),
    }, () => { s.off("error", reject); resolve(s); });
    s.once("error", reject);
  });
}

export function readFeatures(el: Element): StreamFeatures {
  return {
    element: el,
    starttls: el.getChild("starttls", NS_TLS) !== undefined,
    mechanisms: el.getChild("mechanisms", NS_SASL)?.getChildren("mechanism").map((m) => m.text().trim()) ?? [],
    channelBindings: el.getChild("sasl-channel-binding", NS_SASL_CB)?.getChildren("channel-binding").map((c) => c.attrs.type ?? "") ?? [],
  };
}

/** The defined condition (first child in `ns`) and <text/> of a SASL failure or a stream error. */
function condition(el: Element, ns: string): { condition: string; text: string | undefined } {
  const children = el.getChildElements();
  const cond = children.find((c) => c.name !== "text" && (c.attrs.xmlns ?? ns) === ns);
  return { condition: cond?.name ?? "(none)", text: children.find((c) => c.name === "text")?.text() };
}

/** RFC 5802 §5.1: attributes of a SCRAM message; RFC 5802 §7 saslname escaping. */
function attrs(message: string): Map<string, string> {
  return new Map(message.split(",").filter((p) => p[1] === "=").map((p) => [p[0] as string, p.slice(2)]));
}
const saslName = (s: string) => s.replace(/=/g, "=3D").replace(/,/g, "=2C");
const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;");
