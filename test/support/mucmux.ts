// Start mucmux in-process for integration tests, on ephemeral ports, in front of a given upstream; or as
// a real process (src/main.ts through tsx) on the ports of a config file. Either way it logs at trace
// level into a LogAudit, and stop() fails when a log line held a secret (SPEC A3).
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config/index.js";
import { createApp, type App, type AppOptions } from "../../src/app.js";
import { createLogger } from "../../src/log.js";
import { testCertificate } from "./certs.js";
import { TEST_TMP } from "./certs.js";
import { mkdirSync } from "node:fs";
import { stringify } from "yaml";
import { AUDIT_LEVEL, LogAudit } from "./log-audit.js";
import { waitForPort } from "./ports.js";
import { track, untrack } from "./proc.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** MUCMUX_TEST_LOG=<level>: run test mucmux instances at that level and echo their lines to stderr. */
const ECHO_LEVEL = process.env.MUCMUX_TEST_LOG;
const echo = ECHO_LEVEL ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
let instances = 0;

export interface TestMucmux {
  app: App;
  starttlsPort: number;
  directPort: number;
  adminPort: number;
  configFile: string;
  /** The secret audit of its log lines (SPEC A3), checked by stop(). */
  audit: LogAudit;
  /** Drains; throws when a log line held a secret. */
  stop(): Promise<void>;
}

export interface MucmuxOptions {
  upstreamPort: number;
  domains?: string[];
  /** Config sections merged over the generated ones (e.g. { limits: { handshakeSeconds: 1 } }). */
  extra?: Record<string, Record<string, unknown>>;
  /** Default: trace (audited for secrets), or MUCMUX_TEST_LOG. */
  logLevel?: string;
  /** The SQLite store file (default: a fresh one in the instance's directory); reuse it to restart mucmux. */
  storePath?: string;
  /** In-process only: the stage list (e.g. a probe stage around the configured stages). */
  stages?: AppOptions["stages"];
  /** PostgreSQL shared by several replicas (store.url): turns the cluster on; `cluster` must then name the TLS files. */
  storeUrl?: string;
  /** The cluster section (with storeUrl): the internal mTLS listener, its certificates, the replica's name, leases. */
  cluster?: ClusterOptions;
}

export interface ClusterOptions {
  host?: string;
  port?: number;
  advertise?: string;
  cert: string;
  key: string;
  ca: string;
  replicaId?: string;
  leaseSeconds?: number;
}

/** Writes a config file for mucmux in front of `upstreamPort`; used in-process and for real processes. */
export function writeTestConfig(opts: MucmuxOptions & { ports?: { starttls: number; direct: number; admin: number } }): string {
  mkdirSync(TEST_TMP, { recursive: true });
  const dir = mkdtempSync(path.join(TEST_TMP, "mucmux-"));
  const cert = testCertificate();
  const p = opts.ports ?? { starttls: 0, direct: 0, admin: 0 };
  const config: Record<string, unknown> = {
    domains: opts.domains ?? ["localhost"],
    listeners: [
      { host: "127.0.0.1", port: p.starttls, tls: "starttls" },
      { host: "127.0.0.1", port: p.direct, tls: "direct" },
    ],
    tls: { cert: cert.certFile, key: cert.keyFile },
    upstream: { host: "127.0.0.1", port: opts.upstreamPort, tls: "none", connectTimeoutSeconds: 5 },
    admin: { host: "127.0.0.1", port: p.admin },
    // (store.path is unused with store.url; it stays in the instance's directory all the same.)
    store: { path: opts.storePath ?? path.join(dir, "mucmux.sqlite"), ...(opts.storeUrl ? { url: opts.storeUrl } : {}) },
    ...(opts.cluster ? { cluster: { ...opts.cluster } } : {}),
    log: { level: opts.logLevel ?? ECHO_LEVEL ?? AUDIT_LEVEL },
  };
  for (const [section, values] of Object.entries(opts.extra ?? {})) {
    config[section] = { ...(config[section] as Record<string, unknown> | undefined), ...values };
  }
  const file = path.join(dir, "mucmux.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

/** One sample of a metric from /metrics (0 when absent); `labels` as written, e.g. `reason="ttl"`. */
export async function metric(adminPort: number, name: string, labels?: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\}` : ""} (\\S+)$`, "m");
  return Number(re.exec(text)?.[1] ?? 0);
}

export async function startMucmux(opts: MucmuxOptions): Promise<TestMucmux> {
  const configFile = writeTestConfig(opts);
  const config = loadConfig({ file: configFile });
  const audit = new LogAudit(`in-process mucmux #${++instances} (${configFile})`, echo);
  const app = createApp({
    config, log: createLogger(config.log.level, audit.destination), build: { version: "test", commit: "test" },
    ...(opts.stages ? { stages: opts.stages } : {}),
  });
  await app.start();
  const port = (mode: string) => app.listeners.find((l) => l.spec.tls === mode)?.port ?? 0;
  return {
    app,
    configFile,
    audit,
    starttlsPort: port("starttls"),
    directPort: port("direct"),
    adminPort: app.adminPort ?? 0,
    stop: async () => {
      await app.drain();
      if (process.env.MUCMUX_TEST_KEEP !== "1") rmSync(path.dirname(configFile), { recursive: true, force: true });
      audit.check();
    },
  };
}

export interface MucmuxProcess {
  readonly pid: number;
  /** SIGTERM and wait for the exit code (SPEC E6); throws when the log held a secret. */
  stop(): Promise<number | null>;
  /** SIGKILL (idempotent); throws when the log held a secret. */
  kill(): void;
  /** The last 256 KiB of its standard output and error. */
  output(): string;
}

const OUTPUT_KEPT = 256 << 10;

/** A started mucmux child process, not yet known to be listening (tests that kill it at random points use this). */
export interface MucmuxChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Exit code once the process has exited and its output has been read to the end (audited). */
  readonly exited: Promise<number | null>;
  /** The last 256 KiB of its standard output and error. */
  output(): string;
  /** Throws when a line of its log held a secret (test/support/log-audit.ts). */
  checkLog(): void;
}

/** Starts mucmux (src/main.ts through tsx) with `configFile`; every line it writes is audited for secrets. */
export function spawnMucmuxChild(configFile: string): MucmuxChild {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "main.ts"), "--config", configFile], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid ?? 0;
  if (pid) {
    track(pid, "mucmux"); // SIGKILLed if the test process dies first
    child.once("exit", () => untrack(pid));
  }
  const audit = new LogAudit(`mucmux process ${pid} (${configFile})`, echo);
  let out = "";
  const take = (d: Buffer) => {
    audit.write(d);
    out += d.toString("utf8");
    if (out.length > 2 * OUTPUT_KEPT) out = out.slice(-OUTPUT_KEPT);
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  // "close", not "exit": the audit must have seen the last lines.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, pid, exited, output: () => out.slice(-OUTPUT_KEPT), checkLog: () => audit.check() };
}

/** mucmux as a real process (src/main.ts through tsx) on the ports of `configFile`; ready once `directPort` accepts. */
export async function spawnMucmuxProcess(configFile: string, directPort: number): Promise<MucmuxProcess> {
  const { child, pid, exited, output, checkLog } = spawnMucmuxChild(configFile);
  try {
    await waitForPort(directPort, { timeoutMs: 30_000, failed: () => (child.exitCode !== null ? `mucmux exited:\n${output()}` : undefined) });
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    pid,
    stop: async () => {
      child.kill("SIGTERM");
      const code = await exited;
      checkLog();
      return code;
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      checkLog();
    },
    output,
  };
}
