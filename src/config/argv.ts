/**
 * Command-line parsing and --help, both generated from the leaf list so that every config key has a
 * flag, and every flag is documented.
 */
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

const BOOLEAN_WORDS = new Set(["true", "false", "1", "0"]);

/** Accepts `--name value` and `--name=value`; a boolean flag alone means true. Throws ConfigError. */
export function parseCli(argv: readonly string[]): CliArgs {
  const { byFlag } = leafIndex();
  const out: CliArgs = { help: false, version: false, flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "-h" || arg === "--help") out.help = true;
    else if (arg === "-v" || arg === "--version") out.version = true;
    else if (!arg.startsWith("--")) throw new ConfigError(`config: unexpected argument '${arg}' (see --help)`);
    else {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const inline = eq === -1 ? undefined : arg.slice(eq + 1);
      const leaf = name === "config" ? undefined : byFlag.get(name);
      if (name !== "config" && !leaf) {
        const hint = suggest(name, [...byFlag.keys(), "config", "help", "version"]);
        throw new ConfigError(`config: unknown flag --${name}${hint ? ` (did you mean --${hint}?)` : ""}`);
      }
      const next = argv[i + 1];
      let value: string;
      if (inline !== undefined) value = inline;
      else if (leaf?.kind === "boolean") {
        // `--upstream-verify false` reads naturally; a bare `--upstream-verify` means true.
        value = next !== undefined && BOOLEAN_WORDS.has(next.toLowerCase()) ? (i++, next) : "true";
      } else if (next === undefined || next.startsWith("--")) {
        throw new ConfigError(`config: flag --${name} needs a value`);
      } else value = (i++, next);
      if (leaf) out.flags[leaf.path] = value;
      else out.configFile = value;
    }
  }
  return out;
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
