// The PromQL the repository ships: every expression of the Grafana dashboard and of the Prometheus rules,
// Grafana's variables replaced by concrete values, and the metric names each one reads.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const DASHBOARD_FILE = path.join(ROOT, "grafana", "mucmux.json");
export const RULES_FILE = path.join(ROOT, "deploy", "prometheus", "mucmux.rules.yml");
export const RULES_TEST_FILE = path.join(ROOT, "deploy", "prometheus", "mucmux.rules.test.yml");

export interface Expression {
  /** Where it comes from, for messages: `dashboard "Panel title" A`, `rule MucmuxDown`. */
  where: string;
  /** The expression as written. */
  raw: string;
  /** With Grafana's variables replaced, ready for Prometheus. */
  promql: string;
}

/** Values for the dashboard's variables: the test Prometheus scrapes mucmux with job="mucmux". */
const GRAFANA_VARS: Record<string, string> = {
  __rate_interval: "1m",
  __interval: "30s",
  __range: "1h",
  job: "mucmux",
  instance: ".+",
};

export function substituteGrafanaVars(expr: string): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => {
    const name = a ?? b ?? "";
    const value = GRAFANA_VARS[name];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in: ${expr}`);
    return value;
  });
}

export interface Panel {
  type: string;
  title?: string;
  id?: number;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: { refId?: string; expr?: string; datasource?: { type?: string; uid?: string } }[];
  panels?: Panel[];
}

export interface Variable {
  name: string;
  type: string;
  query?: unknown;
  definition?: string;
  datasource?: { type?: string; uid?: string };
}

export interface Dashboard {
  uid?: string;
  title?: string;
  __inputs?: unknown;
  templating: { list: Variable[] };
  panels: Panel[];
  [key: string]: unknown;
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
}

/** Every panel, rows' nested panels included, in document order. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardExpressions(d: Dashboard = loadDashboard()): Expression[] {
  const out: Expression[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.expr === undefined) continue;
      out.push({ where: `dashboard "${p.title ?? p.id}" ${t.refId ?? "?"}`, raw: t.expr, promql: substituteGrafanaVars(t.expr) });
    }
  }
  return out;
}

/** The metric selectors inside the dashboard's `label_values(selector, label)` variable queries. */
export function variableSelectors(d: Dashboard = loadDashboard()): Expression[] {
  const out: Expression[] = [];
  for (const v of d.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query as { query?: string } | undefined)?.query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q ?? "");
    if (!m?.[1]) throw new Error(`variable ${v.name}: expected label_values(selector, label), got ${String(q)}`);
    out.push({ where: `dashboard variable ${v.name}`, raw: m[1], promql: substituteGrafanaVars(m[1]) });
  }
  return out;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: { record?: string; alert?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[];
}

export function loadRules(): { groups: RuleGroup[] } {
  return parse(readFileSync(RULES_FILE, "utf8")) as { groups: RuleGroup[] };
}

export function ruleExpressions(rules = loadRules()): Expression[] {
  return rules.groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `rule ${r.record ?? r.alert ?? "?"}`, raw: r.expr, promql: r.expr })));
}

export function recordedNames(rules = loadRules()): Set<string> {
  return new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
}

// Aggregation operators, binary operators and modifiers: identifiers that are not metric names.
const KEYWORDS = new Set([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
  "limitk", "limit_ratio", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
  "unless", "offset", "atan2", "inf", "nan",
]);

/**
 * Metric names an expression reads. A small lexer, enough for the PromQL this repository writes: strings,
 * label matchers, range/subquery brackets and grouping label lists are blanked out first; then every
 * identifier not followed by "(" (a function or an aggregation) and not a keyword is a metric name.
 * Names inside `{__name__="..."}` are not supported (and not used).
 */
export function metricNames(expr: string): string[] {
  if (/__name__/.test(expr)) throw new Error(`__name__ matchers are not supported: ${expr}`);
  let s = expr.replace(/#[^\n]*/g, " ");
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\{[^{}]*\}/g, " ");
  s = s.replace(/\[[^\][]*\]/g, " ");
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/gi, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*|\d[\w.]*/g)) {
    const token = m[0];
    if (/^\d/.test(token)) continue; // number or duration
    if (KEYWORDS.has(token.toLowerCase())) continue;
    if (/^\s*\(/.test(s.slice((m.index ?? 0) + token.length))) continue; // function call
    names.add(token);
  }
  return [...names];
}

/**
 * Names a Prometheus scrape of this exposition text produces: every `# TYPE` family, with the
 * `_bucket`/`_sum`/`_count` (histogram) and `_sum`/`_count` (summary) series.
 */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
    const [, name = "", type] = m;
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  for (const m of text.matchAll(/^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/gm)) names.add(m[1] ?? "");
  return names;
}
