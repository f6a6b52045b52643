// PROXY protocol (haproxy doc/proxy-protocol.txt): an incremental decoder for the
// v1/v2 header a trusted load balancer puts before a client's first byte, and the v2 encoder for the
// header mucmux puts before its own first byte to the server. No dependency: the decoder is small,
// strict and bounded, and it sees bytes from the network.
import { formatIPv4, formatIPv6, mapIPv4, parseIP, parseIPv4, parseIPv6, unmapIPv4 } from "./ip-address.js";

export interface Endpoint { address: string; port: number }

export type ProxyHeader =
  | { version: 1 | 2; command: "proxy"; source: Endpoint; destination: Endpoint }
  /** v2 LOCAL, v1 UNKNOWN, or v2 UNSPEC/UDP/UNIX (§2.2: fall back): keep the connection's own addresses. */
  | { version: 1 | 2; command: "local" };

export type DecodeResult =
  | { kind: "incomplete" }
  /** `signature`: the bytes began with a PROXY signature (else this is no PROXY header at all). */
  | { kind: "invalid"; reason: string; signature: boolean }
  | { kind: "header"; header: ProxyHeader; length: number };

/** §2.1: the longest v1 line, CRLF included. */
export const V1_MAX_BYTES = 107;
/** mucmux's bound on a v2 header, TLVs included (cloud balancers add a few dozen bytes of TLVs). */
export const V2_MAX_BYTES = 2048;

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** §2.2: the valid family/transport bytes and the length of their address block. */
const V2_ADDRESS_BYTES = new Map<number, number>([[0x00, 0], [0x11, 12], [0x12, 12], [0x21, 36], [0x22, 36], [0x31, 216], [0x32, 216]]);

const INCOMPLETE: DecodeResult = { kind: "incomplete" };
const invalid = (reason: string, signature = true): DecodeResult => ({ kind: "invalid", reason, signature });
const NO_SIGNATURE = invalid("no PROXY protocol signature", false);

/** Decodes the header at the start of `buf`: complete, invalid, or a valid prefix of one (wait for more). */
export function decodeProxyHeader(buf: Buffer): DecodeResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V1_PREFIX[0]) return decodeV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return decodeV2(buf);
  return NO_SIGNATURE;
}

/**
 * Feed it the connection's bytes as they arrive, split anywhere; it answers once, with the header and
 * the bytes after it (the client's first bytes, to be handed on), or why the connection must be closed.
 */
export class ProxyHeaderDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { kind: "incomplete" } | Extract<DecodeResult, { kind: "invalid" }> | { kind: "header"; header: ProxyHeader; rest: Buffer } {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const r = decodeProxyHeader(this.buf);
    if (r.kind !== "header") return r;
    return { kind: "header", header: r.header, rest: this.buf.subarray(r.length) };
  }
}

const startsLike = (buf: Buffer, sig: Buffer) => {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
};

function decodeV1(buf: Buffer): DecodeResult {
  if (!startsLike(buf, V1_PREFIX)) return NO_SIGNATURE;
  const end = Math.min(buf.length, V1_MAX_BYTES);
  for (let i = V1_PREFIX.length; i < end; i++) {
    const c = buf[i];
    if (c === 0x0a) return invalid("v1: LF without CR");
    if (c !== 0x0d) continue;
    if (i + 1 >= V1_MAX_BYTES) return invalid(`v1: no CRLF within ${V1_MAX_BYTES} bytes`);
    if (i + 1 >= buf.length) return INCOMPLETE;
    if (buf[i + 1] !== 0x0a) return invalid("v1: CR without LF");
    return decodeV1Line(buf.toString("latin1", V1_PREFIX.length, i), i + 2);
  }
  if (buf.length >= V1_MAX_BYTES) return invalid(`v1: no CRLF within ${V1_MAX_BYTES} bytes`);
  const early = v1PrefixProblem(buf.toString("latin1", V1_PREFIX.length, end));
  return early ? invalid(early) : INCOMPLETE;
}

const V1_PROTOCOLS = ["TCP4", "TCP6", "UNKNOWN"];

/** Rejects an unfinished line as soon as it cannot become valid (garbage need not wait for 107 bytes). */
function v1PrefixProblem(partial: string): string | undefined {
  const sp = partial.indexOf(" ");
  const proto = sp < 0 ? partial : partial.slice(0, sp);
  if (!V1_PROTOCOLS.some((p) => (sp < 0 ? p.startsWith(proto) : p === proto))) return "v1: unknown protocol";
  if (proto === "UNKNOWN" || sp < 0) return undefined;
  const rest = partial.slice(sp + 1);
  if (!/^[0-9a-fA-F.: ]*$/.test(rest) || rest.split(" ").length > 4) return "v1: malformed addresses or ports";
  return undefined;
}

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

