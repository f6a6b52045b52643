// Throwaway ejabberd 23.01 on loopback (TypeScript port of the planning recipe ejabberd-up.sh).
// Traps: ejabberdctl as root runs as user `ejabberd` (the whole dir must be owned by it, and live outside
// a checkout that user may not traverse, hence os.tmpdir()); the node name / dist port / dist interface are
// read from ejabberdctl.cfg only (the environment is ignored); mod_fail2ban stays off unless asked for.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";

import { testCertificate } from "./certs.js";
import { freePorts, waitForPort } from "./ports.js";
import { commandExists, isRoot, pidAlive, run, track, trackDir, untrack, untrackDir, waitForExit } from "./proc.js";
import { DEFAULT_USERS, keepTmp, pushComponentFor, type PushComponent, type StartServerOptions, type XmppTestServer } from "./server.js";
import { until } from "./wait.js";

export type EjabberdServer = XmppTestServer & {
  readonly kind: "ejabberd";
  /** With `proxyProtocol`: a c2s port like `port` that expects a PROXY v1/v2 header first (use_proxy_protocol). */
  readonly proxyPort: number | undefined;
  /** With `sqlite`: the SQLite database file ejabberd keeps its accounts in. */
  readonly sqliteFile: string | undefined;
  /** Runs `ejabberdctl ARGS` against this node (as user ejabberd when root); resolves with its output. */
  ctl(args: string[], timeoutMs?: number): Promise<string>;
};

export interface EjabberdOptions extends StartServerOptions {
  /** Also listen on `proxyPort` with `use_proxy_protocol: true` (PROXY protocol tests). */
  proxyProtocol?: boolean;
  /** Enable mod_fail2ban (off by default here; ejabberd's example config enables it with 20 failures, 1 h). */
  fail2ban?: { maxAuthFailures: number; banSeconds?: number };
  /** Load mod_mam, archive every room (default_room_options mam: true) and every user's messages (default: always). */
  mam?: boolean;
  /** auth_password_format (default scram; ejabberd's own default is plain). */
  passwordFormat?: "scram" | "plain";
  /** auth_scram_hash (default sha, ejabberd's default): the hash new SCRAM verifiers are made with. */
  scramHash?: "sha" | "sha256" | "sha512";
  /**
   * sql_type: sqlite with the database in `sqliteFile` (Debian needs erlang-p1-sqlite3), and the accounts there
   * (auth_method: sql) unless `auth` is "mnesia". ejabberd 23.01 does not create its schema itself: the file is made
   * from the schema the package ships (lite.sql, or lite.new.sql with `newSchema`, which sets new_sql_schema: true).
   */
  sqlite?: { newSchema?: boolean; auth?: "sql" | "mnesia" };
}

/** The SQLite schemas the Debian package ships for ejabberd 23.01. */
const SQL_SCHEMA_DIR = "/usr/share/ejabberd/sql";

function yml(d: string, port: number, tlsPort: number | undefined, proxyPort: number | undefined, o: EjabberdOptions,
  push: PushComponent | undefined): string {
  const tls = o.tls !== false;
  const c2s = "module: ejabberd_c2s, access: c2s, shaper: c2s_shaper, max_stanza_size: 262144";
  const f2b = o.fail2ban;
  return `hosts: [localhost]
loglevel: ${o.debugLog ? "debug" : "info"}
# Tests count deliveries in the debug log: ejabberd's default burst limit (500 lines/s) would drop lines.
log_burst_limit_count: 10000000
log_burst_limit_window_time: 1
${tls ? `certfiles: ["${d}/conf/server.pem"]` : ""}
listen:
  - {port: ${port}, ip: "127.0.0.1", ${c2s}, starttls: ${tls}, starttls_required: false}
${tlsPort ? `  - {port: ${tlsPort}, ip: "127.0.0.1", ${c2s}, tls: true}` : ""}
${proxyPort ? `  - {port: ${proxyPort}, ip: "127.0.0.1", ${c2s}, starttls: ${tls}, starttls_required: false, use_proxy_protocol: true}` : ""}
${push ? `  - {port: ${push.port}, ip: "127.0.0.1", module: ejabberd_service, hosts: {${push.jid}: {password: ${JSON.stringify(push.secret)}}}}` : ""}
acl:
  local: {user_regexp: ""}
  loopback: {ip: [127.0.0.0/8, "::1/128"]}
access_rules:
  local: {allow: local}
  c2s: {deny: blocked, allow: all}
  muc_create: {allow: local}
api_permissions:
  "console commands": {from: [ejabberd_ctl], who: all, what: "*"}
# default shaper (3000 B/s) would throttle a busy upstream session
shaper: {normal: {rate: 100000000, burst_size: 10000000}}
shaper_rules: {c2s_shaper: {normal: all}, max_user_offline_messages: {1000: all}, max_user_sessions: 100}
${o.sqlite ? `sql_type: sqlite
sql_database: "${d}/ejabberd.db"
new_sql_schema: ${o.sqlite.newSchema === true}` : ""}
auth_method: ${o.sqlite && o.sqlite.auth !== "mnesia" ? "sql" : "internal"}
auth_password_format: ${o.passwordFormat ?? "scram"}
auth_scram_hash: ${o.scramHash ?? "sha"}
default_db: mnesia
modules:
  mod_caps: {}
  mod_carboncopy: {}
  mod_disco: {}
${o.muc === false ? "" : `  mod_muc: {host: conference.localhost, access: [allow], access_create: muc_create, access_persistent: muc_create, default_room_options: {mam: ${o.mam ? "true" : "false"}}}`}
${o.mam ? "  mod_mam: {default: always}" : ""}
  mod_offline: {access_max_user_messages: max_user_offline_messages}
  mod_ping: {}
  mod_roster: {}
${o.sm === false ? "" : `  mod_stream_mgmt: {${o.smResumeSeconds !== undefined ? `resume_timeout: ${o.smResumeSeconds}` : ""}}`}
${push ? "  mod_push: {}" : ""}
${f2b ? `  mod_fail2ban: {c2s_max_auth_failures: ${f2b.maxAuthFailures}, c2s_auth_ban_lifetime: ${f2b.banSeconds ?? 3600}}` : ""}
`.replace(/\n\n+/g, "\n");
}

