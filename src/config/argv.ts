/**
 * Command-line parsing and --help, both generated from the leaf list so that every config key has a
 * flag, and every flag is documented. node:util's parseArgs splits the command line into tokens; the
 * rules below are mucmux's own (see parseCli).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "./errors.js";
import { suggest } from "./suggest.js";
import { configLeaves, leafIndex, type Leaf } from "./leaves.js";
import { CONFIG_ENV } from "./sources.js";

export interface CliArgs {
  help: boolean;
  version: boolean;
  configFile?: string;
  /** Values keyed by dotted config path ("upstream.port"), ready for loadConfig({ flags }). */
  flags: Record<string, string>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Token = ReturnType<typeof tokenize>[number];

const BOOLEAN_WORDS = new Set(["true", "false", "1", "0"]);

/** One parseArgs option per leaf (boolean leaves as booleans, so they never take the next argument). */
function tokenize(argv: readonly string[], leaves: Iterable<Leaf>) {
  const options: Options = {
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "v" },
  };
  for (const leaf of leaves) options[leaf.flag] = { type: leaf.kind === "boolean" ? "boolean" : "string" };
  return parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/**
 * Accepts `--name value` and `--name=value`; a boolean flag alone means true. Throws ConfigError at the
 * first bad argument. parseArgs runs with `strict: false` and every token is checked here, because its
 * strict mode refuses `--upstream-verify=false`, turns the `false` of `--upstream-verify false` into a
 * stray argument, and reports unknown flags in its own words, without a "did you mean".
 */
export function parseCli(argv: readonly string[]): CliArgs {
  const { byFlag } = leafIndex();
  const tokens = tokenize(argv, byFlag.values());
  const out: CliArgs = { help: false, version: false, flags: {} };
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t] as Token;
    const arg = argv[token.index] ?? "";
    if (token.kind === "option-terminator") throw unknownFlag("", byFlag); // `--`: no positionals to end
    if (token.kind === "positional") throw new ConfigError(`config: unexpected argument '${arg}' (see --help)`);
    const { name, value } = token;
    // rawName === arg: exactly -h, --help, -v or --version (not `-hv`, which parseArgs splits, nor `--help=x`).
    if ((name === "help" || name === "version") && token.rawName === arg) { out[name] = true; continue; }
    if ((name === "help" || name === "version") && token.inlineValue) throw new ConfigError(`config: flag ${token.rawName} takes no value`);
    if (!token.rawName.startsWith("--")) throw new ConfigError(`config: unexpected argument '${arg}' (see --help)`);
    const leaf = name === "config" ? undefined : byFlag.get(name);
    // Named as typed: parseArgs reads `--=x` as a flag named "=x", mucmux as an empty name with a value.
    if (name !== "config" && !leaf) throw unknownFlag(arg.slice(2).split("=", 1)[0] ?? "", byFlag);
    let text: string;
    if (token.inlineValue) text = value ?? "";
    else if (leaf?.kind === "boolean") {
      // `--upstream-verify false` reads naturally; a bare `--upstream-verify` means true. parseArgs left
      // the word after it as a positional: take it if it is a boolean word.
      const next = tokens[t + 1];
      text = next?.kind === "positional" && BOOLEAN_WORDS.has(next.value.toLowerCase()) ? (t++, next.value) : "true";
    } else if (value === undefined || value.startsWith("--")) {
      // parseArgs takes whatever follows a string option; a value that looks like a flag needs `=`.
      throw new ConfigError(`config: flag --${name} needs a value`);
    } else text = value;
    if (leaf) out.flags[leaf.path] = text;
    else out.configFile = text;
  }
  return out;
}

function unknownFlag(name: string, byFlag: ReadonlyMap<string, Leaf>): ConfigError {
  const hint = suggest(name, [...byFlag.keys(), "config", "help", "version"]);
  return new ConfigError(`config: unknown flag --${name}${hint ? ` (did you mean --${hint}?)` : ""}`);
}

function metavar(leaf: Leaf): string {
  switch (leaf.kind) {
    case "boolean": return "BOOL";
    case "enum": {
      // Long choice lists would widen the whole table; the description names them instead.
      const choices = (leaf.choices ?? []).join("|");
      return choices.length <= 22 ? choices : "CHOICE";
    }
    case "list": return "LIST";
    case "structured": return "YAML";
    case "integer": return /port$/i.test(leaf.path) ? "PORT" : "N";
    case "number": return /seconds$/i.test(leaf.path) ? "SECONDS" : "N";
    default: return /(cert|key|path)$/i.test(leaf.path) ? "FILE" : /host$/i.test(leaf.path) ? "HOST" : "TEXT";
  }
}

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join("\n");
}

/** Usage text: every flag with a one-line description and its default. Ends with a newline. */
export function helpText(): string {
  const options: [string, string][] = [
    ["--config FILE", `YAML configuration file (env ${CONFIG_ENV}) (default: none)`],
    ["-h, --help", "show this help and exit"],
    ["-v, --version", "print the version and exit"],
  ];
  const settings = configLeaves().map((leaf): [string, string] => {
    const fallback = leaf.defaultText === "required" ? "(required)" : `(default: ${leaf.defaultText})`;
    return [`--${leaf.flag} ${metavar(leaf)}`, `${leaf.description} ${fallback}`];
  });
  return [
    "Usage: mucmux [--config FILE] [--SETTING VALUE ...]",
    "       mucmux import-verifiers (--prosody-data DIR | --ejabberd-sqlite FILE | --ejabberd-sql FILE) [--host DOMAIN]",
    "              [--config FILE] [--store PATH]: copy the XMPP server's SCRAM verifiers into the store",
    "              (details: mucmux import-verifiers --help)",
    "       mucmux store-migrate [--from SQLITE_FILE] [--to postgres://...] [--config FILE] [--force]: copy the",
    "              SQLite store into PostgreSQL (details: mucmux store-migrate --help)",
    "",
    "Each setting is read from the YAML file, then from its flag, then from its environment variable;",
    "a later source overrides an earlier one. The variable is the flag in upper case with underscores,",
    "e.g. MUCMUX_UPSTREAM_PORT for --upstream-port. LIST is comma-separated; BOOL is true|false|1|0;",
    "YAML is a flow sequence such as '[{host: 0.0.0.0, port: 5222, tls: starttls}]'.",
    "",
    "Options:",
    table(options),
    "",
    "Settings:",
    table(settings),
    "",
  ].join("\n");
}
