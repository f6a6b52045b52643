// docs/configuration.md must document every configuration key the schema has, with the flag, the
// environment variable and the default that --help derives from it, and must not name keys, flags or
// variables that no longer exist.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configLeaves } from "../../../src/config/index.js";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/configuration.md", import.meta.url)), "utf8");
const leaves = configLeaves();

/** The row of the key table whose first cell is `path`. */
function rowOf(path: string): string | undefined {
  return doc.split("\n").find((line) => line.startsWith(`| \`${path}\` |`));
}

describe("docs/configuration.md", () => {
  for (const leaf of leaves) {
    it(`documents ${leaf.path}`, () => {
      const row = rowOf(leaf.path);
      assert.ok(row, `no table row for ${leaf.path} in docs/configuration.md`);
      assert.ok(row.includes(`\`--${leaf.flag}\``), `row for ${leaf.path} lacks --${leaf.flag}`);
      assert.ok(row.includes(`\`${leaf.env}\``), `row for ${leaf.path} lacks ${leaf.env}`);
      // Structured defaults are rendered by hand in the same flow syntax; check the scalar ones exactly.
      if (leaf.kind !== "structured") {
        const shown = leaf.defaultText === "required" || leaf.defaultText === "unset" ? leaf.defaultText : `\`${leaf.defaultText}\``;
        assert.ok(row.includes(`| ${shown} |`), `row for ${leaf.path} does not show the default ${leaf.defaultText}`);
      }
      for (const choice of leaf.choices ?? []) {
        assert.ok(row.includes(`\`${choice}\``), `row for ${leaf.path} lacks the choice ${choice}`);
      }
    });
  }

  it("has no rows for keys the schema does not have", () => {
    const paths = new Set(leaves.map((l) => l.path));
    const table = doc.slice(doc.indexOf("## Keys"), doc.indexOf("\n## ", doc.indexOf("## Keys") + 1));
    const rows = [...table.matchAll(/^\| `([A-Za-z.]+)` \|/gm)].map((m) => m[1] as string);
    assert.ok(rows.length > 0, "key table not found under '## Keys'");
    for (const path of rows) {
      if (path.startsWith("MUCMUX_")) continue; // the table of other environment variables
      assert.ok(paths.has(path), `docs/configuration.md documents '${path}', which is not a config key`);
    }
  });

  it("names only flags and MUCMUX_* variables that exist", () => {
    const flags = new Set([...leaves.map((l) => `--${l.flag}`), "--config", "--help", "--version"]);
    // Flags written in code spans (`--upstream-port`, `--config FILE`); shell examples may quote other tools.
    for (const m of doc.matchAll(/`(--[a-z][a-z0-9-]*)/g)) {
      assert.ok(flags.has(m[1] as string), `docs/configuration.md mentions unknown flag ${m[1]}`);
    }
    // Besides the settings: MUCMUX_CONFIG and MUCMUX_COMMIT, and names quoted as examples of ignored variables.
    const vars = new Set([...leaves.map((l) => l.env), "MUCMUX_CONFIG", "MUCMUX_COMMIT", "MUCMUX_PORT",
      "MUCMUX_SERVICE_HOST", "MUCMUX_UPSTREAM_PROT", "MUCMUX_VAR"]);
    for (const m of doc.matchAll(/\bMUCMUX_[A-Z0-9_]*[A-Z0-9]/g)) {
      assert.ok(vars.has(m[0]), `docs/configuration.md mentions unknown variable ${m[0]}`);
    }
  });
});
