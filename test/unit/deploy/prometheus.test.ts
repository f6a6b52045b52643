// deploy/prometheus with promtool (Debian `prometheus`): the rules load, their unit tests pass, the example
// scrape configuration is valid, and every PromQL expression of the rules and the dashboard parses.
import { after, before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse, stringify } from "yaml";
import { dashboardExpressions, loadRules, ROOT, RULES_FILE, RULES_TEST_FILE, ruleExpressions, variableSelectors } from "./promql.js";
import { requireTool, scratchDir, tool } from "./tools.js";

const scratch = scratchDir("promtool");
before(() => requireTool("promtool"));
after(() => scratch.remove());

describe("deploy/prometheus", () => {
  it("promtool check rules accepts mucmux.rules.yml", async () => {
    const r = await tool("promtool", ["check", "rules", RULES_FILE]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: \d+ rules found/);
  });

  it("promtool test rules passes mucmux.rules.test.yml", async () => {
    const r = await tool("promtool", ["test", "rules", path.basename(RULES_TEST_FILE)], { cwd: path.dirname(RULES_TEST_FILE) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  });

  it("every alert has a unit test that expects it to fire", () => {
    const tests = parse(readFileSync(RULES_TEST_FILE, "utf8")) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const fired = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
    const alerts = loadRules().groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
    assert.ok(alerts.length >= 10);
    for (const a of alerts) assert.ok(fired.has(a), `alert ${a} has no test case where it fires`);
  });

  it("the essential alerts exist, each with a severity, summary and description", () => {
    const rules = loadRules().groups.flatMap((g) => g.rules);
    for (const name of ["MucmuxDown", "MucmuxUpstreamUnreachable", "MucmuxAuthFailureSpike", "MucmuxClientParseErrorSpike",
      "MucmuxStreamErrorSpike", "MucmuxEventLoopLag", "MucmuxOfflineQueueGrowing", "MucmuxOfflineMessagesDropped",
      "MucmuxCertificateExpiringSoon"]) {
      const r = rules.find((x) => x.alert === name);
      assert.ok(r, `alert ${name}`);
      assert.match(r.labels?.severity ?? "", /^(critical|warning)$/, `${name} severity`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${name} summary and description`);
    }
    const cert = rules.find((x) => x.alert === "MucmuxCertificateExpiringSoon");
    assert.match(cert?.expr ?? "", /14 \* 86400/, "certificate alert at 14 days");
  });

  it("promtool check config accepts the example scrape configuration", async () => {
    const config = parse(readFileSync(path.join(ROOT, "deploy", "prometheus", "prometheus.yml"), "utf8")) as {
      rule_files: string[];
      scrape_configs: Record<string, unknown>[];
    };
    // Debian's promtool is built without Kubernetes service discovery: check everything else of that job.
    let swapped = 0;
    for (const job of config.scrape_configs) {
      if (job.kubernetes_sd_configs) {
        delete job.kubernetes_sd_configs;
        job.static_configs = [{ targets: ["127.0.0.1:9464"] }];
        swapped++;
      }
    }
    assert.equal(swapped, 1, "one Kubernetes job");
    for (const f of config.rule_files) copyFileSync(path.join(ROOT, "deploy", "prometheus", f), path.join(scratch.dir, f));
    const file = path.join(scratch.dir, "prometheus.yml");
    writeFileSync(file, stringify(config));
    const r = await tool("promtool", ["check", "config", file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const jobs = new Set(config.scrape_configs.map((j) => {
      const relabel = (j.relabel_configs ?? []) as { target_label?: string; replacement?: string }[];
      return relabel.find((x) => x.target_label === "job")?.replacement ?? j.job_name;
    }));
    assert.deepEqual([...jobs], ["mucmux"], "every job ends up as job=\"mucmux\", which the rules select");
  });

  it("every PromQL expression (dashboard and rules) parses: promtool check rules on generated recording rules", async () => {
    const exprs = [...dashboardExpressions(), ...variableSelectors(), ...ruleExpressions()];
    assert.ok(exprs.length > 50, `${exprs.length} expressions`);
    const rules = exprs.map((e, i) => ({ record: `check:expression_${i}`, expr: e.promql }));
    const file = path.join(scratch.dir, "generated.rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "generated", rules }] }));
    const r = await tool("promtool", ["check", "rules", file]);
    const bad = [...`${r.stdout}\n${r.stderr}`.matchAll(/expression_(\d+)/g)].map((m) => exprs[Number(m[1])]?.where);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${bad.join("\n")}`);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  });

  it("the generated check does catch a syntax error", async () => {
    const file = path.join(scratch.dir, "broken.rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "g", rules: [{ record: "check:x", expr: "sum(rate(foo[5m])" }] }] }));
    const r = await tool("promtool", ["check", "rules", file]);
    assert.notEqual(r.code, 0);
  });
});
