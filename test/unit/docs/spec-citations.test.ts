// docs/spec.md is the living specification. Every `SPEC X#` citation in src/, test/, bench/, docs/ and the
// README must name a rule that exists there (ranges such as `SPEC B1–B8` are expanded, lists such as
// `SPEC D2/D3, C7` split), and comments must say what they mean instead of citing issue numbers
// ("issue 6 item 9", "(#6)"): the issue tracker is not part of the repository, the spec is.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SELF = path.relative(ROOT, fileURLToPath(import.meta.url)).split(path.sep).join("/");
const spec = readFileSync(path.join(ROOT, "docs", "spec.md"), "utf8");

/** Repository-relative paths of the files under `dirs` (no node_modules, dist or dot directories). */
function filesUnder(dirs: readonly string[], ext: RegExp): string[] {
  const walk = (rel: string): string[] =>
    readdirSync(path.join(ROOT, rel), { withFileTypes: true }).flatMap((e) => {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) return e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".") ? [] : walk(child);
      return e.isFile() && ext.test(e.name) ? [child] : [];
    });
  return dirs.flatMap((d) => (d.includes(".") ? [d] : walk(d))).sort();
}

// ---- (a) SPEC citations ----------------------------------------------------------------------------

/** Rule ids of docs/spec.md: `B4` from "B4. …" at the start of a line, `D6b` from a "   b) …" item under D6. */
function specRules(text: string): { rules: Set<string>; sections: Set<string> } {
  const rules = new Set<string>();
  const sections = new Set<string>();
  let current: string | undefined;
  for (const line of text.split("\n")) {
    const section = /^## ([A-Z])\. /.exec(line);
    if (section) { sections.add(section[1] as string); current = undefined; continue; }
    const rule = /^([A-Z]\d+)\. /.exec(line);
    if (rule) { current = rule[1] as string; rules.add(current); continue; }
    const sub = /^\s+([a-z])\) /.exec(line);
    if (sub && current) rules.add(current + (sub[1] as string));
  }
  return { rules, sections };
}

const ID = String.raw`[A-Z]\d+[a-z]?`;
const SECTION = String.raw`[A-Z](?=[\s,;.)]|$)`;
/** A citation: `SPEC` and a list of ids, ranges (– or -) and section letters (`SPEC D`) joined by , / and or. */
const CITATION = new RegExp(String.raw`\bSPEC ((?:${ID}|${SECTION})(?:\s*(?:[,/–—-]|\band\b|\bor\b)\s*(?:${ID}|\d+[a-z]?|${SECTION}))*)`, "g");

/** The rule ids and section letters one citation names, ranges expanded (`B1–B3` → B1, B2, B3). */
function citedIds(list: string): string[] {
  const out: string[] = [];
  let prevLetter = "";
  // Split into items, keeping range dashes with their items: "B1–B5, B7" → ["B1–B5", "B7"].
  for (const item of list.split(/\s*(?:[,/]|\band\b|\bor\b)\s*/)) {
    const [from, to] = item.split(/\s*[–—-]\s*/) as [string, string | undefined];
    const a = /^([A-Z]?)(\d*)([a-z]?)$/.exec(from);
    if (!a) { out.push(from); continue; }
    const letter = a[1] || prevLetter;
    prevLetter = letter;
    if (to === undefined) { out.push(`${letter}${a[2]}${a[3]}`); continue; }
    const b = /^([A-Z]?)(\d+)([a-z]?)$/.exec(to);
    if (!b || !a[2]) { out.push(`${letter}${a[2]}${a[3]}`, to); continue; }
    const toLetter = b[1] || letter;
    const [lo, hi] = [Number(a[2]), Number(b[2])];
    if (toLetter !== letter || hi < lo || hi - lo > 50 || a[3] || b[3]) {
      out.push(`${letter}${a[2]}${a[3]}`, `${toLetter}${b[2]}${b[3]}`); // only the endpoints
    } else {
      for (let n = lo; n <= hi; n++) out.push(`${letter}${n}`);
    }
  }
  return out;
}

// ---- (b) issue numbers -----------------------------------------------------------------------------

