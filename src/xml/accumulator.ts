// Holds the bytes of the one incomplete frame between socket reads. One growing buffer rather than
// a list of chunks: a peer dripping one byte per TCP segment must not cost an object per byte.

const EMPTY = Buffer.alloc(0);
const MIN_CAPACITY = 256;

export class ByteAccumulator {
  private buf: Buffer = EMPTY;
  private len = 0;

  get length(): number {
    return this.len;
  }

  /** Copies `bytes` in, so the caller's chunk is not retained. */
  append(bytes: Buffer): void {
    const need = this.len + bytes.length;
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2, MIN_CAPACITY));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    bytes.copy(this.buf, this.len);
    this.len = need;
  }

  /** Returns the bytes held plus `tail`, handing the memory over to the caller, and empties itself. */
  take(tail: Buffer): Buffer {
    if (this.len === 0) return tail;
    this.append(tail);
    const out = this.buf.subarray(0, this.len);
    this.clear();
    return out;
  }

  clear(): void {
    this.buf = EMPTY;
    this.len = 0;
  }
}
