// A strict reader for the Lua data files Prosody's file store writes (util/datamanager.lua stores
// `"return " .. serialize(data) .. ";\n"`, util/serialization.lua writes the value). It reads exactly that
// subset and nothing else: string literals (Lua escapes, \ddd and \xXX included), decimal numbers and the
// serializer's (1/0), (-1/0), (0/0), booleans, and tables whose fields are `["key"] = value`, `[1] = value`,
// `identifier = value` or a bare value, separated by `;` or `,`. No expression, call, name lookup or comment
// is understood: the file is data to read, never code to run (SPEC A12).
//
// Lua strings are byte strings, so the parser works on bytes and returns strings as Buffers. Error messages
// give a line and column and never quote the input (an account file holds keys and salts).

export type LuaValue = Buffer | number | boolean | LuaTable;

export class LuaTable {
  /** Fields with string keys; the key is the key's bytes read as latin1, so no byte is lost. */
  readonly fields = new Map<string, LuaValue>();
  /** Fields with integer keys, positional values (1, 2, …) included. */
  readonly indexed = new Map<number, LuaValue>();
}

export class LuaDataError extends Error {
  readonly code = "ERR_MUCMUX_LUA_DATA";
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${line}:${column}: ${reason}`);
  }
}

export interface LuaDataLimits {
  /** Deepest table nesting accepted (Prosody's serializer stops at 127; account files use 1). */
  maxDepth: number;
  /** Longest number literal accepted, in bytes. */
  maxNumberLength: number;
}

const DEFAULT_LIMITS: LuaDataLimits = { maxDepth: 32, maxNumberLength: 64 };

// Lua 5.4 reserved words: never an unquoted key.
const KEYWORDS = new Set(["and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"]);

// Lua 5.4 §3.1: the single-character escapes.
const ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, '"': 34, "'": 39 };

const SPECIALS: Record<string, number> = { "(1/0)": Infinity, "(-1/0)": -Infinity, "(0/0)": NaN };

const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;
const isHex = (b: number | undefined) => b !== undefined && (isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
const isIdentStart = (b: number | undefined) => b !== undefined && ((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f);
const isIdentPart = (b: number | undefined) => isIdentStart(b) || isDigit(b);
const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/** Reads `return <value>;` as Prosody's datamanager writes it. Throws LuaDataError. */
export function parseLuaData(bytes: Buffer, limits: Partial<LuaDataLimits> = {}): LuaValue {
  return new Reader(bytes, { ...DEFAULT_LIMITS, ...limits }).file();
}

class Reader {
  private pos = 0;
  constructor(
    private readonly src: Buffer,
    private readonly limits: LuaDataLimits,
  ) {}

  file(): LuaValue {
    this.skipSpace();
    if (!this.word("return")) this.fail("expected 'return'");
    if (!isSpace(this.src[this.pos]) && this.src[this.pos] !== 0x7b) this.fail("expected a space after 'return'");
    this.skipSpace();
    const value = this.value(0);
    this.skipSpace();
    if (this.src[this.pos] === 0x3b) this.pos++;
    this.skipSpace();
    if (this.pos < this.src.length) this.fail("unexpected text after the value");
    return value;
  }

  private value(depth: number): LuaValue {
    const b = this.src[this.pos];
    if (b === undefined) this.fail("unexpected end of file, expected a value");
    if (b === 0x22) return this.string();
    if (b === 0x7b) return this.table(depth + 1);
    if (b === 0x2d || isDigit(b)) return this.number();
    if (b === 0x28) return this.special();
    if (this.word("true")) return true;
    if (this.word("false")) return false;
    return this.fail(isIdentStart(b) ? "a name or expression where a value belongs (only data is read)" : "expected a value");
  }

  private table(depth: number): LuaTable {
    if (depth > this.limits.maxDepth) this.fail(`tables nested deeper than ${this.limits.maxDepth}`);
    this.pos++; // {
    const t = new LuaTable();
    let next = 1;
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === 0x7d) { this.pos++; return t; }
      const at = this.pos;
      const key = this.key();
      this.skipSpace();
      const value = this.value(depth);
      if (key === undefined) {
        this.put(t, next++, value, at);
      } else {
        this.put(t, key, value, at);
      }
      this.skipSpace();
      const sep = this.src[this.pos];
      if (sep === 0x3b || sep === 0x2c) { this.pos++; continue; }
      if (sep === 0x7d) continue;
      this.fail(sep === undefined ? "unexpected end of file in a table" : "expected ';', ',' or '}'");
    }
  }

  /** `["k"] =`, `[1] =` or `name =`; undefined for a positional value (nothing consumed). */
  private key(): string | number | undefined {
    const b = this.src[this.pos];
    if (b === 0x5b) {
      this.pos++;
      this.skipSpace();
      const c = this.src[this.pos];
      let key: string | number;
      if (c === 0x22) key = this.string().toString("latin1");
      else if (c === 0x2d || isDigit(c)) {
        key = this.number();
        if (!Number.isSafeInteger(key)) this.fail("a table key must be a string or an integer");
      } else return this.fail("a table key must be a string or an integer");
      this.skipSpace();
      if (this.src[this.pos] !== 0x5d) this.fail("expected ']'");
      this.pos++;
      this.equals();
      return key;
    }
    if (isIdentStart(b)) {
      const start = this.pos;
      let end = start;
      while (isIdentPart(this.src[end])) end++;
      const name = this.src.toString("latin1", start, end);
      if (KEYWORDS.has(name)) return undefined; // true/false as values; anything else fails in value()
      this.pos = end;
      this.equals();
      return name;
    }
    return undefined;
  }

  private equals(): void {
    this.skipSpace();
    if (this.src[this.pos] !== 0x3d || this.src[this.pos + 1] === 0x3d) this.fail("expected '='");
    this.pos++;
  }

  private put(t: LuaTable, key: string | number, value: LuaValue, at: number): void {
    const map: Map<string | number, LuaValue> = typeof key === "string" ? t.fields : t.indexed;
    if (map.has(key)) { this.pos = at; this.fail("duplicate table key"); }
    map.set(key, value);
  }

  private string(): Buffer {
    const out: number[] = [];
    const start = this.pos++; // "
    for (;;) {
      const b = this.src[this.pos];
      if (b === undefined || b === 0x0a || b === 0x0d) { this.pos = start; this.fail("unterminated string"); }
      if (b === 0x22) { this.pos++; return Buffer.from(out); }
      if (b < 0x20 || b === 0x7f) this.fail("control character in a string (Prosody escapes them)");
      if (b !== 0x5c) { out.push(b); this.pos++; continue; }
      out.push(this.escape());
    }
  }

  /** One escape sequence after a backslash; returns its byte. */
  private escape(): number {
    const start = this.pos;
    const c = this.src[++this.pos];
    if (c === undefined) this.fail("unterminated string at the end of the file");
    const single = ESCAPES[String.fromCharCode(c)];
    if (single !== undefined) { this.pos++; return single; }
    if (c === 0x78) { // \xXX: exactly two hex digits
      const [h1, h2] = [this.src[this.pos + 1], this.src[this.pos + 2]];
      if (!isHex(h1) || !isHex(h2)) { this.pos = start; this.fail("\\x needs two hexadecimal digits"); }
      this.pos += 3;
      return parseInt(String.fromCharCode(h1 as number, h2 as number), 16);
    }
    if (isDigit(c)) { // \ddd: up to three decimal digits, at most 255
      let n = 0;
      let digits = 0;
      while (digits < 3 && isDigit(this.src[this.pos])) { n = n * 10 + ((this.src[this.pos] as number) - 0x30); this.pos++; digits++; }
      if (n > 255) { this.pos = start; this.fail("decimal escape larger than 255"); }
      return n;
    }
    this.pos = start;
    return this.fail("unknown escape sequence in a string");
  }

  private number(): number {
    const start = this.pos;
    if (this.src[this.pos] === 0x2d) this.pos++;
    if (!isDigit(this.src[this.pos])) { this.pos = start; this.fail("expected a number"); }
    while (isDigit(this.src[this.pos])) this.pos++;
    if (this.src[this.pos] === 0x2e) {
      this.pos++;
      if (!isDigit(this.src[this.pos])) this.fail("expected a digit after '.'");
      while (isDigit(this.src[this.pos])) this.pos++;
    }
    if (this.src[this.pos] === 0x65 || this.src[this.pos] === 0x45) {
      this.pos++;
      if (this.src[this.pos] === 0x2b || this.src[this.pos] === 0x2d) this.pos++;
      if (!isDigit(this.src[this.pos])) this.fail("expected a digit in the exponent");
      while (isDigit(this.src[this.pos])) this.pos++;
    }
    if (isIdentPart(this.src[this.pos]) || this.src[this.pos] === 0x2e) this.fail("malformed number");
    if (this.pos - start > this.limits.maxNumberLength) { this.pos = start; this.fail("number literal too long"); }
    return Number(this.src.toString("latin1", start, this.pos));
  }

  /** The serializer's (1/0), (-1/0) and (0/0); no other parenthesis is data. */
  private special(): number {
    for (const [text, value] of Object.entries(SPECIALS)) {
      if (this.src.toString("latin1", this.pos, this.pos + text.length) === text) { this.pos += text.length; return value; }
    }
    return this.fail("an expression where a value belongs (only data is read)");
  }

  /** Consumes `w` if it is next and not followed by a name character. */
  private word(w: string): boolean {
    if (this.src.toString("latin1", this.pos, this.pos + w.length) !== w || isIdentPart(this.src[this.pos + w.length])) return false;
    this.pos += w.length;
    return true;
  }

  private skipSpace(): void {
    while (isSpace(this.src[this.pos])) this.pos++;
  }

  private fail(reason: string): never {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < this.pos && i < this.src.length; i++) {
      if (this.src[i] === 0x0a) { line++; lineStart = i + 1; }
    }
    throw new LuaDataError(reason, line, this.pos - lineStart + 1);
  }
}
