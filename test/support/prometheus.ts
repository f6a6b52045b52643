// A throwaway Prometheus server (Debian `prometheus`) on loopback: temporary TSDB, short scrape and rule
// evaluation intervals, stopped (and its directory removed) by stop() or, as a last resort, at exit.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.js";
import { commandExists, pidAlive, track, trackDir, untrack, untrackDir, within } from "./proc.js";
import { keepTmp } from "./server.js";

export interface PrometheusServer {
  readonly port: number;
  readonly dir: string;
  /** GET /api/v1/<path> with query parameters; resolves with `data`, rejects on an API error. */
  api<T = unknown>(apiPath: string, params?: Record<string, string>): Promise<T>;
  /** Instant query; resolves with the result vector (or scalar as one sample). */
  query(expr: string): Promise<Sample[]>;
  /** Polls `expr` until it returns at least one sample; rejects with the last result after timeoutMs. */
  waitFor(expr: string, timeoutMs?: number): Promise<Sample[]>;
  stop(): Promise<void>;
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusOptions {
  /** host:port targets of one job. */
  targets: string[];
  job?: string;
  /** Scrape and rule evaluation interval (default "1s"). */
  interval?: string;
  /** Rule files loaded by the server (absolute paths). */
  ruleFiles?: string[];
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusServer> {
  if (!(await commandExists("prometheus"))) {
    throw new Error("prometheus is not installed: run .ci/run or `apt-get install prometheus` (Debian)");
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mucmux-prometheus-"));
  trackDir(dir);
  const interval = opts.interval ?? "1s";
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [{ job_name: opts.job ?? "mucmux", static_configs: [{ targets: opts.targets }] }],
  };
  const configFile = path.join(dir, "prometheus.yml");
  fs.writeFileSync(configFile, stringify(config));
  const port = await freePort();
  const logFile = path.join(dir, "prometheus.log");
  const fd = fs.openSync(logFile, "a");
  const child = spawn("prometheus", [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    "--storage.tsdb.retention.time=1h",
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn",
  ], { detached: true, stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  const pid = child.pid ?? 0;
  let exited: string | undefined;
  const gone = new Promise((r) => child.once("exit", r));
  child.once("exit", (code, sig) => void (exited = `prometheus exited (${code ?? sig})`));
  child.once("error", (e) => void (exited = `prometheus failed to spawn: ${e.message}`));
  child.unref();
  if (pid) {
    track(pid, "prometheus");
    child.once("exit", () => untrack(pid));
  }
  const base = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (pid && pidAlive(pid)) {
      process.kill(pid, "SIGTERM");
      if (!(await within(gone, 10_000))) {
        process.kill(pid, "SIGKILL");
        await within(gone, 5000);
      }
    }
    if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ready) break;
    if (exited || Date.now() > deadline) {
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-3000) : "";
      await stop();
      throw new Error(`prometheus did not become ready: ${exited ?? "timeout"}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  async function api<T>(apiPath: string, params: Record<string, string> = {}): Promise<T> {
    const url = `${base}/api/v1/${apiPath}?${new URLSearchParams(params).toString()}`;
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== "success") throw new Error(`prometheus ${apiPath} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  async function query(expr: string): Promise<Sample[]> {
    const data = await api<{ resultType: string; result: unknown }>("query", { query: expr });
    if (data.resultType === "scalar") {
      const [, v] = data.result as [number, string];
      return [{ metric: {}, value: Number(v) }];
    }
    if (data.resultType !== "vector") throw new Error(`${expr}: unexpected result type ${data.resultType}`);
    return (data.result as { metric: Record<string, string>; value: [number, string] }[])
      .map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  return {
    port,
    dir,
    api,
    query,
    async waitFor(expr, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      let last: Sample[] = [];
      for (;;) {
        last = await query(expr);
        if (last.length > 0) return last;
        if (Date.now() > end) throw new Error(`prometheus: no result for ${expr} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    stop,
  };
}