/**
 * An issue citation: "issue 6", "Issue #6", "issues 6 and 7", "issue 6 item 9", "Issue 7's"; an issue's
 * item on its own, "item 10: …", "(item 12)", "item 5 and 12)" (in comments and in strings, which include
 * test titles); and "#6", "(#6, #7)" in code comments, "(#6)" in Markdown and Python lines (where a "#"
 * starts headings and comments). Not: character references (`&#9;`, `&#x1F;`), hex colours with a letter
 * or of six digits (`#1f77b4`, `#000000`), ports, RFC/XEP section numbers, `${a}#${b}`, "#3" in a string
 * (data such as a message body). A three-digit colour such as `#333` in a comment would be taken for an
 * issue: write colours with a letter, or outside comments.
 */
const ISSUE_WORD = /\bissues?\s*#?\d+\b/i;
const ISSUE_ITEM = /\bitems?\s+\d+(?:\s*(?:,|\band\b|\bor\b|&)\s*\d+)*\s*[:)]/i;
const ISSUE_HASH = /(?<![\w&#$}])#\d{1,5}(?![\w;])/;
const ISSUE_HASH_PAREN = /\(#\d{1,5}(?![\w;])/;

/** Where the text comes from: a code comment, a string literal, or a line of Markdown or Python. */
type PieceKind = "comment" | "string" | "line";

function citesIssue(text: string, kind: PieceKind): boolean {
  if (ISSUE_WORD.test(text) || ISSUE_ITEM.test(text)) return true;
  return kind === "comment" ? ISSUE_HASH.test(text) : kind === "line" && ISSUE_HASH_PAREN.test(text);
}

interface Piece { line: number; text: string; kind: PieceKind }

/** Comments and string/template literal texts of a TypeScript or JavaScript file, with their first line. */
function codePieces(file: string, text: string): Piece[] {
  const kind = /\.(m?js|cjs)$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const lineOf = (pos: number) => sf.getLineAndCharacterOfPosition(pos).line + 1;
  const pieces: Piece[] = [];
  const seen = new Set<number>();
  const addComments = (ranges: ts.CommentRange[] | undefined) => {
    for (const r of ranges ?? []) {
      if (seen.has(r.pos)) continue;
      seen.add(r.pos);
      // One piece per line, so that a hit names its own line inside a block comment.
      text.slice(r.pos, r.end).split("\n").forEach((l, i) => pieces.push({ line: lineOf(r.pos) + i, text: l, kind: "comment" }));
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isJSDoc(node)) return; // its text is a comment, collected as such
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) {
      pieces.push({ line: lineOf(node.getStart(sf)), text: node.text, kind: "string" });
    }
    const children = node.getChildren(sf);
    if (children.length === 0) {
      // A token: comments sit in the trivia before it (own lines) and after it (rest of its line).
      addComments(ts.getLeadingCommentRanges(text, node.pos));
      addComments(ts.getTrailingCommentRanges(text, node.end));
    }
    children.forEach(visit);
  };
  visit(sf);
  addComments(ts.getLeadingCommentRanges(text, sf.endOfFileToken.pos));
  return pieces;
}

/** `file:line: text` of every issue citation in the comments (and strings) of `files`. */
function issueCitations(files: readonly string[]): string[] {
  const hits: string[] = [];
  for (const file of files) {
    if (file === SELF) continue; // its examples are issue citations on purpose
    const text = readFileSync(path.join(ROOT, file), "utf8");
    const pieces: Piece[] = /\.(m?[jt]s|cjs)$/.test(file)
      ? codePieces(file, text)
      : text.split("\n").map((l, i) => ({ line: i + 1, text: l, kind: "line" as const }));
    for (const p of pieces) {
      if (citesIssue(p.text, p.kind)) hits.push(`${file}:${p.line}: ${text.split("\n")[p.line - 1]?.trim()}`);
    }
  }
  return [...new Set(hits)];
}

describe("docs/spec.md citations", () => {
  const { rules, sections } = specRules(spec);

  it("docs/spec.md has its numbered rules", () => {
    assert.deepEqual([...sections], ["A", "B", "C", "D", "E", "F", "G", "H"]);
    for (const id of ["A1", "A9", "B8", "C13", "D6", "D6a", "D6c", "D8", "E6"]) assert.ok(rules.has(id), `no rule ${id} found`);
  });

  it("the citation pattern reads lists and ranges", () => {
    const ids = (text: string) => [...text.matchAll(CITATION)].flatMap((m) => citedIds(m[1] as string));
    assert.deepEqual(ids("(SPEC B4)"), ["B4"]);
    assert.deepEqual(ids("SPEC B1–B3, B7; later SPEC D2/D3, C7 and SPEC D6b"), ["B1", "B2", "B3", "B7", "D2", "D3", "C7", "D6b"]);
    assert.deepEqual(ids("SPEC A7–A9, B, C"), ["A7", "A8", "A9", "B", "C"]);
    assert.deepEqual(ids("SPEC D5/D6a, C12"), ["D5", "D6a", "C12"]);
    assert.deepEqual(ids("SPEC E1 / issue 6"), ["E1"]);
    assert.deepEqual(ids("SPEC C5; its presence"), ["C5"]);
    assert.deepEqual(ids("SPEC C12-D2"), ["C12", "D2"]);
    assert.deepEqual(ids("SPEC B4/5"), ["B4", "B5"]);
    assert.deepEqual(ids("SPEC D (offline delivery); SPEC X# is a placeholder, SPEC Draft a word"), ["D"]);
  });

  it("every SPEC citation in src/, test/, bench/, docs/ and README.md names a rule of docs/spec.md", () => {
    const missing: string[] = [];
    let count = 0;
    for (const file of filesUnder(["src", "test", "bench", "docs", "README.md"], /\.(m?[jt]s|cjs|md|py)$/)) {
      readFileSync(path.join(ROOT, file), "utf8").split("\n").forEach((line, i) => {
        for (const m of line.matchAll(CITATION)) {
          for (const id of citedIds(m[1] as string)) {
            count++;
            const known = id.length === 1 ? sections.has(id) : rules.has(id);
            if (!known) missing.push(`${file}:${i + 1}: SPEC ${id} (in "${m[0]}")`);
          }
        }
      });
    }
    assert.ok(count > 100, `only ${count} citations found: is the pattern broken?`);
    if (missing.length > 0) assert.fail(`citations of rules that docs/spec.md does not have:\n  ${missing.join("\n  ")}`);
  });
});

describe("no issue numbers in comments", () => {
  it("the pattern matches issue citations and nothing else", () => {
    for (const hit of ["// Issue 6 item 9: slow peers", "(issue 7)", "issue #6", "Issue 7's targets", "issues 6 and 7",
      "per issue 12", "describe(\"item 10: connection caps", "(`x.test.ts`, item 5 and 12)", "(item 6)"]) {
      for (const kind of ["comment", "string", "line"] as const) assert.ok(citesIssue(hit, kind), `${hit} (${kind})`);
    }
    for (const hit of ["// fixed in #6", "(#6)", "(#6, #7)", "#12: old bug", "see #6."]) assert.ok(citesIssue(hit, "comment"), hit);
    assert.ok(citesIssue("the PROXY protocol (#11)", "line"));
    for (const miss of ["\"\\t\": \"&#9;\"", "<body>&#0;&#xD800;</body>", "colour #1f77b4 and #000000", "port 5222, :5223",
      "RFC 6120 §11, XEP-0045 §7.2.1", "`${e.name}#${e.attrs.id}`", "config issues.ts", "issue.code", "issues[0]",
      "SPEC B4 (the 3rd item of the list)", "items per page: 50", "a #hashtag", "#!/usr/bin/env node"]) {
      for (const kind of ["comment", "string", "line"] as const) assert.ok(!citesIssue(miss, kind), `${miss} (${kind})`);
    }
    // In strings a "#3" is data (a message body "from 1 #3"), in Markdown a heading, in Python a comment.
    assert.ok(!citesIssue("<body>from 1 #3</body>", "string"));
    assert.ok(!citesIssue("#3 is not a heading, # 3 neither", "line"));
  });

  it("no comment or string in src/, test/, bench/, scripts/ (nor a line of docs/, README.md) cites an issue number", () => {
    const files = filesUnder(["src", "test", "bench", "scripts", "docs", "README.md"], /\.(m?[jt]s|cjs|md|py)$/);
    assert.ok(files.length > 150, `only ${files.length} files found`);
    const hits = issueCitations(files);
    if (hits.length > 0) {
      assert.fail(`${hits.length} comments cite issue numbers; say what they mean, or cite the SPEC rule, instead:\n  ${hits.join("\n  ")}`);
    }
  });
});
