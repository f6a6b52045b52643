// parseCli and helpText, checked against the leaf list they are generated from.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { ConfigError, configLeaves, envName, flagName, helpText, loadConfig, parseCli } from "../../../src/config/index.js";

describe("names derived from leaf paths", () => {
  it("kebab-cases flags and upper-snake-cases env names", () => {
    assert.equal(flagName("limits.maxStanzaBytes"), "limits-max-stanza-bytes");
    assert.equal(envName("limits.maxStanzaBytes"), "MUCMUX_LIMITS_MAX_STANZA_BYTES");
    assert.equal(flagName("upstream.host"), "upstream-host");
    assert.equal(envName("domains"), "MUCMUX_DOMAINS");
  });

  it("covers every key with unique flags and env names", () => {
    const leaves = configLeaves();
    const paths = leaves.map((l) => l.path);
    for (const path of ["domains", "listeners", "tls.cert", "tls.key", "tls.reloadSeconds", "upstream.connectTimeoutSeconds",
      "admin.port", "store.path", "limits.maxBufferedBytes", "log.level", "drain.timeoutSeconds", "muc.historySize",
      "muc.lingerSeconds", "offline.localRegistration", "offline.maxPerAccount", "offline.maxPerRoom", "offline.ttlSeconds"]) {
      assert.ok(paths.includes(path), `missing leaf ${path}`);
    }
    assert.equal(new Set(leaves.map((l) => l.flag)).size, leaves.length);
    assert.equal(new Set(leaves.map((l) => l.env)).size, leaves.length);
    for (const leaf of leaves) assert.ok(leaf.description.length > 0, `${leaf.path} has no description`);
  });
});

describe("parseCli", () => {
  it("reads --name value and --name=value into dotted paths", () => {
    const cli = parseCli(["--config", "/etc/mucmux.yaml", "--upstream-host", "xmpp", "--limits-max-stanza-bytes=300000", "--domains", "a.test,b.test"]);
    assert.deepEqual(cli, {
      help: false,
      version: false,
      configFile: "/etc/mucmux.yaml",
      flags: { "upstream.host": "xmpp", "limits.maxStanzaBytes": "300000", domains: "a.test,b.test" },
    });
    assert.equal(loadConfig({ flags: cli.flags }).limits.maxStanzaBytes, 300000);
  });

  it("has -h/--help and -v/--version", () => {
    assert.deepEqual(parseCli(["-h"]), { help: true, version: false, flags: {} });
    assert.deepEqual(parseCli(["--help"]), { help: true, version: false, flags: {} });
    assert.equal(parseCli(["-v"]).version, true);
    assert.equal(parseCli(["--version"]).version, true);
    assert.equal("configFile" in parseCli([]), false);
  });

  it("lets a boolean flag stand alone or take a value", () => {
    assert.deepEqual(parseCli(["--upstream-verify"]).flags, { "upstream.verify": "true" });
    assert.deepEqual(parseCli(["--upstream-verify", "false", "--admin-port", "0"]).flags, { "upstream.verify": "false", "admin.port": "0" });
    assert.deepEqual(parseCli(["--upstream-verify", "--admin-port", "0"]).flags, { "upstream.verify": "true", "admin.port": "0" });
  });

  it("the last occurrence of a flag wins", () => {
    assert.deepEqual(parseCli(["--log-level", "debug", "--log-level=warn"]).flags, { "log.level": "warn" });
  });

  it("rejects unknown flags, missing values and stray arguments", () => {
    assert.throws(() => parseCli(["--upstream-hots", "x"]), (err: unknown) =>
      err instanceof ConfigError && err.message === "config: unknown flag --upstream-hots (did you mean --upstream-host?)");
    assert.throws(() => parseCli(["--upstream-host"]), /config: flag --upstream-host needs a value/);
    assert.throws(() => parseCli(["--upstream-host", "--admin-port", "1"]), /--upstream-host needs a value/);
    assert.throws(() => parseCli(["--config"]), /--config needs a value/);
    assert.throws(() => parseCli(["mucmux.yaml"]), /config: unexpected argument 'mucmux.yaml'/);
  });

  it("keeps its own rules where node:util parseArgs reads arguments differently", () => {
    assert.deepEqual(parseCli(["--upstream-verify=false", "--admin-port", "-1"]).flags, { "upstream.verify": "false", "admin.port": "-1" });
    assert.deepEqual(parseCli(["--upstream-verify", "TRUE"]).flags, { "upstream.verify": "TRUE" });
    assert.throws(() => parseCli(["--upstream-verify", "maybe"]), /config: unexpected argument 'maybe'/);
    assert.throws(() => parseCli(["-hv"]), /config: unexpected argument '-hv'/);
    assert.throws(() => parseCli(["--help=x"]), /^ConfigError: config: flag --help takes no value$/);
    assert.throws(() => parseCli(["--version=1"]), /config: flag --version takes no value/);
    assert.throws(() => parseCli(["-x"]), /config: unexpected argument '-x'/);
    assert.throws(() => parseCli(["--", "x"]), /config: unknown flag --$/);
  });

  it("accepts a flag for every leaf", () => {
    for (const leaf of configLeaves()) {
      assert.deepEqual(parseCli([`--${leaf.flag}=x`]).flags, { [leaf.path]: "x" });
    }
  });
});

describe("helpText", () => {
  const help = helpText();
  const lines = help.slice(help.indexOf("Settings:")).split("\n");

  it("lists every leaf flag on one line with its description and default", () => {
    for (const leaf of configLeaves()) {
      const line = lines.find((l) => l.trimStart().startsWith(`--${leaf.flag} `));
      if (line === undefined) assert.fail(`--${leaf.flag} missing from help`);
      assert.ok(line.includes(leaf.description), `--${leaf.flag}: description missing`);
      const fallback = leaf.defaultText === "required" ? "(required)" : `(default: ${leaf.defaultText})`;
      assert.ok(line.endsWith(fallback), `--${leaf.flag}: default missing in ${line}`);
    }
  });

  it("shows the defaults as they would be typed", () => {
    assert.match(help, /--upstream-port PORT +XMPP server client port \(default: 15222\)/);
    assert.match(help, /--domains LIST .*\(required\)/);
    assert.match(help, /--listeners YAML .*\(default: \[ \{ host: 0\.0\.0\.0, port: 5222, tls: starttls \}/);
    assert.match(help, /--tls-cert FILE .*\(default: unset\)/);
  });

  it("documents --config, --help, --version and the environment rule", () => {
    for (const flag of ["--config FILE", "-h, --help", "-v, --version", "MUCMUX_CONFIG", "MUCMUX_UPSTREAM_PORT"]) {
      assert.ok(help.includes(flag), `${flag} missing from help`);
    }
    assert.ok(help.endsWith("\n"));
  });

  it("every flag in the help is one parseCli accepts", () => {
    const flags = [...help.matchAll(/^ {2}(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1] ?? "");
    assert.equal(flags.length, configLeaves().length + 1);
    for (const flag of flags) {
      if (flag === "--config") continue;
      assert.doesNotThrow(() => parseCli([`${flag}=1`]));
    }
  });
});
