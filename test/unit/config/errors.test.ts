// Every kind of configuration error is a ConfigError whose message names the key and the problem.
import { after, before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig, type LoadOptions } from "../../../src/config/index.js";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "mucmux-config-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError's message, failing the test if loading succeeds or throws anything else. */
function failure(opts: LoadOptions): string {
  const err = thrown(() => loadConfig(opts));
  assert.equal(err.code, "ERR_MUCMUX_CONFIG");
  for (const line of err.message.split("\n")) assert.match(line, /^config: /);
  return err.message;
}

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const withDomain = (flags: Record<string, string>) => ({ flags: { domains: "a.test", ...flags } });

describe("value errors name the key path, the rule and the bad value", () => {
  it("a non-number from a flag", () => {
    assert.equal(
      failure(withDomain({ "upstream.port": "abc" })),
      'config: upstream.port: must be an integer between 0 and 65535 (got "abc"), set by --upstream-port',
    );
  });

  it("out of range and non-integer values", () => {
    assert.match(failure({ ...withDomain({}), env: { MUCMUX_ADMIN_PORT: "65536" } }),
      /^config: admin\.port: must be an integer between 0 and 65535 \(got 65536\), set by MUCMUX_ADMIN_PORT$/);
    assert.match(failure(withDomain({ "limits.maxDepth": "1.5" })), /^config: limits\.maxDepth: must be an integer >= 1 \(got 1\.5\)/);
    assert.match(failure(withDomain({ "drain.timeoutSeconds": "-1" })), /^config: drain\.timeoutSeconds: must be a number of seconds > 0/);
    assert.match(failure(withDomain({ "tls.reloadSeconds": "0" })), /^config: tls\.reloadSeconds: must be a number of seconds > 0/);
  });

  it("enums and booleans", () => {
    assert.match(failure(withDomain({ "upstream.tls": "ssl" })),
      /^config: upstream\.tls: must be one of none, starttls, direct \(got "ssl"\)/);
    assert.match(failure(withDomain({ "log.level": "loud" })), /^config: log\.level: must be one of trace, debug/);
    assert.match(failure(withDomain({ "upstream.verify": "yes" })), /^config: upstream\.verify: must be true or false \(got "yes"\)/);
  });

  it("values in the file say which file", () => {
    const path = file("bad-value.yaml", "domains: [a.test]\nupstream: { port: '5222' }\n");
    assert.equal(failure({ file: path }), `config: upstream.port: must be an integer between 0 and 65535 (got "5222"), set in ${path}`);
  });

  it("a scalar where a section belongs", () => {
    assert.match(failure({ file: file("scalar.yaml", "domains: [a.test]\nupstream: 5\n"), flags: { "upstream.host": "x" } }),
      /^config: upstream: must be a mapping \(got 5\)/);
  });
});

describe("unknown keys", () => {
  it("in a section, with a hint", () => {
    assert.match(failure({ file: file("typo.yaml", "domains: [a.test]\nupstream: { hots: x }\n") }),
      /^config: unknown key 'upstream\.hots' \(did you mean 'upstream\.host'\?\)/);
  });

  it("at the top level, and in a listener", () => {
    const message = failure({ file: file("top.yaml", "domains: [a.test]\nupstreams: {}\nlisteners: [{port: 1, TLS: direct}]\n") });
    assert.match(message, /unknown key 'upstreams' \(did you mean 'upstream'\?\)/);
    assert.match(message, /unknown key 'listeners\[0\]\.TLS' \(did you mean 'listeners\[0\]\.tls'\?\)/);
  });

  it("unknown flag paths", () => {
    assert.match(failure(withDomain({ "upstream.hots": "x" })), /unknown key 'upstream\.hots'/);
  });

  it("unknown environment variables only warn, and only when they look like a typo", () => {
    // Kubernetes service links (MUCMUX_PORT, MUCMUX_SERVICE_HOST) and tooling share the prefix.
    const warnings: string[] = [];
    const config = loadConfig({
      ...withDomain({}),
      env: { MUCMUX_UPSTREAM_HOTS: "x", MUCMUX_PORT: "tcp://10.0.0.1:5222", MUCMUX_SERVICE_HOST: "10.0.0.1", MUCMUX_COMMIT: "abc" },
      onWarning: (w) => warnings.push(w),
    });
    assert.equal(config.upstream.host, "127.0.0.1");
    assert.deepEqual(warnings, ["config: ignoring unknown environment variable MUCMUX_UPSTREAM_HOTS (did you mean MUCMUX_UPSTREAM_HOST?)"]);
  });
});

