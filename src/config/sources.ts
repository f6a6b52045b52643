/**
 * The three layers of configuration, lowest first: the YAML file, then command-line flags, then
 * MUCMUX_* environment variables. Each layer yields plain values; schema.ts validates the merge.
 */
import { readFileSync } from "node:fs";
import { LineCounter, parse as parseYaml, parseDocument } from "yaml";
import { ConfigError } from "./errors.js";
import { suggest } from "./suggest.js";
import { ENV_PREFIX, type Leaf } from "./leaves.js";

/** One value set from a flag or environment variable, already coerced from its string form. */
export interface Override {
  readonly leaf: Leaf;
  readonly value: unknown;
  /** "--upstream-port" or "MUCMUX_UPSTREAM_PORT", for error messages. */
  readonly origin: string;
}

/** Names the config file, like --config; not a config key itself. */
export const CONFIG_ENV = `${ENV_PREFIX}CONFIG`;

export type PlainObject = Record<string, unknown>;

export const isPlainObject = (v: unknown): v is PlainObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads and parses the YAML file; every failure is a ConfigError naming the file (and line). */
export function readConfigFile(file: string): PlainObject {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ConfigError(`config: file not found: ${file}`);
    throw new ConfigError(`config: cannot read ${file}: ${(err as Error).message}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return `config: ${file}:${line}:${col}: YAML syntax error: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS(); // throws on alias bombs (maxAliasCount)
  } catch (err) {
    throw new ConfigError(`config: ${file}: ${(err as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw new ConfigError(`config: ${file}: must be a YAML mapping of settings`);
  return withoutNulls(value);
}

/** `tls:` or `cert: ~` in YAML means "not set", so an empty key falls back to its default. */
function withoutNulls(obj: PlainObject): PlainObject {
  const out: PlainObject = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === null) continue;
    out[k] = isPlainObject(v) ? withoutNulls(v) : v;
  }
  return out;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Turns a flag or env string into the leaf's type. A string that does not fit is passed through
 * unchanged so that validation reports it as it was typed ("got \"abc\"").
 */
export function coerce(leaf: Leaf, raw: string, origin: string): unknown {
  const trimmed = raw.trim();
  switch (leaf.kind) {
    case "integer":
    case "number":
      return NUMBER.test(trimmed) ? Number(trimmed) : raw;
    case "boolean": {
      const lower = trimmed.toLowerCase();
      if (lower === "true" || lower === "1") return true;
      if (lower === "false" || lower === "0") return false;
      return raw;
    }
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "structured":
      try {
        return parseYaml(raw); // JSON is YAML too, so both `[{"port":1}]` and `[{port: 1}]` work
      } catch (err) {
        throw new ConfigError(`config: ${leaf.path}: ${origin} is not valid YAML/JSON: ${(err as Error).message.split("\n")[0]}`);
      }
    default:
      return raw;
  }
}

/** Flags as produced by parseCli: keyed by dotted leaf path. */
export function fromFlags(flags: Readonly<Record<string, string>>, byPath: ReadonlyMap<string, Leaf>, problems: string[]): Override[] {
  const out: Override[] = [];
  for (const [path, raw] of Object.entries(flags)) {
    const leaf = byPath.get(path);
    if (!leaf) {
      problems.push(`config: unknown key '${path}' in flags`);
      continue;
    }
    collect(out, problems, leaf, raw, `--${leaf.flag}`);
  }
  return out;
}

/**
 * MUCMUX_* variables. An unknown one is only a warning: the namespace is shared with things mucmux
 * does not control — Kubernetes injects MUCMUX_PORT, MUCMUX_SERVICE_HOST, ... into every pod when a
 * Service is named "mucmux", and tooling sets e.g. MUCMUX_COMMIT or MUCMUX_TEST_*. (So never add a
 * top-level key named `port` or `service`.)
 */
export function fromEnv(
  env: NodeJS.ProcessEnv,
  byEnv: ReadonlyMap<string, Leaf>,
  problems: string[],
  warnings: string[],
): Override[] {
  const out: Override[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === CONFIG_ENV) continue;
    // Templating tools often render an unset value as "": treat it as not set rather than as empty.
    if (raw === undefined || raw === "") continue;
    const leaf = byEnv.get(name);
    if (!leaf) {
      const hint = suggest(name, [...byEnv.keys()]);
      if (hint) warnings.push(`config: ignoring unknown environment variable ${name} (did you mean ${hint}?)`);
      continue;
    }
    collect(out, problems, leaf, raw, name);
  }
  return out;
}

function collect(out: Override[], problems: string[], leaf: Leaf, raw: string, origin: string): void {
  try {
    out.push({ leaf, value: coerce(leaf, raw, origin), origin });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
}
