// The `users` rows of an SQL text dump as ejabberd 23.01's `ejabberdctl export2sql HOST FILE` writes it
// (src/ejd2sql.erl), read for SPEC A12 without executing anything. Per account ejabberd writes
//
//   delete from users where username='alice' and 0=0;
//   INSERT INTO users(username, password, serverkey, salt, iterationcount) VALUES ('alice', '…', '…', '…', 4096);
//
// (`server_host` joins the columns with new_sql_schema). Only `INSERT INTO users(…) VALUES (…)` statements are
// parsed, strictly; every other statement is split off at its `;` and skipped. String literals come in two
// escapings, chosen by the host's sql_type (ejabberd_sql:sql_query_to_iolist/2):
//   - backslash (sql_type mysql, pgsql, mssql, odbc — the default, so every Mnesia-only server): ejabberd_sql:escape/1,
//     `''` for a quote and \0 \n \t \b \r \" \\ for those characters;
//   - standard (sql_type sqlite): standard_escape/1, `''` for a quote and nothing else.
// Both only double quotes, so statements split the same way either way; only a backslash reads differently.

export type SqlEscapes = "backslash" | "standard";

export interface DumpRow {
  /** Column name (lower-cased) → value: a decoded string, or an integer. */
  values: Map<string, string | number>;
  /** 1-based line of the row's INSERT statement. */
  line: number;
}

export interface DumpRowError {
  line: number;
  reason: string;
}

export interface DumpResult {
  rows: DumpRow[];
  errors: DumpRowError[];
  /** The escaping the literals were read with. */
  escapes: SqlEscapes;
}

export class SqlDumpError extends Error {
  readonly code = "ERR_MUCMUX_SQL_DUMP";
}

/** Characters ejabberd_sql:escape/1 writes after a backslash, and what they stand for. */
const BACKSLASH_ESCAPES: Record<string, string> = { "0": "\0", n: "\n", t: "\t", b: "\b", r: "\r", '"': '"', "\\": "\\" };
/** Characters ejabberd_sql:escape/1 never leaves raw inside a literal. */
const NEVER_RAW_WITH_BACKSLASH = /[\0\n\t\b\r"]/;

interface Literal { raw: string; start: number }
type Token = { kind: "word"; text: string; pos: number } | { kind: "string"; lit: Literal; pos: number } |
  { kind: "number"; text: string; pos: number } | { kind: "punct"; text: string; pos: number };

interface Statement { tokens: Token[]; pos: number }

/**
 * Reads the users rows of a dump. `escapes` "auto" reads backslash escapes (what a server without SQL writes)
 * unless a literal somewhere in the file cannot have been written that way, which proves sqlite's standard
 * escaping. Throws SqlDumpError when the file as a whole cannot be read (not UTF-8, unterminated literal).
 */
export function readUsersFromDump(bytes: Buffer, escapes: SqlEscapes | "auto" = "auto"): DumpResult {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new SqlDumpError("not UTF-8 text");
  }
  const lines = lineIndex(text);
  const { inserts, standardOnly } = split(text, lines);
  const chosen = escapes === "auto" ? (standardOnly ? "standard" : "backslash") : escapes;
  const rows: DumpRow[] = [];
  const errors: DumpRowError[] = [];
  for (const st of inserts) {
    const line = lineOf(lines, st.pos);
    try {
      for (const values of insertRows(st, chosen)) rows.push({ values, line });
    } catch (err) {
      if (!(err instanceof SqlDumpError)) throw err;
      errors.push({ line, reason: err.message });
    }
  }
  return { rows, errors, escapes: chosen };
}

/** True when `raw` (a literal's text with '' still doubled) could have come from ejabberd_sql:escape/1. */
function backslashForm(raw: string): boolean {
  if (NEVER_RAW_WITH_BACKSLASH.test(raw)) return false;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== "\\") continue;
    if (BACKSLASH_ESCAPES[raw[i + 1] ?? ""] === undefined) return false;
    i++;
  }
  return true;
}

function isUsersInsert(tokens: readonly Token[]): boolean {
  const [a, b, c] = tokens;
  return a?.kind === "word" && a.text.toLowerCase() === "insert" && b?.kind === "word" && b.text.toLowerCase() === "into" &&
    c?.kind === "word" && unquoteIdent(c.text).toLowerCase() === "users";
}