describe("rules across keys", () => {
  it("tls.cert and tls.key come together", () => {
    assert.match(failure(withDomain({ "tls.cert": "c.pem" })), /^config: tls\.key: is required when tls\.cert is set/);
    assert.match(failure(withDomain({ "tls.key": "k.pem" })), /^config: tls\.cert: is required when tls\.key is set/);
  });

  it("maxUnauthedStanzaBytes <= maxStanzaBytes", () => {
    assert.match(failure(withDomain({ "limits.maxStanzaBytes": "5000" })),
      /^config: limits\.maxUnauthedStanzaBytes: must not exceed limits\.maxStanzaBytes \(5000\)$/);
  });

  it("duplicate domains and listeners", () => {
    assert.match(failure({ flags: { domains: "a.test,A.test" } }), /^config: domains\[1\]: duplicates domains\[0\]/);
    assert.match(failure(withDomain({ listeners: "[{port: 5222}, {port: 5222}]" })),
      /^config: listeners\[1\]: duplicates listeners\[0\] \(0\.0\.0\.0:5222\)/);
  });
});

describe("domains and listeners", () => {
  it("domains are required, non-empty and valid", () => {
    assert.equal(failure({}), "config: domains: is required");
    assert.match(failure({ flags: { domains: "," } }), /^config: domains: must list at least one domain/);
    assert.match(failure({ flags: { domains: "a.test,bad_name" } }), /^config: domains\[1\]: must be a domain name .*\(got "bad_name"\)/);
  });

  it("muc.services lists domain names", () => {
    assert.equal(failure(withDomain({ "muc.services": "conference.a.test,muc.a.test:5222" })),
      'config: muc.services[1]: must be a domain name (ASCII/punycode, e.g. example.org) (got "muc.a.test:5222"), set by --muc-services');
    assert.match(failure({ file: file("muc-at.yaml", "domains: [a.test]\nmuc: { services: [room@conference.a.test] }\n") }),
      /^config: muc\.services\[0\]: must be a domain name .*\(got "room@conference\.a\.test"\), set in /);
    assert.match(failure({ file: file("muc-scalar.yaml", "domains: [a.test]\nmuc: { services: conference.a.test }\n") }),
      /^config: muc\.services: must be a list of domain names \(got "conference\.a\.test"\)/);
  });

  it("listeners need a port and a known tls mode", () => {
    const message = failure(withDomain({ listeners: "[{host: h}, {port: 1, tls: tls}]" }));
    assert.match(message, /^config: listeners\[0\]\.port: is required$/m);
    assert.match(message, /^config: listeners\[1\]\.tls: must be one of starttls, direct \(got "tls"\), set by --listeners$/m);
    assert.match(failure(withDomain({ listeners: "[]" })), /^config: listeners: must list at least one listener/);
    assert.match(failure(withDomain({ listeners: "{port: 1}" })), /^config: listeners: must be a list of listeners/);
    assert.match(failure(withDomain({ listeners: "[{port: 1" })), /^config: listeners: --listeners is not valid YAML\/JSON/);
  });
});

describe("file errors", () => {
  it("a missing file named explicitly", () => {
    const path = join(dir, "nope.yaml");
    assert.equal(failure({ file: path }), `config: file not found: ${path}`);
    assert.equal(failure({ env: { MUCMUX_CONFIG: path } }), `config: file not found: ${path}`);
  });

  it("YAML syntax errors give the line", () => {
    const path = file("syntax.yaml", "domains: [a.test]\nupstream:\n  host: x\n   port: 1\n");
    assert.match(failure({ file: path }), new RegExp(`^config: ${path.replace(/[.]/g, "\\.")}:3:9: YAML syntax error: `));
    assert.match(failure({ file: file("dup.yaml", "domains: [a.test]\ndomains: [b.test]\n") }), /dup\.yaml:2:1: YAML syntax error: .*unique/i);
  });

  it("a file that is not a mapping", () => {
    assert.match(failure({ file: file("list.yaml", "- a\n- b\n") }), /list\.yaml: must be a YAML mapping of settings/);
  });
});

it("reports every problem at once", () => {
  const err = thrown(() => loadConfig({ flags: { "upstream.port": "x", "admin.port": "-1", "upstream.hots": "" }, env: { MUCMUX_LISTENERS: "[" } }));
  assert.equal(err.problems.length, 5);
  for (const key of ["upstream.hots", "listeners", "upstream.port", "admin.port", "domains"]) assert.match(err.message, new RegExp(key));
});
