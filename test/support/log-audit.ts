// No secrets in logs (SPEC A3), over the whole suite. Every mucmux a test starts logs at trace
// level (the most verbose; mucmux has no trace calls today, so it equals debug) into a LogAudit, which
// scans each line as it arrives and keeps nothing but a line count and the first few violations:
//   - the test passwords: the default accounts' (server.ts), the canary's, any registered with
//     addTestSecret(), and every standalone `<localpart>pw` token (the suite's password convention:
//     `${user}pw`; mucmux never logs bare localparts, and a JID's `user@` is not standalone);
//   - any base64 token that decodes to a SASL PLAIN message (`[authzid]\0user\0password`), for any
//     account, and the base64 PLAIN payloads of the known passwords (also truncated);
//   - SCRAM messages in clear or base64: client-first (`n,,n=`), server-first (`r=…,s=…,i=`),
//     client-final (`c=biws,r=…,p=<proof>`) and server-final (`v=<signature>`).
// A violation names the line number, the kind of secret and the line with the secret replaced.
import { StringDecoder } from "node:string_decoder";
import { DEFAULT_USERS } from "./server.js";

/** The level every test mucmux runs at unless a test asks for another. */
export const AUDIT_LEVEL = "trace";

const MAX_VIOLATIONS = 5;
/** A partial line longer than this is scanned as it is (a runaway line must not grow without bound). */
const MAX_PARTIAL = 1 << 20;

const secrets = new Set<string>([...Object.values(DEFAULT_USERS), "canarypw"]);

