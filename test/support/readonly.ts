// Make an open SQLite store read-only underneath it, as a remounted or failing disk would.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";

/**
 * The database file, its WAL and their directory become immutable (chattr +i: mode bits mean nothing to
 * root, and an open descriptor ignores them anyway). The memory-mapped -shm must stay writable or SQLite
 * dies of SIGBUS. Returns the undo, or undefined where the file system or the capabilities do not allow it.
 */
export function makeReadOnly(file: string): (() => void) | undefined {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const targets = [...readdirSync(dir).filter((n) => n.startsWith(base) && !n.endsWith("-shm")).map((n) => path.join(dir, n)), dir];
  try {
    execFileSync("chattr", ["+i", ...targets], { stdio: "ignore" });
  } catch {
    try { execFileSync("chattr", ["-i", ...targets], { stdio: "ignore" }); } catch { /* nothing was set */ }
    return undefined;
  }
  return () => execFileSync("chattr", ["-i", ...targets], { stdio: "ignore" });
}
