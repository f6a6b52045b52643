// deploy/Dockerfile and deploy/systemd/mucmux.service. The image cannot be built on the test machines (no
// container runtime): these checks read the Dockerfile against the Kubernetes manifests and the package.
// The unit is checked with `systemd-analyze verify` where systemd is installed.
import { after, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { loadConfig } from "../../../src/config/index.js";
import { ROOT } from "./promql.js";
import { requireTool, scratchDir, tool } from "./tools.js";

const scratch = scratchDir("container");
after(() => scratch.remove());

const dockerfile = readFileSync(path.join(ROOT, "deploy", "Dockerfile"), "utf8");
/** Instructions with continuation lines joined and comments dropped. */
const instructions = dockerfile.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const stages = instructions.reduce<string[][]>((acc, l) => {
  if (/^FROM\s/i.test(l)) acc.push([]);
  acc.at(-1)?.push(l);
  return acc;
}, []);
const final = stages.at(-1) ?? [];

describe("deploy/Dockerfile", () => {
  it("is multi-stage: the build stage compiles, the final stage copies only the result", () => {
    assert.ok(stages.length >= 2, "at least two stages");
    assert.match(stages[0]?.[0] ?? "", /^FROM node:20\S* AS build$/i);
    assert.ok(stages[0]?.some((l) => /npm ci/.test(l) && /npm prune --omit=dev/.test(l)), "build stage: npm ci (which runs prepare: tsc), then prune dev dependencies");
    assert.ok(final.some((l) => /^COPY --from=build .*\/dist /.test(l)));
    assert.ok(final.some((l) => /^COPY --from=build .*\/node_modules /.test(l)));
    assert.ok(!final.some((l) => /^RUN .*npm (ci|install)/.test(l)), "no install in the final stage");
    // the native module (better-sqlite3) must be built on the base it runs on
    assert.equal(final[0]?.replace(/^FROM\s+/i, ""), stages[0]?.[0]?.replace(/^FROM\s+/i, "").replace(/\s+AS\s+build$/i, ""));
  });

  it("runs as a numeric non-root user, the one the Kubernetes manifests declare", () => {
    const user = final.filter((l) => /^USER\s/i.test(l)).at(-1)?.replace(/^USER\s+/i, "");
    assert.match(user ?? "", /^\d+(:\d+)?$/, "numeric, so that runAsNonRoot can be verified");
    const [uid, gid] = (user ?? "").split(":");
    assert.notEqual(uid, "0");
    const deployment = readFileSync(path.join(ROOT, "deploy", "kubernetes", "base", "deployment.yaml"), "utf8");
    const d = parse(deployment) as { spec: { template: { spec: { initContainers: { name: string; securityContext: { runAsUser: number; runAsGroup: number } }[] } } } };
    const sc = d.spec.template.spec.initContainers.find((c) => c.name === "mucmux")?.securityContext;
    assert.equal(String(sc?.runAsUser), uid);
    if (gid) assert.equal(String(sc?.runAsGroup), gid);
  });

  it("starts bin/mucmux.js with the configuration path the manifests mount", () => {
    const entry = final.find((l) => /^ENTRYPOINT /.test(l));
    const cmd = final.find((l) => /^CMD /.test(l));
    assert.deepEqual(JSON.parse(entry?.slice("ENTRYPOINT ".length) ?? "null"), ["node", "/app/bin/mucmux.js"]);
    assert.ok(final.some((l) => /^WORKDIR \/app$/.test(l)));
    assert.deepEqual(JSON.parse(cmd?.slice("CMD ".length) ?? "null"), ["--config", "/etc/mucmux/config/mucmux.yaml"]);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string>; scripts: Record<string, string> };
    assert.equal(pkg.bin.mucmux, "bin/mucmux.js");
    assert.match(pkg.scripts.prepare ?? "", /tsc/, "npm ci builds dist/ through prepare");
    assert.ok(final.some((l) => /^EXPOSE 5222 5223 9464$/.test(l)));
  });

  it(".dockerignore lets in what the build copies, and nothing else", () => {
    const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    assert.equal(ignore[0], "**");
    const allowed = ignore.slice(1).map((l) => l.replace(/^!/, "").replace(/\/\*\*$/, ""));
    for (const l of instructions.filter((x) => /^COPY (?!--from)/.test(x))) {
      for (const src of l.split(/\s+/).slice(1, -1)) assert.ok(allowed.includes(src), `.dockerignore admits ${src}`);
    }
  });
});

describe("deploy/systemd/mucmux.service", () => {
  const unit = readFileSync(path.join(ROOT, "deploy", "systemd", "mucmux.service"), "utf8");
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(unit)?.[1];

  it("stops with SIGTERM within a timeout above the drain, reloads certificates with SIGHUP", () => {
    const drain = loadConfig({ file: path.join(ROOT, "deploy", "mucmux.example.yaml") }).drain.timeoutSeconds;
    assert.equal(value("KillSignal"), "SIGTERM");
    assert.ok(Number(value("TimeoutStopSec")) > drain, `TimeoutStopSec ${value("TimeoutStopSec")} > drain.timeoutSeconds ${drain}`);
    assert.equal(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert.match(value("ExecStart") ?? "", /bin\/mucmux\.js --config \/etc\/mucmux\/mucmux\.yaml$/);
  });

  it("runs unprivileged with a state directory for the store", () => {
    assert.equal(value("DynamicUser"), "yes");
    assert.equal(value("StateDirectory"), "mucmux");
    assert.equal(value("NoNewPrivileges"), "yes");
    assert.equal(value("ProtectSystem"), "strict");
    assert.equal(value("CapabilityBoundingSet"), "");
    assert.equal(value("MemoryDenyWriteExecute"), undefined, "V8's JIT needs writable executable memory");
  });

  it("passes systemd-analyze verify", async () => {
    await requireTool("systemd-analyze");
    // verify checks that ExecStart's program exists: use this machine's node
    const file = path.join(scratch.dir, "mucmux.service");
    writeFileSync(file, unit.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const r = await tool("systemd-analyze", ["verify", file], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.split("\n").filter((l) => l.includes("mucmux.service")).join("\n"), "", "no warnings about the unit");
  });
});
