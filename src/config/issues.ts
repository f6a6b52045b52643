/**
 * Turns zod issues into one line per problem for operators:
 *   config: upstream.port: must be an integer between 0 and 65535 (got "abc"), set by --upstream-port
 *   config: unknown key 'upstream.hots' (did you mean 'upstream.host'?)
 */
import { z } from "zod";
import { configShape } from "./schema.js";
import { isPlainObject } from "./sources.js";
import { suggest } from "./suggest.js";

type Path = readonly (string | number)[];

export function formatPath(path: Path): string {
  return path.map((seg, i) => (typeof seg === "number" ? `[${seg}]` : i === 0 ? seg : `.${seg}`)).join("");
}

/** Messages for the containers, whose zod defaults ("Expected object, received number") read poorly. */
export const errorMap: z.ZodErrorMap = (issue, ctx) => {
  if (issue.code === z.ZodIssueCode.invalid_type) {
    if (issue.received === "undefined") return { message: "is required" };
    // zod consults this map last, with a schema's own message (if any) as the default: keep that one.
    if (!ctx.defaultError.startsWith("Expected ")) return { message: ctx.defaultError };
    if (issue.expected === "object") return { message: "must be a mapping" };
    if (issue.expected === "array") return { message: "must be a list" };
  }
  return { message: ctx.defaultError };
};

function valueAt(input: unknown, path: Path): unknown {
  let v = input;
  for (const seg of path) {
    if (Array.isArray(v) && typeof seg === "number") v = v[seg];
    else if (isPlainObject(v) && typeof seg === "string") v = v[seg];
    else return undefined;
  }
  return v;
}

function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Keys the schema allows in the object at `path`, for "did you mean" hints. */
function knownKeys(path: Path): string[] {
  let schema: z.ZodTypeAny = configShape;
  for (const seg of path) {
    schema = peel(schema);
    if (schema instanceof z.ZodObject && typeof seg === "string") schema = (schema.shape as z.ZodRawShape)[seg] ?? z.never();
    else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodTypeAny;
    else return [];
  }
  schema = peel(schema);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape as z.ZodRawShape) : [];
}

function peel(schema: z.ZodTypeAny): z.ZodTypeAny {
  if (schema instanceof z.ZodDefault) return peel(schema.removeDefault() as z.ZodTypeAny);
  if (schema instanceof z.ZodOptional) return peel(schema.unwrap() as z.ZodTypeAny);
  if (schema instanceof z.ZodEffects) return peel(schema.innerType() as z.ZodTypeAny);
  return schema;
}

export function describeIssues(
  issues: readonly z.ZodIssue[],
  input: unknown,
  originOf: (path: Path) => string | undefined,
): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === z.ZodIssueCode.unrecognized_keys) {
      const known = knownKeys(issue.path);
      return issue.keys.map((key) => {
        const hint = suggest(key, known);
        const where = originOf([...issue.path, key]);
        return `config: unknown key '${formatPath([...issue.path, key])}'${hint ? ` (did you mean '${formatPath([...issue.path, hint])}'?)` : ""}${where ? `, set ${where}` : ""}`;
      });
    }
    const value = valueAt(input, issue.path);
    const where = originOf(issue.path);
    const got = value === undefined ? "" : ` (got ${show(value)})${where ? `, set ${where}` : ""}`;
    return [`config: ${formatPath(issue.path)}: ${issue.message}${got}`];
  });
}
