// loadConfig: defaults, and the precedence YAML file < flags < MUCMUX_* environment.
import { after, before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configLeaves, loadConfig } from "../../../src/config/index.js";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "mucmux-config-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("loadConfig defaults", () => {
  it("fills every key but domains", () => {
    const config = loadConfig({ flags: { domains: "example.test" } });
    assert.deepEqual(config, {
      domains: ["example.test"],
      listeners: [
        { host: "0.0.0.0", port: 5222, tls: "starttls" },
        { host: "0.0.0.0", port: 5223, tls: "direct" },
      ],
      tls: { reloadSeconds: 10 },
      proxyProtocol: {},
      upstream: {
        host: "127.0.0.1", port: 15222, tls: "none", verify: true, connectTimeoutSeconds: 10,
        connectsPerSecond: 100, connectBurst: 200, connectWaitSeconds: 5, proxyProtocol: "off",
      },
      sasl: { scram: true, iterations: 10000, channelBinding: false, sasl2: true, fastTokenDays: 14 },
      sm: { enabled: true, resumeSeconds: 300, maxQueueStanzas: 5000, ackTimeoutSeconds: 60 },
      anchors: {},
      wakeup: { enabled: true, intervalSeconds: 60, maxPending: 1, includeBody: false },
      admin: { host: "127.0.0.1", port: 9464 },
      store: { path: "./mucmux.sqlite", poolSize: 10, timeoutSeconds: 5 },
      cluster: { host: "0.0.0.0", port: 5270, leaseSeconds: 10 },
      limits: {
        maxStanzaBytes: 262144, maxUnauthedStanzaBytes: 10000, handshakeSeconds: 30, maxDepth: 64,
        maxAttributes: 100, maxChildren: 20000, maxElements: 10000, maxBufferedBytes: 4194304, stanzaSeconds: 30, writeStallSeconds: 60,
        maxConnectionsPerIp: 0, connectsPerIpPerSecond: 0, authFailuresPerIp: 0, authFailureWindowSeconds: 300,
        tlsHandshakesPerTurn: 8, tlsHandshakeQueue: 4096, loginMsPerTurn: 5,
      },
      log: { level: "info" },
      drain: { timeoutSeconds: 10 },
      muc: { historySize: 50, lingerSeconds: 86400 },
      offline: { localRegistration: true, maxPerAccount: 1000, maxPerRoom: 200, ttlSeconds: 604800 },
    });
  });

  it("returns a deeply frozen object", () => {
    const config = loadConfig({ flags: { domains: "example.test" } });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.upstream) && Object.isFrozen(config.listeners[0]));
    assert.throws(() => { (config.upstream as { port: number }).port = 1; }, TypeError);
  });

  it("ignores process.env unless it is passed", () => {
    process.env.MUCMUX_UPSTREAM_PORT = "1";
    try {
      assert.equal(loadConfig({ flags: { domains: "example.test" } }).upstream.port, 15222);
    } finally {
      delete process.env.MUCMUX_UPSTREAM_PORT;
    }
  });
});

describe("loadConfig from a file", () => {
  it("reads the documented example", () => {
    const path = file("full.yaml", `
domains: [example.test, Chat.Example.Test]
listeners:
  - { host: 127.0.0.1, port: 5222, tls: starttls }
  - { host: 127.0.0.1, port: 5223, tls: direct }
tls: { cert: fullchain.pem, key: privkey.pem, reloadSeconds: 10 }
upstream: { host: 127.0.0.1, port: 15222, tls: none, verify: true, connectTimeoutSeconds: 10 }
admin: { host: 127.0.0.1, port: 0 }
store: { path: ":memory:" }
limits: { maxStanzaBytes: 262144, maxUnauthedStanzaBytes: 10000 }
log: { level: debug }
drain: { timeoutSeconds: 0.5 }
`);
    const config = loadConfig({ file: path });
    assert.deepEqual(config.domains, ["example.test", "chat.example.test"]); // domains are case-insensitive
    assert.equal(config.listeners[0]?.host, "127.0.0.1");
    assert.deepEqual(config.tls, { cert: "fullchain.pem", key: "privkey.pem", reloadSeconds: 10 });
    assert.equal(config.admin.port, 0);
    assert.equal(config.store.path, ":memory:");
    assert.equal(config.limits.maxDepth, 64);
    assert.equal(config.log.level, "debug");
    assert.equal(config.drain.timeoutSeconds, 0.5);
  });

  it("treats an empty file and empty sections as defaults", () => {
    assert.equal(loadConfig({ file: file("empty.yaml", ""), flags: { domains: "a.test" } }).upstream.port, 15222);
    const config = loadConfig({ file: file("nulls.yaml", "domains: [a.test]\ntls:\nupstream:\n  host: ~\n") });
    assert.equal(config.upstream.host, "127.0.0.1");
    assert.deepEqual(config.tls, { reloadSeconds: 10 });
  });

  it("fills listener fields other than port", () => {
    const config = loadConfig({ file: file("listener.yaml", "domains: [a.test]\nlisteners: [{port: 0}]\n") });
    assert.deepEqual(config.listeners, [{ host: "0.0.0.0", port: 0, tls: "starttls" }]);
  });
});

