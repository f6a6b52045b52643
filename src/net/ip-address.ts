// IP addresses as text and bytes, strictly (PROXY protocol §2.1: decimal IPv4 without leading zeros,
// IPv6 with at most one "::", no zone ids), and the list of trusted CIDRs (PROXY protocol peers).
// node:net checks the text (isIPv4, isIPv6) and matches peers (BlockList); Node 20 has no API that turns
// an address into bytes or bytes into text (inet_pton/ntop), so that part is here.
import net from "node:net";

export type Family = 4 | 6;

/** A DNS host name: RFC 1035 labels; IDNs in their A-label (punycode) form, as they appear on the wire. */
export const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** 4 bytes, or undefined. node:net's isIPv4 is the PROXY protocol's form: dot-decimal without leading zeros. */
export function parseIPv4(text: string): Buffer | undefined {
  if (!net.isIPv4(text)) return undefined;
  const out = Buffer.alloc(4);
  text.split(".").forEach((octet, i) => { out[i] = Number(octet); });
  return out;
}

/**
 * 16 bytes, or undefined. node:net's isIPv6 checks the text (at most one "::", a dotted IPv4 tail only
 * last, as in `::ffff:1.2.3.4`); zone ids (`fe80::1%eth0`), which it also accepts, are refused.
 */
export function parseIPv6(text: string): Buffer | undefined {
  if (!net.isIPv6(text) || text.includes("%")) return undefined;
  let hex = text;
  if (text.includes(".")) {
    const at = text.lastIndexOf(":") + 1;
    const v4 = parseIPv4(text.slice(at)) as Buffer; // valid: isIPv6 checked it
    hex = `${text.slice(0, at)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head = "", tail = ""] = hex.split("::");
  const before = head === "" ? [] : head.split(":");
  const after = tail === "" ? [] : tail.split(":");
  const out = Buffer.alloc(16); // the groups "::" stands for stay zero
  before.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  after.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 16 - (after.length - i) * 2));
  return out;
}

export function parseIP(text: string): { family: Family; bytes: Buffer } | undefined {
  const v4 = parseIPv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else undefined. */
export function unmapIPv4(b: Uint8Array): Buffer | undefined {
  return b.length === 16 && MAPPED_PREFIX.equals(b.subarray(0, 12)) ? Buffer.from(b.subarray(12)) : undefined;
}

export function mapIPv4(b: Uint8Array): Buffer {
  return Buffer.concat([MAPPED_PREFIX, b]);
}

/** RFC 5952 text, as Node prints socket addresses (IPv4-mapped addresses as `::ffff:a.b.c.d`). */
export function formatIPv6(b: Uint8Array): string {
  const v4 = unmapIPv4(b);
  if (v4) return `::ffff:${formatIPv4(v4)}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] as number) << 8) | (b[i + 1] as number));
  // The longest run of two or more zero groups (the first one on a tie) becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export interface Cidr { address: string; prefix: number; family: Family }

/**
 * `addr/prefix` or a bare address (a single host). Returns an operator-facing message when invalid:
 * host bits set are refused because `10.0.0.1/8` almost always means a typo.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIP(addr);
  if (!ip) return `must be an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/8), got "${text}"`;
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return `must have a prefix length 0–${max}, got "${text}"`;
    prefix = Number(p);
  }
  const network = maskBytes(ip.bytes, prefix);
  const shown = ip.family === 4 ? formatIPv4(network) : formatIPv6(network);
  if (!network.equals(ip.bytes)) return `has host bits set: "${text}" (did you mean ${shown}/${prefix}?)`;
  return { address: shown, prefix, family: ip.family };
}

function maskBytes(bytes: Buffer, prefix: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (out[i] as number) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/**
 * Peers allowed to send a PROXY protocol header, matched by node:net's BlockList, which takes an IPv4
 * peer and its IPv4-mapped form (`::ffff:10.0.0.1`, how a dual-stack listener reports IPv4 clients) as
 * one address: an IPv4 entry matches both, and so does an IPv6 entry covering them (`::ffff:10.0.0.0/104`,
 * `::/0`). The IPv4-compatible form (`::10.0.0.1`) is just IPv6.
 */
export class TrustList {
  private readonly list = new net.BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const text of cidrs) {
      const c = parseCidr(text);
      if (typeof c === "string") throw new Error(`trusted proxy ${c}`);
      this.list.addSubnet(c.address, c.prefix, c.family === 4 ? "ipv4" : "ipv6");
    }
    this.size = cidrs.length;
  }

  has(address: string | undefined): boolean {
    if (this.size === 0 || !address) return false;
    const family = net.isIPv4(address) ? "ipv4" : net.isIPv6(address) ? "ipv6" : undefined;
    if (!family) return false;
    try {
      return this.list.check(address, family);
    } catch {
      return false; // e.g. a scoped (zone id) address BlockList does not take
    }
  }
}
