// Throwaway PostgreSQL 15 (Debian's `postgresql` package) on loopback for the store tests: a fresh data directory in
// a temp dir owned by the `postgres` user (PostgreSQL refuses to run as root), a free port on 127.0.0.1 only, the
// unix socket in that temp dir, fsync on (the default), scram-sha-256 everywhere (no trust), and a user and
// database `mucmux` with a generated password. The server is a child of this process; proc.ts SIGKILLs it and
// removes its directory if the test process exits without stopping it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pg from "pg";

import { freePort, waitForPort } from "./ports.js";
import { isRoot, pidAlive, run, track, trackDir, untrack, untrackDir, within } from "./proc.js";
import { keepTmp } from "./server.js";

export interface PgServer {
  /** postgres://mucmux:PASSWORD@127.0.0.1:PORT/mucmux */
  url: string;
  port: number;
  dataDir: string;
  /** Fast shutdown (SIGINT), then the temp dir is removed; the server cannot be started again. */
  stop(): Promise<void>;
  /** SIGKILL to the whole server (postmaster and backends), as a crash or an outage would; start() brings it back. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data (after kill()); does nothing while it runs. */
  start(): Promise<void>;
  /** drop and recreate the database */
  reset(): Promise<void>;
}

const BIN = "/usr/lib/postgresql/15/bin";

/** Starts PostgreSQL with an empty database `mucmux` owned by the (non-superuser) user `mucmux`. */
export async function startPostgres(opts: { name?: string } = {}): Promise<PgServer> {
  for (const b of ["initdb", "postgres"]) {
    if (!fs.existsSync(path.join(BIN, b))) {
      throw new Error(`${path.join(BIN, b)} is missing: run .ci/run or \`apt-get install postgresql\` (Debian bookworm: PostgreSQL 15)`);
    }
  }
  const user = isRoot ? await postgresUser() : undefined;
  const tag = (opts.name ?? "pg").replace(/[^A-Za-z0-9_-]/g, "_");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mucmux-pg-${tag}-`));
  trackDir(dir);
  const dataDir = path.join(dir, "data");
  const logFile = path.join(dir, "postgres.log");
  const superPw = randomBytes(18).toString("hex");
  const password = randomBytes(18).toString("hex");
  let pid = 0;
  let gone: Promise<unknown> = Promise.resolve();
  let stopped = false;
  try {
    if (user) fs.chownSync(dir, user.uid, user.gid);
    const pwFile = path.join(dir, "superuser.pw");
    fs.writeFileSync(pwFile, `${superPw}\n`, { mode: 0o600 });
    if (user) fs.chownSync(pwFile, user.uid, user.gid);
    const asPostgres = (cmd: string, args: string[]) => (user ? run("runuser", ["-u", "postgres", "--", cmd, ...args], { timeoutMs: 60_000, cwd: dir })
      : run(cmd, args, { timeoutMs: 60_000, cwd: dir }));
    await asPostgres(path.join(BIN, "initdb"), ["-D", dataDir, "-U", "postgres", `--pwfile=${pwFile}`, "--auth=scram-sha-256",
      "-E", "UTF8", "--locale=C"]);
    fs.rmSync(pwFile);
    // Password authentication only: the socket in the temp dir and 127.0.0.1; nothing else may connect.
    fs.writeFileSync(path.join(dataDir, "pg_hba.conf"), "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n");
    const port = await freePort();

    const launch = async (): Promise<void> => {
      const fd = fs.openSync(logFile, "a");
      if (user) fs.fchownSync(fd, user.uid, user.gid);
      // The server is spawned as `postgres` directly (uid/gid), not through runuser: its PID is then the postmaster's,
      // and it leads its own process group (detached) with its backends, so kill() reaches all of them.
      const child = spawn(path.join(BIN, "postgres"), [
        "-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dir}`,
        "-c", "fsync=on", "-c", "max_connections=200",
      ], { detached: true, stdio: ["ignore", fd, fd], cwd: dir, ...(user ? { uid: user.uid, gid: user.gid } : {}), env: { ...process.env, LC_ALL: "C" } });
      fs.closeSync(fd);
      let exited: string | undefined;
      gone = new Promise((r) => child.once("exit", r));
      child.once("exit", (code, sig) => void (exited = `postgres exited (${code ?? sig}) during start`));
      child.once("error", (e) => void (exited = `postgres failed to spawn: ${e.message}`));
      child.unref();
      pid = child.pid ?? 0;
      if (pid) {
        const mine = pid;
        track(mine, "postgres");
        child.once("exit", () => untrack(mine)); // never SIGKILL a recycled PID at exit
      }
      try {
        await waitForPort(port, { timeoutMs: 30_000, failed: () => exited });
        // The port opens before recovery ends ("the database system is starting up"): wait for a real session.
        const end = Date.now() + 30_000;
        for (;;) {
          try {
            await superuser(async () => {});
            break;
          } catch (e) {
            if (exited) throw new Error(exited);
            if (Date.now() > end) throw e;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      } catch (e) {
        if (pid) await terminate("SIGKILL");
        throw new Error(`startPostgres: ${(e as Error).message}\n--- ${logFile}:\n${tail(logFile)}`);
      }
    };
    const terminate = async (sig: NodeJS.Signals): Promise<void> => {
      if (!pid || !pidAlive(pid)) return;
      const group = (s: NodeJS.Signals) => { try { process.kill(-pid, s); } catch { /* gone */ } };
      if (sig === "SIGKILL") group("SIGKILL");
      else process.kill(pid, sig);
      if (!(await within(gone, sig === "SIGKILL" ? 5000 : 15_000))) {
        group("SIGKILL");
        await within(gone, 5000);
      }
      // Backends notice the postmaster's death on their own; a new postmaster refuses to start while they hold the
      // shared memory, so wait for the whole group to be gone.
      const end = Date.now() + 10_000;
      while (groupAlive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    async function superuser(fn: (c: pg.Client) => Promise<void>): Promise<void> {
      const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password: superPw, database: "postgres", connectionTimeoutMillis: 5000 });
      c.on("error", () => {});
      await c.connect();
      try {
        await fn(c);
      } finally {
        await c.end().catch(() => {});
      }
    }
    const createDb = () => superuser(async (c) => {
      await c.query("DROP DATABASE IF EXISTS mucmux WITH (FORCE)");
      await c.query("CREATE DATABASE mucmux OWNER mucmux");
    });

    await launch();
    await superuser(async (c) => { await c.query(`CREATE ROLE mucmux LOGIN PASSWORD '${password}'`); });
    await createDb();
    return {
      url: `postgres://mucmux:${password}@127.0.0.1:${port}/mucmux`,
      port,
      dataDir,
      async stop() {
        if (stopped) return;
        stopped = true;
        await terminate("SIGINT");
        if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
      kill: () => terminate("SIGKILL"),
      async start() {
        if (stopped) throw new Error("postgres: start() after stop()");
        if (pid && pidAlive(pid)) return;
        await launch();
      },
      reset: createDb,
    };
  } catch (e) {
    if (pid) { try { process.kill(-pid, "SIGKILL"); } catch { /* gone */ } }
    if (!keepTmp()) fs.rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw e;
  }
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error("startPostgres: no user `postgres` (PostgreSQL refuses to run as root): run .ci/run or `apt-get install postgresql`");
  }
}

/** True while any process of the group led by `pgid` is alive (not a zombie). */
function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return pidAlive(pgid);
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(missing)";
  }
}
