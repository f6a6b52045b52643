/**
 * The list of settable leaves, derived by walking the zod schema. Flag names, environment variable
 * names, string coercion and --help all come from this one list, so none of them can drift from the
 * schema: adding a key to schema.ts is all it takes to get its flag, its env var and its help line.
 */
import { stringify } from "yaml";
import { z } from "zod";
import { configSchema } from "./schema.js";

/** How a flag or env string becomes a value: `list` is comma-separated, `structured` is YAML flow. */
export type LeafKind = "string" | "integer" | "number" | "boolean" | "enum" | "list" | "structured";

export interface Leaf {
  /** Dotted path in the config, e.g. "limits.maxStanzaBytes". */
  readonly path: string;
  readonly kind: LeafKind;
  readonly description: string;
  /** Help-text rendering of the default: "required", "unset" or the value as it would be typed. */
  readonly defaultText: string;
  readonly choices?: readonly string[];
  /** "limits-max-stanza-bytes" (used as --limits-max-stanza-bytes). */
  readonly flag: string;
  /** "MUCMUX_LIMITS_MAX_STANZA_BYTES". */
  readonly env: string;
}

export const ENV_PREFIX = "MUCMUX_";

const words = (segment: string) => segment.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().split(" ");

export function flagName(path: string): string {
  return path.split(".").flatMap(words).join("-");
}

export function envName(path: string): string {
  return ENV_PREFIX + path.split(".").flatMap(words).join("_").toUpperCase();
}

interface Unwrapped {
  readonly inner: z.ZodTypeAny;
  readonly description: string | undefined;
  readonly hasDefault: boolean;
  readonly fallback: unknown;
  readonly optional: boolean;
}

/** Peel defaults, optionals and refinements off a schema, remembering what they said. */
function unwrap(schema: z.ZodTypeAny): Unwrapped {
  let inner = schema;
  let description = schema.description;
  let hasDefault = false;
  let fallback: unknown;
  let optional = false;
  for (;;) {
    description ??= inner.description;
    if (inner instanceof z.ZodDefault) {
      if (!hasDefault) fallback = (inner._def as z.ZodDefaultDef).defaultValue();
      hasDefault = true;
      inner = inner.removeDefault() as z.ZodTypeAny;
    } else if (inner instanceof z.ZodOptional) {
      optional = true;
      inner = inner.unwrap() as z.ZodTypeAny;
    } else if (inner instanceof z.ZodEffects) {
      inner = inner.innerType() as z.ZodTypeAny;
    } else {
      return { inner, description, hasDefault, fallback, optional };
    }
  }
}

function kindOf(schema: z.ZodTypeAny): { kind: LeafKind; choices?: readonly string[] } {
  if (schema instanceof z.ZodString) return { kind: "string" };
  if (schema instanceof z.ZodBoolean) return { kind: "boolean" };
  if (schema instanceof z.ZodNumber) return { kind: schema.isInt ? "integer" : "number" };
  if (schema instanceof z.ZodEnum) return { kind: "enum", choices: schema.options as string[] };
  if (schema instanceof z.ZodArray) {
    const element = unwrap(schema.element as z.ZodTypeAny).inner;
    return { kind: element instanceof z.ZodString ? "list" : "structured" };
  }
  throw new Error(`config schema: no string form for ${schema.constructor.name}`);
}

function renderDefault(u: Unwrapped, kind: LeafKind): string {
  if (!u.hasDefault) return u.optional ? "unset" : "required";
  const value = u.fallback;
  if (kind === "list" && Array.isArray(value)) return value.join(",");
  // Structured defaults are shown in the same flow syntax the flag accepts.
  if (kind === "structured") return stringify(value, { collectionStyle: "flow", lineWidth: 0 }).trim();
  return String(value);
}

/** Every leaf of the config, in schema order. Cheap enough to recompute; nothing is cached globally. */
export function configLeaves(): Leaf[] {
  const leaves: Leaf[] = [];
  const walk = (schema: z.ZodTypeAny, prefix: string[]) => {
    const u = unwrap(schema);
    if (u.inner instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(u.inner.shape as z.ZodRawShape)) walk(child, [...prefix, key]);
      return;
    }
    const path = prefix.join(".");
    const { kind, choices } = kindOf(u.inner);
    leaves.push({
      path,
      kind,
      description: u.description ?? "",
      defaultText: renderDefault(u, kind),
      ...(choices ? { choices } : {}),
      flag: flagName(path),
      env: envName(path),
    });
  };
  walk(configSchema, []);
  return leaves;
}

/** Leaves indexed by path, flag and env name, for the parsers. */
export function leafIndex(): { byPath: Map<string, Leaf>; byFlag: Map<string, Leaf>; byEnv: Map<string, Leaf> } {
  const leaves = configLeaves();
  return {
    byPath: new Map(leaves.map((l) => [l.path, l])),
    byFlag: new Map(leaves.map((l) => [l.flag, l])),
    byEnv: new Map(leaves.map((l) => [l.env, l])),
  };
}
