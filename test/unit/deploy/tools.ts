// The real tools the deployment checks run: promtool (Debian `prometheus`), yamllint, systemd-analyze.
import { execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { commandExists } from "../../support/proc.js";
import { TEST_TMP } from "../../support/certs.js";

const INSTALL: Record<string, string> = {
  promtool: "apt-get install prometheus (Debian; .ci/run installs it)",
  prometheus: "apt-get install prometheus (Debian; .ci/run installs it)",
  yamllint: "apt-get install yamllint (.ci/run installs it)",
  "systemd-analyze": "apt-get install systemd (.ci/run installs it)",
};

/** Fails (never skips) when a tool the checks rely on is missing, with the install hint. */
export async function requireTool(cmd: string): Promise<void> {
  if (!(await commandExists(cmd))) throw new Error(`${cmd} is not installed: ${INSTALL[cmd] ?? "install it"}`);
}

export interface ToolResult { code: number; stdout: string; stderr: string }

/** Runs a tool with a timeout and standard input closed; resolves with its exit code and output. */
export function tool(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`${cmd} ${args.join(" ")}: ${err.killed ? "timed out" : err.message}\n${stdout}${stderr}`));
          return;
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      });
    child.stdin?.end(opts.input ?? "");
  });
}

/** A scratch directory under test/.tmp (inside the checkout, so node_modules resolves from it). */
export function scratchDir(prefix: string): { dir: string; remove(): void } {
  mkdirSync(TEST_TMP, { recursive: true });
  const dir = mkdtempSync(path.join(TEST_TMP, `${prefix}-`));
  return { dir, remove: () => { if (process.env.MUCMUX_TEST_KEEP !== "1") rmSync(dir, { recursive: true, force: true }); } };
}