/** Adds a password the audit must never find in a log line (for passwords outside the conventions). */
export function addTestSecret(password: string): void {
  if (password.length < 4 || secrets.has(password)) return;
  secrets.add(password);
  needles = undefined;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

let needles: string[] | undefined;

/**
 * Base64 of "\0<user>\0<password>" is no fixed string, but for each of the three alignments of the
 * password its middle is: base64 of "\0pw", "x\0pw" and "xx\0pw" without the characters that carry
 * bits of the bytes before the password, and without the last two (padding, truncation).
 */
function plainNeedles(): string[] {
  if (needles) return needles;
  needles = [];
  for (const pw of secrets) {
    for (const pad of ["", "x", "xx"]) {
      const enc = b64(`${pad}\0${pw}`);
      const tail = enc.slice(Math.ceil(((pad.length + 1) * 8) / 6)).replace(/=+$/, "").slice(0, -2);
      if (tail.length >= 6) needles.push(tail);
    }
  }
  return needles;
}

const PW_TOKEN = /(?<![A-Za-z0-9@._+/=-])[a-z][a-z0-9]{0,40}pw(?![A-Za-z0-9@._+/=-])/g;
const B64_TOKEN = /[A-Za-z0-9+/]{8,}={0,2}/g;
/** Non-empty text without control characters or U+FFFD (what invalid UTF-8 decodes to). */
const printable = (s: string): boolean =>
  s.length > 0 && [...s].every((ch) => { const c = ch.codePointAt(0) ?? 0; return c >= 0x20 && c !== 0x7f && c !== 0xfffd; });
const SCRAM_CLEAR: [RegExp, string][] = [
  [/(?:^|[^A-Za-z0-9])[nyp](?:=[^,]*)?,[^,]*,n=[^,]*,r=/, "SCRAM client-first message"],
  [/(?:^|[^A-Za-z0-9])r=[^,\s"]{8,},s=[A-Za-z0-9+/=]{4,},i=\d/, "SCRAM server-first message"],
  [/(?:^|[^A-Za-z0-9])c=[A-Za-z0-9+/=]{4,},r=[^,\s"]+,p=/, "SCRAM client-final message"],
  [/(?:^|[^A-Za-z0-9])c=biws/, "SCRAM channel-binding header (client-final)"],
  [/,p=[A-Za-z0-9+/]{20,}/, "SCRAM client proof"],
  [/(?:^|[^A-Za-z0-9])v=[A-Za-z0-9+/]{26,}={0,2}/, "SCRAM server signature (server-final)"],
];

/** What a decoded base64 token is, if it is a SASL message. */
function saslKind(decoded: string): string | undefined {
  const parts = decoded.split("\0");
  const [authzid = "", user = "", password = ""] = parts;
  if (parts.length === 3 && printable(user) && printable(password) && (authzid === "" || printable(authzid))) return "base64 SASL PLAIN payload";
  if (!printable(decoded)) return undefined;
  for (const [re, what] of SCRAM_CLEAR) if (re.test(decoded)) return `base64 ${what}`;
  return undefined;
}

function redact(line: string, found: readonly string[]): string {
  let shown = line;
  for (const secret of [...found].sort((a, b) => b.length - a.length)) shown = shown.split(secret).join("[SECRET]");
  return shown.length > 400 ? `${shown.slice(0, 400)}…` : shown;
}

/** The secrets one log line contains: [kind, the secret as found]. */
export function findSecrets(line: string): [string, string][] {
  const hits: [string, string][] = [];
  for (const pw of secrets) if (line.includes(pw)) hits.push([`test password (${pw.length} chars)`, pw]);
  for (const m of line.matchAll(PW_TOKEN)) if (!secrets.has(m[0])) hits.push(["password-shaped token <user>pw", m[0]]);
  for (const n of plainNeedles()) if (line.includes(n)) hits.push(["base64 PLAIN payload of a test password", n]);
  for (const m of line.matchAll(B64_TOKEN)) {
    const kind = saslKind(Buffer.from(m[0], "base64").toString("utf8"));
    if (kind) hits.push([kind, m[0]]);
  }
  for (const [re, what] of SCRAM_CLEAR) {
    const m = re.exec(line);
    if (m) hits.push([what, m[0]]);
  }
  return hits;
}

/** Audits that found secrets: reported again at exit, in case a caller swallowed the failure of stop(). */
const failed = new Set<LogAudit>();
let exitHooked = false;

/** Scans log output of one mucmux (in-process logger or child process) line by line. */
export class LogAudit {
  lines = 0;
  readonly violations: string[] = [];
  private partial = "";
  private more = 0;
  private readonly decoder = new StringDecoder("utf8"); // a chunk may end inside a character

  /** `label` says which mucmux this is (shown in failures); `echo` also writes every line (debugging). */
  constructor(readonly label: string, private readonly echo?: (line: string) => void) {
    hookExit();
  }

  /** Feed output as it arrives; chunks need not end at line boundaries. */
  write(chunk: string | Buffer): void {
    const text = this.partial + (typeof chunk === "string" ? chunk : this.decoder.write(chunk));
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const l of lines) this.scan(l);
    if (this.partial.length > MAX_PARTIAL) {
      this.scan(this.partial);
      this.partial = "";
    }
  }

  /** A pino destination writing into this audit. */
  get destination(): { write(s: string): void } {
    return { write: (s: string) => this.write(s) };
  }

  /** Scans the rest; throws when a line held a secret (the message names the line and the kind, redacted). */
  check(): void {
    this.partial += this.decoder.end();
    if (this.partial) this.scan(this.partial);
    this.partial = "";
    if (this.violations.length > 0) throw new Error(this.report());
  }

  report(): string {
    const extra = this.more > 0 ? `\n  … and ${this.more} more` : "";
    return `secrets in the log of ${this.label} (SPEC A3; ${this.lines} lines scanned):\n  ${this.violations.join("\n  ")}${extra}`;
  }

  private scan(line: string): void {
    if (line === "") return;
    this.lines++;
    this.echo?.(line);
    const hits = findSecrets(line);
    if (hits.length === 0) return;
    failed.add(this);
    if (this.violations.length >= MAX_VIOLATIONS) {
      this.more++;
      return;
    }
    const kinds = [...new Set(hits.map(([kind]) => kind))].join(", ");
    this.violations.push(`line ${this.lines}: ${kinds}: ${redact(line, hits.map(([, secret]) => secret))}`);
  }
}

/** A mucmux whose stop() was never reached (or whose failure a caller swallowed) still fails its test file. */
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once("exit", () => {
    for (const a of failed) {
      if (a.violations.length === 0) continue;
      process.stderr.write(`${a.report()}\n`);
      process.exitCode = 1;
    }
  });
}
