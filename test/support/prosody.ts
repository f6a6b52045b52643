// Throwaway Prosody 0.12 on loopback (TypeScript port of the planning recipe prosody-up.sh).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { testCertificate } from "./certs.js";
import { freePorts, waitForPort } from "./ports.js";
import { commandExists, isRoot, pidAlive, run, track, trackDir, untrack, untrackDir, within } from "./proc.js";
import { DEFAULT_USERS, keepTmp, pushComponentFor, type PushComponent, type StartServerOptions, type XmppTestServer } from "./server.js";

export type ProsodyServer = XmppTestServer & { readonly kind: "prosody" };

export interface ProsodyOptions extends StartServerOptions {
  /** mod_auth_internal_hashed's password_hash: the hash of the stored verifiers (Prosody's default SHA-1). */
  passwordHash?: "SHA-1" | "SHA-256";
  /** Load mod_mam: the users' own archives (XEP-0313; Prosody archives every 1:1 message by default). */
  mam?: boolean;
  /** The auth provider (default internal_hashed; internal_plain keeps passwords as they are). */
  authentication?: "internal_hashed" | "internal_plain";
}

/** Where Debian's prosody-modules puts mod_cloud_notify (in Prosody's default plugin path, as mod_X/mod_X.lua). */
const CLOUD_NOTIFY = "/usr/lib/prosody/modules/mod_cloud_notify/mod_cloud_notify.lua";

function config(d: string, port: number, tlsPort: number | undefined, o: ProsodyOptions, cert: { certFile: string; keyFile: string },
  push: PushComponent | undefined): string {
  const tls = o.tls !== false;
  const mods = ["roster", "saslauth", "disco", "ping", "presence", "message", "iq", "offline", "carbons",
    ...(o.sm === false ? [] : ["smacks"]), "csi_simple", "blocklist", "version", "uptime", "limits", ...(tls ? ["tls"] : []),
    ...(push ? ["cloud_notify"] : []), ...(o.mam ? ["mam"] : [])];
  const lines = [
    ...(isRoot ? ["run_as_root = true -- prosody as root would otherwise setuid to 'prosody'"] : []),
    `pidfile = ${JSON.stringify(path.join(d, "prosody.pid"))}`,
    `data_path = ${JSON.stringify(path.join(d, "data"))}`,
    `certificates = ${JSON.stringify(path.join(d, "certs"))}`,
    `log = { { levels = { min = "${o.debugLog ? "debug" : "info"}" }, to = "file", filename = ${JSON.stringify(path.join(d, "prosody.log"))} } }`,
    `interfaces = { "127.0.0.1" }; c2s_ports = { ${port} }; c2s_direct_tls_ports = { ${tlsPort ?? ""} }`,
    `s2s_ports = {}; component_ports = {${push ? ` ${push.port} ` : ""}}; http_ports = {}; https_ports = {}`,
    `modules_enabled = { ${mods.map((m) => JSON.stringify(m)).join(", ")} }`,
    'modules_disabled = { "s2s" }',
    `authentication = "${o.authentication ?? "internal_hashed"}"; storage = "internal"; allow_registration = false`,
    ...(o.smResumeSeconds !== undefined ? [`smacks_hibernation_time = ${o.smResumeSeconds} -- default 600`] : []),
    ...(o.passwordHash ? [`password_hash = ${JSON.stringify(o.passwordHash)} -- SCRAM-${o.passwordHash} verifiers (default SHA-1)`] : []),
    "-- mucmux's upstream leg is plaintext on loopback by default; SCRAM-SHA-1 works without TLS, PLAIN does not",
    "c2s_require_encryption = false; allow_unencrypted_plain_auth = false",
    '-- mod_limits defaults to 10 KB/s per c2s connection, which throttles a busy upstream session',
    'limits = { c2s = { rate = "100mb/s"; burst = "5s" } }',
    ...(tls ? [`ssl = { certificate = ${JSON.stringify(cert.certFile)}; key = ${JSON.stringify(cert.keyFile)} }`] : []),
    'VirtualHost "localhost"',
  ];
  if (o.muc !== false) {
    lines.push('Component "conference.localhost" "muc"', '  modules_enabled = { "muc_mam" }',
      "  restrict_room_creation = false", "  muc_room_locking = false");
  }
  if (push) {
    // XEP-0114 component for the stand-in app server; mod_cloud_notify sends its publishes from "localhost" to it
    lines.push(`Component ${JSON.stringify(push.jid)}`, `  component_secret = ${JSON.stringify(push.secret)}`);
  }
  return lines.join("\n") + "\n";
}