function decodeV1Line(line: string, length: number): DecodeResult {
  // §2.1: for UNKNOWN "the receiver must ignore anything presented before the CRLF".
  if (line === "UNKNOWN" || line.startsWith("UNKNOWN ")) return { kind: "header", header: { version: 1, command: "local" }, length };
  const [proto, src, dst, sport, dport, ...extra] = line.split(" ");
  if (proto !== "TCP4" && proto !== "TCP6") return invalid("v1: unknown protocol");
  if (extra.length > 0 || dport === undefined) return invalid("v1: wrong number of fields");
  const parse = proto === "TCP4" ? parseIPv4 : parseIPv6;
  const format = proto === "TCP4" ? formatIPv4 : formatIPv6;
  const s = parse(src as string), d = parse(dst as string);
  if (!s || !d) return invalid(`v1: malformed ${proto} address`);
  const ports = [sport as string, dport].map((p) => (PORT.test(p) && Number(p) <= 65535 ? Number(p) : -1));
  const [sp = -1, dp = -1] = ports;
  if (sp < 0 || dp < 0) return invalid("v1: malformed port");
  return {
    kind: "header",
    header: { version: 1, command: "proxy", source: { address: format(s), port: sp }, destination: { address: format(d), port: dp } },
    length,
  };
}

function decodeV2(buf: Buffer): DecodeResult {
  if (!startsLike(buf, V2_SIGNATURE)) return NO_SIGNATURE;
  if (buf.length < 13) return INCOMPLETE;
  const verCmd = buf[12] as number;
  if (verCmd >> 4 !== 2) return invalid("v2: version is not 2");
  const command = verCmd & 0x0f;
  if (command > 1) return invalid("v2: unknown command");
  if (buf.length < 14) return INCOMPLETE;
  const family = buf[13] as number;
  const addressBytes = V2_ADDRESS_BYTES.get(family);
  if (addressBytes === undefined) return invalid("v2: unknown address family or transport");
  if (buf.length < 16) return INCOMPLETE;
  const length = 16 + buf.readUInt16BE(14);
  if (length > V2_MAX_BYTES) return invalid(`v2: header longer than ${V2_MAX_BYTES} bytes`);
  if (command === 1 && length < 16 + addressBytes) return invalid("v2: address block too short");
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: "discard the protocol block including the family"; UNSPEC, UDP and UNIX fall back to the real
  // endpoints (§2.2: a receiver not implementing a valid combination uses UNSPEC mode).
  if (command === 0 || (family !== 0x11 && family !== 0x21)) return { kind: "header", header: { version: 2, command: "local" }, length };
  const block = buf.subarray(16, length);
  const tlvProblem = checkTlvs(block.subarray(addressBytes));
  if (tlvProblem) return invalid(tlvProblem);
  const n = family === 0x11 ? 4 : 16;
  const format = family === 0x11 ? formatIPv4 : formatIPv6;
  return {
    kind: "header",
    header: {
      version: 2,
      command: "proxy",
      source: { address: format(block.subarray(0, n)), port: block.readUInt16BE(2 * n) },
      destination: { address: format(block.subarray(n, 2 * n)), port: block.readUInt16BE(2 * n + 2) },
    },
    length,
  };
}

/** TLVs are skipped, but they must tile the rest of the header exactly (as haproxy checks). */
function checkTlvs(tlvs: Buffer): string | undefined {
  let at = 0;
  while (at < tlvs.length) {
    if (at + 3 > tlvs.length) return "v2: truncated TLV";
    at += 3 + tlvs.readUInt16BE(at + 1);
    if (at > tlvs.length) return "v2: TLV longer than the header";
  }
  return undefined;
}

/** LOCAL without an address block. Avoid it towards ejabberd 23.01 (see encodeProxyV2). */
export const PROXY_V2_LOCAL = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);

/**
 * A v2 header for mucmux's own connection to the server: PROXY with a client's endpoints, or LOCAL
 * (mucmux's own traffic: the anchor, the readiness probe) with the connection's own endpoints as the
 * address block the receiver ignores. COMPAT(ejabberd-23.01): proxy_protocol:decode reads the block with
 * gen_tcp:recv(Socket, Len), and Len 0 means "whatever arrived", which swallows the stream header
 * that follows; a LOCAL header with a block of its own is valid (§2.2: receivers must not assume 0).
 * Undefined when an endpoint is not an IP address and port.
 */
export function encodeProxyV2(endpoints: { source: Endpoint; destination: Endpoint }, command: "proxy" | "local" = "proxy"): Buffer | undefined {
  const { source, destination } = endpoints;
  let src = ipBytes(source.address), dst = ipBytes(destination.address);
  if (!src || !dst || !validPort(source.port) || !validPort(destination.port)) return undefined;
  if (src.length !== dst.length) { // one IPv4, one IPv6: both as IPv6
    if (src.length === 4) src = mapIPv4(src);
    if (dst.length === 4) dst = mapIPv4(dst);
  }
  const n = src.length;
  const out = Buffer.alloc(16 + 2 * n + 4);
  V2_SIGNATURE.copy(out);
  out[12] = command === "proxy" ? 0x21 : 0x20; // version 2, PROXY or LOCAL
  out[13] = n === 4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  out.writeUInt16BE(2 * n + 4, 14);
  src.copy(out, 16);
  dst.copy(out, 16 + n);
  out.writeUInt16BE(source.port, 16 + 2 * n);
  out.writeUInt16BE(destination.port, 18 + 2 * n);
  return out;
}

/** 4 bytes for IPv4 and IPv4-mapped IPv6 (so the server sees `203.0.113.7`, not `::ffff:203.0.113.7`), else 16. */
function ipBytes(address: string): Buffer | undefined {
  const ip = parseIP(address);
  if (!ip) return undefined;
  return ip.family === 4 ? ip.bytes : (unmapIPv4(ip.bytes) ?? ip.bytes);
}

const validPort = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
