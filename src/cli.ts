// Command line: flags, config load, start, signals (SIGTERM drain, SPEC E6).
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { loadConfig, parseCli, helpText, ConfigError } from "./config/index.js";
import { createLogger } from "./log.js";
import { createApp } from "./app.js";
import { importVerifiersCommand } from "./sasl/import/command.js";
import { storeMigrateCommand } from "./store/migrate-command.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

function commit(): string {
  if (process.env.MUCMUX_COMMIT) return process.env.MUCMUX_COMMIT;
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return "unknown";
  }
}

/**
 * Runs mucmux; resolves with the exit code once it has stopped (or at once for --help/--version/errors). The
 * subcommands run instead: `import-verifiers` (src/sasl/import/command.ts) and `store-migrate`
 * (src/store/migrate-command.ts).
 */
export async function main(argv: string[]): Promise<number> {
  const io = { stdout: (t: string) => void process.stdout.write(t), stderr: (t: string) => void process.stderr.write(t), env: process.env };
  if (argv[0] === "import-verifiers") return importVerifiersCommand(argv.slice(1), io);
  if (argv[0] === "store-migrate") return storeMigrateCommand(argv.slice(1), io);
  let cli;
  let config;
  try {
    cli = parseCli(argv);
    if (cli.help) { process.stdout.write(helpText()); return 0; }
    if (cli.version) { process.stdout.write(`mucmux ${version()}\n`); return 0; }
    config = loadConfig({
      ...(cli.configFile ? { file: cli.configFile } : {}),
      flags: cli.flags,
      env: process.env,
      onWarning: (m) => process.stderr.write(`mucmux: warning: ${m}\n`),
    });
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(`mucmux: ${err.message}\n`); return 2; }
    throw err;
  }
  const log = createLogger(config.log.level);
  const app = createApp({ config, log, build: { version: version(), commit: commit() } });
  try {
    await app.start();
  } catch (err) {
    log.fatal({ err }, "startup failed");
    await app.drain().catch(() => {});
    process.stderr.write(`mucmux: startup failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  log.info({ version: version(), listeners: app.listeners.map((l) => `${l.spec.host}:${l.port}/${l.spec.tls}`), admin: app.adminPort }, "mucmux started");
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      // Hard deadline: exit within drain.timeoutSeconds whatever happens (SPEC E6: 10 s).
      const hard = setTimeout(() => { log.error("drain deadline passed"); process.exit(1); }, config.drain.timeoutSeconds * 1000);
      hard.unref();
      app.drain().then(() => resolve(0), (err: unknown) => { log.error({ err }, "drain failed"); resolve(1); });
    };
    process.on("SIGHUP", () => void app.reload());
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
