// docs/metrics.md must document every mucmux_* metric createMetrics() registers, with its type and its
// labels, and must not name metrics that no longer exist; the default process/Node metrics it names must be
// registered, except the ones it says are left out, which must not be.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createMetrics, OMITTED_DEFAULT_METRICS } from "../../../src/metrics/metrics.js";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/metrics.md", import.meta.url)), "utf8");

interface Described { name: string; type: string; labelNames: readonly string[] }

/** What prom-client's metric objects carry at run time (its typings do not expose labelNames). */
interface RuntimeMetric {
  name: string;
  labelNames?: readonly string[];
  get(): Promise<{ type: unknown }>;
}

async function mucmuxMetrics(): Promise<Described[]> {
  const { registry } = createMetrics({ version: "0.0.0-test", commit: "test" });
  const out: Described[] = [];
  for (const metric of registry.getMetricsAsArray() as unknown as RuntimeMetric[]) {
    if (!metric.name.startsWith("mucmux_")) continue;
    const { type } = await metric.get();
    out.push({ name: metric.name, type: String(type), labelNames: metric.labelNames ?? [] });
  }
  return out;
}

describe("docs/metrics.md", () => {
  it("documents every mucmux_* metric with its type and labels", async () => {
    const metrics = await mucmuxMetrics();
    assert.ok(metrics.length > 0, "createMetrics registered no mucmux_* metric");
    const lines = doc.split("\n");
    for (const m of metrics) {
      const row = lines.find((line) => line.startsWith(`| \`${m.name}\` |`));
      assert.ok(row, `metric ${m.name} is missing from docs/metrics.md`);
      assert.ok(row.includes(`| ${m.type} |`), `docs/metrics.md gives ${m.name} another type than ${m.type}`);
      for (const label of m.labelNames) {
        assert.ok(row.includes(`\`${label}\``), `docs/metrics.md does not list label ${label} of ${m.name}`);
      }
    }
  });

  it("names no mucmux_* metric that does not exist", async () => {
    const names = new Set((await mucmuxMetrics()).map((m) => m.name));
    for (const match of doc.matchAll(/\bmucmux_[a-z0-9_]*[a-z0-9]/g)) {
      assert.ok(names.has(match[0]), `docs/metrics.md mentions ${match[0]}, which createMetrics does not register`);
    }
  });

  it("names default process_* and nodejs_* metrics as the registry has them", async () => {
    const { registry } = createMetrics({ version: "0.0.0-test", commit: "test" });
    const names = new Set(registry.getMetricsAsArray().map((m) => (m as unknown as RuntimeMetric).name));
    const named = [...doc.matchAll(/\b(?:process|nodejs)_[a-z0-9_]*[a-z0-9]/g)].map((m) => m[0]);
    assert.ok(named.includes("nodejs_active_handles"), "docs/metrics.md lists no default metric");
    for (const name of named) {
      if (OMITTED_DEFAULT_METRICS.includes(name)) {
        assert.ok(!names.has(name), `docs/metrics.md says ${name} is left out, but createMetrics registers it`);
      } else {
        assert.ok(names.has(name), `docs/metrics.md mentions ${name}, which createMetrics does not register`);
      }
    }
    for (const name of OMITTED_DEFAULT_METRICS) {
      assert.ok(named.includes(name), `docs/metrics.md does not say that ${name} is left out`);
    }
  });
});
