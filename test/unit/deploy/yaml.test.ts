// Every YAML file the repository ships for operators is yamllint-clean (.yamllint.yaml, --strict).
import { before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readdirSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./promql.js";
import { requireTool, tool } from "./tools.js";

function yamlFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(rel);
    return /\.ya?ml$/.test(e.name) ? [rel] : [];
  });
}

before(() => requireTool("yamllint"));

describe("yamllint", () => {
  it("deploy/, grafana/ and .yamllint.yaml are clean", async () => {
    const files = [...yamlFiles("deploy"), ...yamlFiles("grafana"), ".yamllint.yaml"];
    assert.ok(files.length >= 15, files.join(" "));
    const r = await tool("yamllint", ["--strict", "-f", "parsable", "-c", ".yamllint.yaml", ...files], { cwd: ROOT });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("the configuration does catch problems", async () => {
    const r = await tool("yamllint", ["--strict", "-f", "parsable", "-c", ".yamllint.yaml", "-"], { cwd: ROOT, input: "a: 1\na: 2\nb:  [ x ]\n" });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /key-duplicates/);
  });
});
