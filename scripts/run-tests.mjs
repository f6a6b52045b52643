#!/usr/bin/env node
// `npm test` / `npm run test:unit`: node:test over an explicitly expanded file list (on Node 20 a bare
// --test finds no .ts files and still exits 0), with the test certificate trusted via NODE_EXTRA_CA_CERTS.
// Usage: node scripts/run-tests.mjs [--unit] [--timeout=SECONDS] [--test-*=... passed to node] [PATH-FILTER...]
// Env: MUCMUX_TEST_TIMEOUT (whole run, seconds, default 1800), MUCMUX_TEST_KEEP=1 keeps server dirs.
import { execFileSync, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { clearTimeout, setTimeout } from "node:timers";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const unit = args.includes("--unit");
const timeoutArg = args.find((a) => a.startsWith("--timeout="));
const timeoutS = Number(timeoutArg?.slice(10) ?? process.env.MUCMUX_TEST_TIMEOUT ?? 1800);
const nodeTestFlags = args.filter((a) => a.startsWith("--test-"));
const filters = args.filter((a) => !a.startsWith("--")).map((f) => path.relative(root, path.resolve(f)));

function walk(dir) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" || e.name.startsWith(".") ? [] : walk(rel);
    return e.isFile() && e.name.endsWith(".test.ts") ? [rel] : [];
  });
}

// Same certificate logic as test/support/certs.ts (kept in sync by hand): EC P-256, self-signed, CA:TRUE.
const NAMES = ["localhost", "example.test", "conference.localhost"];
function ensureCert() {
  const dir = path.join(root, "test", ".tmp", "certs");
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  const usable = () => {
    try {
      const x = new X509Certificate(fs.readFileSync(certFile));
      return fs.existsSync(keyFile) && Date.parse(x.validTo) - Date.now() > 86_400_000 &&
        NAMES.every((n) => (x.subjectAltName ?? "").includes(`DNS:${n}`));
    } catch {
      return false;
    }
  };
  if (usable()) return certFile;
  fs.mkdirSync(dir, { recursive: true });
  const san = [...NAMES.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");
  const tmpKey = `${keyFile}.${process.pid}.tmp`;
  const tmpCert = `${certFile}.${process.pid}.tmp`;
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "30", "-subj", "/CN=localhost", "-addext", `subjectAltName=${san}`, "-keyout", tmpKey, "-out", tmpCert],
  { stdio: ["ignore", "ignore", "inherit"], timeout: 20_000 });
  fs.chmodSync(tmpKey, 0o644);
  fs.renameSync(tmpKey, keyFile);
  fs.renameSync(tmpCert, certFile);
  return certFile;
}

const dirs = unit ? ["test/unit", "test/transcripts", "src"] : ["test/unit", "test/transcripts", "test/integration", "test/adversarial", "src"];
let files = [...new Set(dirs.flatMap(walk))].sort();
if (filters.length) files = files.filter((f) => filters.some((x) => f === x || f.startsWith(x.endsWith("/") ? x : `${x}/`) || f.includes(x)));
if (files.length === 0) {
  console.error(`run-tests: no test files found (${unit ? "unit" : "all"}${filters.length ? `, filters: ${filters.join(" ")}` : ""})`);
  process.exit(1);
}

const env = { ...process.env };
try {
  const certFile = ensureCert();
  env.NODE_EXTRA_CA_CERTS = certFile;
  const prior = process.env.NODE_EXTRA_CA_CERTS;
  if (prior && path.resolve(prior) !== certFile && fs.existsSync(prior)) {
    // keep CAs the environment already trusts (e.g. a proxy's) next to the test CA
    const bundle = path.join(path.dirname(certFile), `bundle-${process.pid}.pem`);
    fs.writeFileSync(bundle, `${fs.readFileSync(prior, "utf8").trimEnd()}\n${fs.readFileSync(certFile, "utf8")}`);
    process.on("exit", () => fs.rmSync(bundle, { force: true }));
    env.NODE_EXTRA_CA_CERTS = bundle;
  }
} catch (e) {
  if (!unit) throw new Error(`run-tests: cannot create the test certificate (is openssl installed?): ${e.message}`);
  console.error(`run-tests: warning: no test certificate (${e.message.split("\n")[0]})`);
}

// Every test-file process reports its own exit code here (scripts/test-file-exit.mjs): checked after the run.
fs.mkdirSync(path.join(root, "test", ".tmp"), { recursive: true });
const resultsDir = fs.mkdtempSync(path.join(root, "test", ".tmp", "results-"));
env.MUCMUX_TEST_RESULTS = resultsDir;
process.on("exit", () => fs.rmSync(resultsDir, { recursive: true, force: true }));

const nodeArgs = ["--import", "tsx", "--import", path.join(root, "scripts", "test-file-exit.mjs"), "--test", "--test-concurrency=1", "--test-reporter=spec", "--test-force-exit",
  "--test-timeout=300000", ...nodeTestFlags, ...files];
console.log(`run-tests: ${files.length} file(s), timeout ${timeoutS} s`);
// Own process group, so a timeout or ^C reaches every test-file process (servers clean up on SIGTERM).
const child = spawn(process.execPath, nodeArgs, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
let tail = "";
child.stdout.on("data", (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-65536);
});
child.stderr.pipe(process.stderr);

let timedOut = false;
const signalGroup = (sig) => {
  try {
    process.kill(-child.pid, sig);
  } catch {
    /* group already gone */
  }
};
const timer = setTimeout(() => {
  timedOut = true;
  console.error(`run-tests: global timeout ${timeoutS} s reached, terminating`);
  signalGroup("SIGTERM");
  setTimeout(() => signalGroup("SIGKILL"), 15_000).unref();
}, timeoutS * 1000);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => signalGroup(sig));

child.on("close", (code, signal) => {
  clearTimeout(timer);
  const count = /^\s*(?:ℹ|#) tests (\d+)\s*$/m.exec(tail)?.[1];
  let problem;
  if (timedOut) problem = "timed out";
  else if (signal) problem = `node killed by ${signal}`;
  else if (count === undefined) problem = "no test summary in the output";
  else if (count === "0") problem = "0 tests ran";
  else problem = unfinishedFiles();
  if (problem) console.error(`run-tests: FAILED: ${problem}`);
  process.exit(problem ? 1 : (code ?? 1));
});

/** Files whose process did not report a clean exit (scripts/test-file-exit.mjs), described; undefined if none. */
function unfinishedFiles() {
  const codes = new Map();
  for (const f of fs.readdirSync(resultsDir)) {
    const r = JSON.parse(fs.readFileSync(path.join(resultsDir, f), "utf8"));
    codes.set(r.file, r.code);
  }
  const bad = files.map((f) => [f, codes.get(path.resolve(root, f))]).filter(([, code]) => code !== 0);
  if (bad.length === 0) return undefined;
  return `test files that did not finish cleanly (exit code, or none reported): ${bad.map(([f, c]) => `${f} (${c ?? "none"})`).join(", ")}`;
}