/** Starts Prosody on fresh loopback ports with users alice/bob/carol (or opts.users). */
export async function startProsody(opts: ProsodyOptions = {}): Promise<ProsodyServer> {
  if (!(await commandExists("prosody")) || !(await commandExists("prosodyctl"))) {
    throw new Error("prosody is not installed: run .ci/run or `apt-get install prosody` (Debian bookworm: 0.12)");
  }
  if (opts.push && !fs.existsSync(CLOUD_NOTIFY)) {
    throw new Error(`startProsody: push needs mod_cloud_notify (${CLOUD_NOTIFY}): run .ci/run or \`apt-get install prosody-modules\``);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mucmux-prosody-"));
  trackDir(dir);
  try {
    const cert = testCertificate();
    const [port = 0, ...more] = await freePorts(1 + (opts.tls === false ? 0 : 1) + (opts.push ? 1 : 0));
    const tlsPort = opts.tls === false ? undefined : more.shift();
    const push = pushComponentFor(opts.push, more.shift() ?? 0);
    fs.mkdirSync(path.join(dir, "data"));
    fs.mkdirSync(path.join(dir, "certs"));
    const cfg = path.join(dir, "prosody.cfg.lua");
    fs.writeFileSync(cfg, config(dir, port, tlsPort, opts, cert, push));
    const ctl = (...args: string[]) => run("prosodyctl", ["--config", cfg, ...args], { timeoutMs: 20_000 });
    const register = async (user: string, pw: string) => void (await ctl("register", user, "localhost", pw));
    await Promise.all(Object.entries(opts.users ?? DEFAULT_USERS).map(([u, pw]) => register(u, pw)));
    const logFile = path.join(dir, "prosody.log");
    const out = path.join(dir, "stdout.log");
    let pid = 0;
    let gone: Promise<unknown> = Promise.resolve();
    let stopped = false;

    const launch = async () => {
      const fd = fs.openSync(out, "a");
      // detached = setsid(2) before exec, like `setsid prosody --config FILE -F` in the recipe
      const child = spawn("prosody", ["--config", cfg, "-F"], { detached: true, stdio: ["ignore", fd, fd] });
      fs.closeSync(fd);
      let exited: string | undefined;
      gone = new Promise((r) => child.once("exit", r));
      child.once("exit", (code, sig) => void (exited = `prosody exited (${code ?? sig}) during start`));
      child.once("error", (e) => void (exited = `prosody failed to spawn: ${e.message}`));
      child.unref();
      pid = child.pid ?? 0;
      if (pid) {
        const mine = pid;
        track(mine, "prosody");
        child.once("exit", () => untrack(mine)); // never SIGKILL a recycled PID at exit
      }
      try {
        await waitForPort(port, { timeoutMs: 15_000, failed: () => exited });
        if (tlsPort) await waitForPort(tlsPort, { timeoutMs: 5000, failed: () => exited });
        if (push) await waitForPort(push.port, { timeoutMs: 5000, failed: () => exited });
      } catch (e) {
        if (pid) await terminate("SIGKILL");
        throw new Error(`${(e as Error).message}\n--- ${out}:\n${tail(out)}\n--- ${logFile}:\n${tail(logFile)}`);
      }
    };
    const terminate = async (sig: NodeJS.Signals) => {
      if (!pid || !pidAlive(pid)) return;
      const exited = (ms: number) => within(gone, ms);
      process.kill(pid, sig);
      if (!(await exited(sig === "SIGKILL" ? 5000 : 10_000))) {
        process.kill(pid, "SIGKILL");
        await exited(5000);
      }
    };

    await launch();
    return {
      kind: "prosody", host: "127.0.0.1", port, directTlsPort: tlsPort, domain: "localhost",
      mucDomain: "conference.localhost", dir, logFile, certFile: cert.certFile, pushComponent: push,
      get pid() {
        return pid;
      },
      register,
      // prosodyctl has no non-interactive passwd: a new account of the same name gets a new salt and keys.
      setPassword: async (user: string, pw: string) => { await ctl("deluser", `${user}@localhost`); await register(user, pw); },
      async stop() {
        if (stopped) return;
        stopped = true;
        await terminate("SIGTERM");
        if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
      kill: () => terminate("SIGKILL"),
      async restart() {
        if (stopped) throw new Error("prosody: restart() after stop()");
        await terminate("SIGTERM");
        await launch();
      },
    };
  } catch (e) {
    if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw e;
  }
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(missing)";
  }
}