/** `INSERT INTO users (c1, c2, …) VALUES (v1, v2, …)[, (…)]`: each row as column → value. */
function insertRows(st: Statement, escapes: SqlEscapes): Map<string, string | number>[] {
  let i = 3;
  const t = st.tokens;
  const isPunct = (tok: Token | undefined, text: string) => tok?.kind === "punct" && tok.text === text;
  const expect = (text: string) => {
    const tok = t[i];
    if (tok?.kind !== "punct" || tok.text !== text) throw new SqlDumpError(`INSERT INTO users: expected '${text}'`);
    i++;
  };
  expect("(");
  const columns: string[] = [];
  for (;;) {
    const tok = t[i++];
    if (tok?.kind !== "word") throw new SqlDumpError("INSERT INTO users: expected a column name");
    const name = unquoteIdent(tok.text).toLowerCase();
    if (columns.includes(name)) throw new SqlDumpError(`INSERT INTO users: column ${name} named twice`);
    columns.push(name);
    if (isPunct(t[i], ",")) { i++; continue; }
    break;
  }
  expect(")");
  const values = t[i++];
  if (values?.kind !== "word" || values.text.toLowerCase() !== "values") throw new SqlDumpError("INSERT INTO users: expected VALUES");
  const rows: Map<string, string | number>[] = [];
  for (;;) {
    expect("(");
    const row = new Map<string, string | number>();
    for (const [n, column] of columns.entries()) {
      if (n > 0) expect(",");
      const tok = t[i++];
      if (tok?.kind === "string") row.set(column, decodeLiteral(tok.lit.raw, escapes));
      else if (tok?.kind === "number") row.set(column, Number(tok.text));
      else throw new SqlDumpError(`INSERT INTO users: the value of ${column} is neither a string nor an integer`);
    }
    expect(")");
    rows.push(row);
    if (isPunct(t[i], ",")) { i++; continue; }
    break;
  }
  if (i !== t.length) throw new SqlDumpError("INSERT INTO users: unexpected text after the values");
  return rows;
}

function decodeLiteral(raw: string, escapes: SqlEscapes): string {
  const doubled = raw.replace(/''/g, "'");
  if (escapes === "standard") return doubled;
  let out = "";
  for (let i = 0; i < doubled.length; i++) {
    const c = doubled[i] as string;
    if (c !== "\\") { out += c; continue; }
    const e = BACKSLASH_ESCAPES[doubled[i + 1] ?? ""];
    if (e === undefined) throw new SqlDumpError("a string has a backslash sequence ejabberd does not write (try --ejabberd-sql-escapes standard)");
    out += e;
    i++;
  }
  return out;
}

const unquoteIdent = (s: string) => (/^(["`]).*\1$/.test(s) ? s.slice(1, -1) : s);

/**
 * Splits the dump into statements at `;` outside literals, dropping `--` comments, and keeps the users INSERTs.
 * Literals are kept raw (quotes doubled, backslashes as written). Only the tokens an INSERT needs are told
 * apart; anything else becomes a punct token of one character. `standardOnly`: some literal, in any statement,
 * cannot have been written by ejabberd_sql:escape/1.
 */
function split(text: string, lines: number[]): { inserts: Statement[]; standardOnly: boolean } {
  const out: Statement[] = [];
  let standardOnly = false;
  let tokens: Token[] = [];
  let start = -1;
  let i = 0;
  const push = (tok: Token) => { if (start < 0) start = tok.pos; tokens.push(tok); };
  const at = (re: RegExp) => { re.lastIndex = i; return re.exec(text)?.[0]; };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\n" || c === "\t" || c === "\r") { i++; continue; }
    if (c === "-" && text[i + 1] === "-") { const nl = text.indexOf("\n", i); i = nl < 0 ? text.length : nl + 1; continue; }
    if (c === ";") {
      if (tokens.length > 0 && isUsersInsert(tokens)) out.push({ tokens, pos: start });
      tokens = [];
      start = -1;
      i++;
      continue;
    }
    if (c === "'") {
      const from = i;
      let end = i + 1;
      for (;;) {
        end = text.indexOf("'", end);
        if (end < 0) throw new SqlDumpError(`line ${lineOf(lines, from)}: unterminated string literal`);
        if (text[end + 1] !== "'") break;
        end += 2;
      }
      const raw = text.slice(from + 1, end);
      standardOnly ||= !backslashForm(raw);
      push({ kind: "string", lit: { raw, start: from }, pos: from });
      i = end + 1;
      continue;
    }
    const word = at(WORD);
    if (word !== undefined) { push({ kind: "word", text: word, pos: i }); i += word.length; continue; }
    const num = at(INTEGER);
    if (num !== undefined) { push({ kind: "number", text: num, pos: i }); i += num.length; continue; }
    push({ kind: "punct", text: c, pos: i });
    i++;
  }
  if (tokens.length > 0 && isUsersInsert(tokens)) out.push({ tokens, pos: start });
  return { inserts: out, standardOnly };
}

const WORD = /[A-Za-z_][A-Za-z0-9_$.]*|"[^"\n]{0,128}"|`[^`\n]{0,128}`/y;
/** An integer an INSERT may hold (iterationcount); longer digit runs are not one (and not a value). */
const INTEGER = /-?\d{1,15}(?![\d.eE])/y;

function lineIndex(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/** 1-based line of offset `pos` (binary search over line starts). */
function lineOf(starts: number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}