/** Starts ejabberd on fresh loopback ports with users alice/bob/carol (or opts.users). Needs root or user ejabberd. */
export async function startEjabberd(opts: EjabberdOptions = {}): Promise<EjabberdServer> {
  if (!(await commandExists("ejabberdctl"))) {
    throw new Error("ejabberd is not installed: run .ci/run or `apt-get install ejabberd` (Debian bookworm: 23.01)");
  }
  if (!isRoot && os.userInfo().username !== "ejabberd") throw new Error("startEjabberd: ejabberdctl must run as root or as user ejabberd");
  if (opts.sqlite && !hasErlangSqlite()) {
    throw new Error("startEjabberd: sql_type sqlite needs Erlang's sqlite3 driver: run .ci/run or `apt-get install erlang-p1-sqlite3`");
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mucmux-ejabberd-"));
  const conf = path.join(dir, "conf");
  const pidFile = path.join(dir, "ejabberd.pid");
  trackDir(dir, pidFile);
  const ctl = (args: string[], timeoutMs = 30_000) =>
    run("ejabberdctl", ["--config-dir", conf, "--spool", path.join(dir, "spool"), "--logs", path.join(dir, "logs"), ...args], { timeoutMs, cwd: dir });
  let pid = 0;
  const logFile = path.join(dir, "logs", "ejabberd.log");
  const readFile = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");
  const readPid = () => {
    const n = Number(readFile(pidFile).trim());
    return Number.isInteger(n) && n > 0 ? n : 0;
  };
  const terminate = async (graceful: boolean) => {
    if (pid && !pidAlive(pid)) untrack(pid); // never SIGKILL a recycled PID at exit
    if (!pid || !pidAlive(pid)) return;
    if (graceful) await ctl(["stop"], 20_000).catch(() => undefined); // then wait for the PID, not `stopped` (2 s polls)
    if (!graceful || !(await waitForExit(pid, 30_000))) {
      process.kill(pid, "SIGKILL");
      await waitForExit(pid, 5000);
    }
    untrack(pid);
    fs.rmSync(pidFile, { force: true });
  };
  const launch = async (port: number, tlsPort: number | undefined, componentPort: number | undefined) => {
    fs.rmSync(pidFile, { force: true });
    const logFrom = readFile(logFile).length; // restart: only this start's lines count
    await ctl(["start"]);
    const exited = () => {
      pid ||= readPid();
      if (pid && !pidAlive(pid)) return "ejabberd exited during start";
      return readFile(logFile).includes("[critical]", logFrom) ? "ejabberd logged a critical error" : undefined;
    };
    try {
      await waitForPort(port, { timeoutMs: 60_000, failed: exited });
      if (tlsPort) await waitForPort(tlsPort, { timeoutMs: 10_000, failed: exited });
      if (componentPort) await waitForPort(componentPort, { timeoutMs: 10_000, failed: exited });
      // `ejabberdctl started` polls every 2 s; the log line is as good and immediate
      await until("ejabberd: 'is started' in its log", () => readFile(logFile).includes(" is started in the node ", logFrom), 30_000, 50);
      pid ||= readPid();
      if (!pid) throw new Error(`ejabberd: no pid in ${pidFile}`);
      track(pid, "ejabberd");
    } catch (e) {
      pid ||= readPid();
      await terminate(false);
      throw new Error(`${(e as Error).message}\n--- ${logFile}:\n${readFile(logFile).split("\n").slice(-30).join("\n")}`);
    }
  };

  try {
    const cert = testCertificate();
    const [port = 0, dist = 0, ...more] = await freePorts(2 + (opts.tls === false ? 0 : 1) + (opts.proxyProtocol ? 1 : 0) + (opts.push ? 1 : 0));
    const tlsPort = opts.tls === false ? undefined : more.shift();
    const proxyPort = opts.proxyProtocol ? more.shift() : undefined;
    const push = pushComponentFor(opts.push, more.shift() ?? 0);
    for (const sub of ["conf", "spool", "logs"]) fs.mkdirSync(path.join(dir, sub));
    const inetrc = "/etc/ejabberd/inetrc";
    fs.writeFileSync(path.join(conf, "inetrc"), fs.existsSync(inetrc) ? fs.readFileSync(inetrc) : '{lookup,["file","native"]}.\n');
    fs.writeFileSync(path.join(conf, "server.pem"), cert.key + cert.cert, { mode: 0o600 });
    fs.writeFileSync(path.join(conf, "ejabberdctl.cfg"),
      `ERLANG_NODE=mucmux${port}@localhost\nINET_DIST_INTERFACE=127.0.0.1\nERL_DIST_PORT=${dist}\nEJABBERD_PID_PATH=${pidFile}\n`);
    fs.writeFileSync(path.join(conf, "ejabberd.yml"), yml(dir, port, tlsPort, proxyPort, opts, push));
    if (opts.sqlite) createSqliteSchema(path.join(dir, "ejabberd.db"), opts.sqlite.newSchema === true);
    if (isRoot) await run("chown", ["-R", "ejabberd:ejabberd", dir]);

    await launch(port, tlsPort, push?.port);
    const register = async (user: string, pw: string) => void (await ctl(["register", user, "localhost", pw]));
    // With sql_type: sqlite, "is started" can come before the SQL pool's workers exist (register then fails with
    // `binary_to_existing_atom(<<"ejabberd_sql_localhost_1">>)`): wait for a query through the pool to work.
    if (opts.sqlite && opts.sqlite.auth !== "mnesia") {
      await until("ejabberd's SQL pool", async () => (await ctl(["registered_users", "localhost"]).then(() => true, (e: Error) => !/ejabberd_sql_|not an already existing atom/.test(e.message))), 20_000, 200);
    }
    await Promise.all(Object.entries(opts.users ?? DEFAULT_USERS).map(([u, pw]) => register(u, pw)));
    let stopped = false;
    return {
      kind: "ejabberd", host: "127.0.0.1", port, directTlsPort: tlsPort, proxyPort, domain: "localhost",
      mucDomain: "conference.localhost", dir, logFile, certFile: cert.certFile,
      sqliteFile: opts.sqlite ? path.join(dir, "ejabberd.db") : undefined, pushComponent: push,
      ctl: async (args, timeoutMs) => (await ctl(args, timeoutMs)).stdout,
      get pid() {
        return pid;
      },
      register,
      // change_password lives in mod_admin_extra: a new account of the same name gets a new salt and keys.
      setPassword: async (user: string, pw: string) => { await ctl(["unregister", user, "localhost"]); await register(user, pw); },
      async stop() {
        if (stopped) return;
        stopped = true;
        await terminate(true);
        if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
      kill: () => terminate(false),
      async restart() {
        if (stopped) throw new Error("ejabberd: restart() after stop()");
        await terminate(true);
        pid = 0;
        await launch(port, tlsPort, push?.port);
      },
    };
  } catch (e) {
    await terminate(false).catch(() => undefined);
    if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw e;
  }
}

/** Creates ejabberd's SQLite database from the schema file the package ships (23.01 does not create it). */
function createSqliteSchema(file: string, newSchema: boolean): void {
  const schema = path.join(SQL_SCHEMA_DIR, newSchema ? "lite.new.sql" : "lite.sql");
  if (!fs.existsSync(schema)) throw new Error(`startEjabberd: ${schema} is missing (the ejabberd package ships it)`);
  const db = new Database(file);
  try {
    db.exec(fs.readFileSync(schema, "utf8"));
  } finally {
    db.close();
  }
}

/** Debian's ejabberd suggests, not depends on, the SQLite driver (erlang-p1-sqlite3). */
function hasErlangSqlite(): boolean {
  try {
    return fs.readdirSync("/usr/lib/erlang/lib").some((n) => n.startsWith("p1_sqlite3-"));
  } catch {
    return false;
  }
}