describe("precedence", () => {
  const base = () => file("base.yaml", "domains: [file.test]\nupstream: { host: file-host, port: 1 }\nlog: { level: warn }\n");

  it("flags override the file", () => {
    const config = loadConfig({ file: base(), flags: { "upstream.host": "flag-host" } });
    assert.equal(config.upstream.host, "flag-host");
    assert.equal(config.upstream.port, 1); // untouched keys keep the file's value
    assert.deepEqual(config.domains, ["file.test"]);
  });

  it("environment overrides flags and the file", () => {
    const config = loadConfig({
      file: base(),
      flags: { "upstream.host": "flag-host", "upstream.port": "2" },
      env: { MUCMUX_UPSTREAM_HOST: "env-host", MUCMUX_DOMAINS: "env.test", PATH: "/bin" },
    });
    assert.equal(config.upstream.host, "env-host");
    assert.equal(config.upstream.port, 2);
    assert.deepEqual(config.domains, ["env.test"]);
    assert.equal(config.log.level, "warn");
  });

  it("MUCMUX_CONFIG names the file and wins over --config", () => {
    const other = file("other.yaml", "domains: [other.test]\n");
    assert.deepEqual(loadConfig({ file: base(), env: { MUCMUX_CONFIG: other } }).domains, ["other.test"]);
  });

  it("an empty environment variable counts as unset", () => {
    assert.equal(loadConfig({ file: base(), env: { MUCMUX_UPSTREAM_HOST: "" } }).upstream.host, "file-host");
  });
});

describe("coercion of flag and environment strings", () => {
  it("coerces numbers, booleans, lists and structured values", () => {
    const config = loadConfig({
      flags: {
        domains: " a.test, b.test ,",
        "upstream.port": "5269",
        "upstream.verify": "0",
        "tls.reloadSeconds": "0.5",
        listeners: "[{host: 127.0.0.1, port: 5222, tls: starttls}]",
      },
      env: { MUCMUX_OFFLINE_LOCAL_REGISTRATION: "FALSE", MUCMUX_LIMITS_MAX_DEPTH: "16", MUCMUX_ADMIN_PORT: "0" },
    });
    assert.deepEqual(config.domains, ["a.test", "b.test"]);
    assert.equal(config.upstream.port, 5269);
    assert.equal(config.upstream.verify, false);
    assert.equal(config.tls.reloadSeconds, 0.5);
    assert.deepEqual(config.listeners, [{ host: "127.0.0.1", port: 5222, tls: "starttls" }]);
    assert.equal(config.offline.localRegistration, false);
    assert.equal(config.limits.maxDepth, 16);
    assert.equal(config.admin.port, 0);
  });

  it("muc.services: a list of domains from the file, a flag or the environment, lower-cased; unset by default", () => {
    assert.equal(loadConfig({ flags: { domains: "a.test" } }).muc.services, undefined);
    const path = file("muc.yaml", "domains: [a.test]\nmuc: { services: [Conference.A.Test, rooms.a.test] }\n");
    assert.deepEqual(loadConfig({ file: path }).muc.services, ["conference.a.test", "rooms.a.test"]);
    assert.deepEqual(loadConfig({ file: path, flags: { "muc.services": "chat.a.test" } }).muc.services, ["chat.a.test"]);
    assert.deepEqual(loadConfig({ file: path, env: { MUCMUX_MUC_SERVICES: "x.a.test, y.a.test" } }).muc.services, ["x.a.test", "y.a.test"]);
    assert.deepEqual(loadConfig({ flags: { domains: "a.test", "muc.services": "," } }).muc.services, []); // empty: discover
  });

  it("accepts JSON for structured values", () => {
    const config = loadConfig({ flags: { domains: "a.test" }, env: { MUCMUX_LISTENERS: '[{"port": 1, "tls": "direct"}]' } });
    assert.deepEqual(config.listeners, [{ host: "0.0.0.0", port: 1, tls: "direct" }]);
  });

  it("every leaf can be set from the environment and from a flag", () => {
    for (const leaf of configLeaves()) {
      assert.match(leaf.env, /^MUCMUX_[A-Z0-9_]+$/);
      assert.match(leaf.flag, /^[a-z0-9-]+$/);
    }
    const config = loadConfig({ flags: { domains: "a.test" }, env: { MUCMUX_LIMITS_MAX_STANZA_BYTES: "300000" } });
    assert.equal(config.limits.maxStanzaBytes, 300000);
  });
});
