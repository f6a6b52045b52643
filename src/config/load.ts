/**
 * loadConfig: YAML file < command-line flags < MUCMUX_* environment variables, validated in one pass
 * so that every problem is reported at once.
 */
import { ConfigError } from "./errors.js";
import { describeIssues, errorMap } from "./issues.js";
import { leafIndex } from "./leaves.js";
import { configSchema, type Config } from "./schema.js";
import { CONFIG_ENV, fromEnv, fromFlags, isPlainObject, readConfigFile, type PlainObject } from "./sources.js";

export interface LoadOptions {
  /** YAML file (from --config). MUCMUX_CONFIG in `env` takes precedence, like every other env var. */
  readonly file?: string | undefined;
  /** Flag values keyed by dotted path ("upstream.port"), as returned by parseCli. */
  readonly flags?: Readonly<Record<string, string>> | undefined;
  /** Usually process.env; omitted means no environment at all (tests stay hermetic). */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Receives non-fatal findings, e.g. a MUCMUX_* variable that looks like a misspelt setting. */
  readonly onWarning?: ((message: string) => void) | undefined;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const { byPath, byEnv } = leafIndex();
  const env = opts.env ?? {};
  const file = env[CONFIG_ENV] || opts.file;
  const input: PlainObject = file ? readConfigFile(file) : {};

  const problems: string[] = [];
  const warnings: string[] = [];
  // Flags first, env second: a later set() wins, which gives env the last word.
  const overrides = [...fromFlags(opts.flags ?? {}, byPath, problems), ...fromEnv(env, byEnv, problems, warnings)];
  for (const w of warnings) opts.onWarning?.(w);
  const origins = new Map<string, string>();
  for (const o of overrides) {
    if (setAt(input, o.leaf.path.split("."), o.value)) origins.set(o.leaf.path, `by ${o.origin}`);
  }

  const result = configSchema.safeParse(input, { errorMap });
  if (!result.success) {
    const originOf = (path: readonly (string | number)[]) => {
      // The origin of listeners[0].port is that of listeners: look up the longest named prefix.
      const names = path.filter((s): s is string => typeof s === "string");
      for (let n = names.length; n > 0; n--) {
        const origin = origins.get(names.slice(0, n).join("."));
        if (origin) return origin;
      }
      return file ? `in ${file}` : undefined;
    };
    problems.push(...describeIssues(result.error.issues, input, originOf));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return deepFreeze(result.data);
}

/**
 * Sets a leaf, creating missing sections. If the file put a non-mapping where a section belongs, the
 * value is left alone so that validation reports the file's mistake instead of silently replacing it.
 */
function setAt(root: PlainObject, segments: readonly string[], value: unknown): boolean {
  let obj = root;
  for (const seg of segments.slice(0, -1)) {
    const next = obj[seg] ?? {};
    if (!isPlainObject(next)) return false;
    obj = obj[seg] = next;
  }
  const last = segments[segments.length - 1];
  if (last === undefined) return false;
  obj[last] = value;
  return true;
}

/** Config is shared by every part of the process: freezing it turns an accidental write into an error. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
