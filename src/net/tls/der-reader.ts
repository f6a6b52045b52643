/**
 * A minimal ASN.1 DER reader (ITU-T X.690 §8.1, §10): tag-length-value walking and OBJECT IDENTIFIER
 * decoding, enough to read fields of an X.509 certificate that node:crypto does not expose (on Node 20,
 * X509Certificate has no signature algorithm). The counterpart of der.ts, which encodes.
 */

export class DerError extends Error {
  override readonly name = "DerError";
}

/** One element: its tag byte, and where its value lies in the buffer it was read from. */
export interface Tlv {
  readonly tag: number;
  readonly value: Buffer;
  /** Offset just past this element in the buffer it was read from. */
  readonly end: number;
}

/** Reads the element that starts at `offset`. Throws DerError on truncation or a non-DER length. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  const tag = buf[offset];
  if (tag === undefined) throw new DerError(`DER: no element at offset ${offset}`);
  if ((tag & 0x1f) === 0x1f) throw new DerError("DER: high tag numbers are not supported"); // X.690 §8.1.2.4
  let pos = offset + 1;
  const first = buf[pos++];
  if (first === undefined) throw new DerError("DER: truncated length");
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    // X.690 §10.1: definite form only, in the fewest octets; 0x80 (indefinite) is BER, not DER.
    if (count === 0 || count > 4) throw new DerError(`DER: unsupported length form 0x${first.toString(16)}`);
    length = 0;
    for (let i = 0; i < count; i++) {
      const b = buf[pos++];
      if (b === undefined) throw new DerError("DER: truncated length");
      if (i === 0 && b === 0) throw new DerError("DER: length not minimally encoded");
      length = length * 256 + b;
    }
    if (length < 0x80) throw new DerError("DER: length not minimally encoded");
  }
  const end = pos + length;
  if (end > buf.length) throw new DerError(`DER: element of ${length} bytes at offset ${offset} runs past the end`);
  return { tag, value: buf.subarray(pos, end), end };
}

/** The elements inside a constructed element's value, in order. */
export function childrenOf(tlv: Tlv): Tlv[] {
  if ((tlv.tag & 0x20) === 0) throw new DerError(`DER: tag 0x${tlv.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  for (let pos = 0; pos < tlv.value.length;) {
    const child = readTlv(tlv.value, pos);
    out.push(child);
    pos = child.end;
  }
  return out;
}

/** Dotted form of an OBJECT IDENTIFIER element (X.690 §8.19). */
export function readOid(tlv: Tlv): string {
  if (tlv.tag !== 0x06) throw new DerError(`DER: expected OBJECT IDENTIFIER, got tag 0x${tlv.tag.toString(16)}`);
  const arcs: number[] = [];
  let value = 0;
  for (const b of tlv.value) {
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError("DER: OID arc too large");
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    }
  }
  if (arcs.length === 0 || (tlv.value[tlv.value.length - 1] ?? 0) & 0x80) throw new DerError("DER: truncated OID");
  const [head = 0, ...rest] = arcs;
  const first = Math.min(2, Math.floor(head / 40));
  return [first, head - first * 40, ...rest].join(".");
}
