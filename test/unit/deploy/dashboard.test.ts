// grafana/: the dashboard is provisionable from files (a datasource variable, no __inputs), has the job and
// instance variables, uses $__rate_interval, and keeps its rows in RED order with the MUC row last.
// (Its PromQL is parsed by promtool in prometheus.test.ts and run against a live scrape in
// test/integration/observability.test.ts.)
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { allPanels, dashboardExpressions, loadDashboard, metricNames, ROOT } from "./promql.js";

const d = loadDashboard();

describe("grafana/mucmux.json", () => {
  it("is provisionable from files: a datasource variable, no __inputs, a fixed uid", () => {
    assert.equal(d.__inputs, undefined, "no __inputs (that is the export-for-sharing format, which needs an import step)");
    assert.equal(d.uid, "mucmux");
    const ds = d.templating.list.find((v) => v.name === "datasource");
    assert.equal(ds?.type, "datasource");
    assert.equal((ds as unknown as { query?: string }).query, "prometheus");
    assert.doesNotMatch(JSON.stringify(d), /\$\{DS_[A-Z_]+\}/, "no ${DS_*} placeholders of an export");
  });

  it("every panel, target and variable queries ${datasource}", () => {
    for (const p of allPanels(d)) {
      if (p.type === "row") continue;
      assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, `panel ${p.title}`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has queries`);
      for (const t of p.targets ?? []) assert.deepEqual(t.datasource, { type: "prometheus", uid: "${datasource}" }, `panel ${p.title} ${t.refId}`);
    }
    for (const v of d.templating.list.filter((x) => x.type === "query")) {
      assert.deepEqual(v.datasource, { type: "prometheus", uid: "${datasource}" }, `variable ${v.name}`);
    }
  });

  it("has job and instance variables, and every query filters on both", () => {
    const names = d.templating.list.map((v) => v.name);
    assert.deepEqual(names, ["datasource", "job", "instance"]);
    for (const e of dashboardExpressions(d)) {
      const selectors = e.raw.match(/\{[^}]*\}/g) ?? [];
      const bare = metricNames(e.promql).length;
      assert.equal(selectors.length, bare, `${e.where}: every metric has a selector`);
      for (const s of selectors) {
        assert.ok(s.includes('job=~"$job"') && s.includes('instance=~"$instance"'), `${e.where}: ${s} filters on $job and $instance`);
      }
    }
  });

  it("rates use $__rate_interval (range panels) or $__range (stat panels)", () => {
    for (const e of dashboardExpressions(d)) {
      for (const m of e.raw.matchAll(/\b(rate|irate|increase)\([^[]*\[([^\]]+)\]/g)) {
        assert.ok(m[2] === "$__rate_interval" || (m[1] === "increase" && m[2] === "$__range"), `${e.where}: ${m[0]}`);
      }
    }
  });

  it("rows come in RED order: traffic, errors, latency, saturation, then MUC savings and the offline queue, then admission, then stream management, then replicas", () => {
    const rows = d.panels.filter((p) => p.type === "row").map((p) => p.title ?? "");
    assert.equal(rows.length, 8);
    assert.match(rows[0] ?? "", /^Traffic/);
    assert.match(rows[1] ?? "", /^Errors/);
    assert.match(rows[2] ?? "", /^Latency/);
    assert.match(rows[3] ?? "", /^Saturation/);
    assert.match(rows[4] ?? "", /^MUC/);
    assert.match(rows[5] ?? "", /^Admission/);
    assert.match(rows[6] ?? "", /^Stream management/);
    assert.match(rows[7] ?? "", /^Replicas/);
    // rows and panels are laid out top to bottom in that order
    const ys = d.panels.map((p) => p.gridPos?.y ?? -1);
    assert.deepEqual(ys, [...ys].sort((a, b) => a - b));
  });

  it("the MUC row shows what mucmux saves and the offline queue", () => {
    const start = d.panels.findIndex((p) => p.type === "row" && /^MUC/.test(p.title ?? ""));
    const muc = d.panels.slice(start + 1).flatMap((p) => p.targets ?? []).map((t) => t.expr ?? "").join("\n");
    for (const name of ["mucmux_muc_upstream_joins_saved_total", "mucmux_muc_upstream_copies_saved_total",
      "mucmux_muc_synthesized_joins_total", "mucmux_muc_fanout_deliveries_total", "mucmux_muc_fanout_recipients_bucket",
      "mucmux_offline_queue_depth", "mucmux_offline_messages_dropped_total"]) {
      assert.ok(muc.includes(name), `MUC row reads ${name}`);
    }
  });

  it("panel ids are unique and panels do not overlap", () => {
    const ids = allPanels(d).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const p of allPanels(d)) {
      const g = p.gridPos;
      assert.ok(g && g.x >= 0 && g.x + g.w <= 24, `panel ${p.title} fits the 24-column grid`);
      for (let y = g.y; y < g.y + g.h; y++) {
        for (let x = g.x; x < g.x + g.w; x++) {
          assert.ok(!cells.has(`${x},${y}`), `panel ${p.title} overlaps another at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it("the provisioning files point a file provider at the dashboard and a Prometheus data source", () => {
    const provider = parse(readFileSync(path.join(ROOT, "grafana", "provisioning", "dashboards", "mucmux.yaml"), "utf8")) as {
      apiVersion: number; providers: { type: string; options: { path: string } }[];
    };
    assert.equal(provider.apiVersion, 1);
    assert.equal(provider.providers[0]?.type, "file");
    assert.ok(provider.providers[0]?.options.path);
    const ds = parse(readFileSync(path.join(ROOT, "grafana", "provisioning", "datasources", "prometheus.yaml"), "utf8")) as {
      apiVersion: number; datasources: { type: string }[];
    };
    assert.equal(ds.apiVersion, 1);
    assert.equal(ds.datasources[0]?.type, "prometheus");
  });
});

describe("metricNames (the PromQL name extractor the checks rely on)", () => {
  it("finds metric names and skips functions, keywords, labels, strings and durations", () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"x|y",le!="1"}[5m] offset 1h)))'),
      ["a_bucket"]);
    assert.deepEqual(metricNames("sum(rate(x_total[1m])) / on (instance) group_left(version) y_info > bool 1e3"), ["x_total", "y_info"]);
    assert.deepEqual(metricNames("instance:foo:rate5m > 0.5 * instance:bar:rate5m unless on (job) baz == 0"),
      ["instance:foo:rate5m", "instance:bar:rate5m", "baz"]);
    assert.deepEqual(metricNames("absent(up{job=\"mucmux\"}) and time() - m < 14 * 86400"), ["up", "m"]);
    assert.deepEqual(metricNames("max without (le) (quantile_over_time(0.9, lag[10m:1m]))"), ["lag"]);
  });
});
