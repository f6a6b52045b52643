/**
 * The server's TLS material: the current SecureContext, replaced in place when the certificate files
 * change. A context is only consulted during a handshake, so swapping it affects new connections
 * only; established sessions keep the context they were made with.
 *
 * Listeners should take `current()` per connection (`new TLSSocket(socket, { secureContext })` or an
 * SNICallback); a tls.Server's own default context would be used for clients that send no SNI.
 */
import { readFile } from "node:fs/promises";
import type { X509Certificate } from "node:crypto";
import type { SecureContext } from "node:tls";
import type { Config } from "../../config/index.js";
import { buildPair, hashPair, TlsError, type Pair, type PairSource } from "./pair.js";
import { generateSelfSigned } from "./selfsigned.js";
import { watchForChanges, type ChangeWatcher } from "./watch.js";

/** The part of a pino logger used here. */
export interface TlsLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type ReloadResult = "success" | "failure";

export interface TlsMaterialOptions {
  /** tls.* config plus the domains, which a generated certificate names and a loaded one should cover. */
  readonly config: Config["tls"] & { readonly names: readonly string[] };
  readonly log: TlsLogger;
  /** Called after each attempt to load changed files (for metrics). */
  readonly onReload?: (result: ReloadResult) => void;
  /** fs.watch the directories (default true); polling every reloadSeconds happens regardless. */
  readonly watch?: boolean;
  /** Quiet time after a filesystem event before the files are read (default 200 ms). */
  readonly debounceMs?: number;
}

/** Loads the configured files (or generates a self-signed pair) and starts watching. Throws TlsError. */
export async function createTlsMaterial(opts: TlsMaterialOptions): Promise<TlsMaterial> {
  const { cert, key, names } = opts.config;
  if ((cert === undefined) !== (key === undefined)) throw new TlsError("tls: tls.cert and tls.key must be set together");
  if (cert === undefined || key === undefined) {
    if (names.length === 0) throw new TlsError("tls: no tls.cert/tls.key and no domains to make a self-signed certificate for");
    const generated = generateSelfSigned({ names });
    const pair = buildPair(generated.cert, generated.key, { cert: "(self-signed)", key: "(self-signed)" });
    opts.log.warn({ names, notAfter: pair.notAfter.toISOString() },
      "tls: tls.cert/tls.key not configured; serving a self-signed certificate generated in memory (clients will not trust it)");
    return new TlsMaterial(opts, pair, undefined, undefined);
  }
  const files: PairSource = { cert, key };
  const [certPem, keyPem] = await Promise.all([readPem(cert, "certificate"), readPem(key, "private key")]);
  const pair = buildPair(certPem, keyPem, files);
  return new TlsMaterial(opts, pair, files, hashPair(certPem, keyPem));
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new TlsError(`tls: cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
}

export class TlsMaterial {
  #pair: Pair;
  #seen: string | undefined; // hash of the contents last tried, valid or not: each version is reported once
  #readFailing = false;
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();
  #pending: Promise<ReloadResult | "unchanged"> | undefined;
  readonly #watcher: ChangeWatcher | undefined;
  private readonly opts: TlsMaterialOptions;
  private readonly files: PairSource | undefined;

  /** Use createTlsMaterial. `hash` is that of the files' contents `initial` was built from. */
  constructor(opts: TlsMaterialOptions, initial: Pair, files: PairSource | undefined, hash: string | undefined) {
    this.opts = opts;
    this.files = files;
    this.#pair = initial;
    this.#seen = hash;
    if (files) {
      this.#checkCoverage(initial);
      this.#watcher = watchForChanges({
        files: [files.cert, files.key],
        pollMs: opts.config.reloadSeconds * 1000,
        debounceMs: opts.debounceMs ?? 200,
        useFsWatch: opts.watch ?? true,
        onChange: () => void this.reload(),
        onWatchError: (err, dir) => opts.log.warn({ dir, err: err.message }, "tls: cannot watch directory; relying on polling"),
      });
    }
  }

  /** The context for the next handshake. */
  current(): SecureContext {
    return this.#pair.context;
  }

  /** notAfter of the leaf certificate currently served. */
  certExpiry(): Date {
    return this.#pair.notAfter;
  }

  /** The leaf certificate currently served. */
  certificate(): X509Certificate {
    return this.#pair.leaf;
  }

  /** Re-reads the files now (also on SIGHUP, if the caller wires it); concurrent calls share one read. */
  reload(): Promise<ReloadResult | "unchanged"> {
    if (this.#pending) return this.#pending;
    const run = this.#queue.then(() => {
      this.#pending = undefined;
      return this.#check();
    });
    this.#pending = run;
    this.#queue = run;
    return run;
  }

  /** Stops watching and polling; current() keeps working. */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
  }

  async #check(): Promise<ReloadResult | "unchanged"> {
    const files = this.files;
    if (!files || this.#closed) return "unchanged";
    let cert: Buffer, key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)]);
    } catch (err) {
      // Reported once per spell of failures: a poll every few seconds must not flood the log.
      if (this.#readFailing || this.#closed) return "unchanged";
      this.#readFailing = true;
      this.opts.log.error({ ...files, err: (err as Error).message }, "tls: cannot read certificate files; keeping the current certificate");
      return this.#report("failure");
    }
    this.#readFailing = false;
    const hash = hashPair(cert, key);
    if (this.#closed || hash === this.#seen) return "unchanged";
    this.#seen = hash;
    let pair: Pair;
    try {
      pair = buildPair(cert, key, files);
    } catch (err) {
      // Often a half-finished update (new cert, old key): the next change event or poll retries.
      this.opts.log.error({ ...files, err: (err as Error).message }, "tls: new certificate files are invalid; keeping the current certificate");
      return this.#report("failure");
    }
    this.#pair = pair;
    this.opts.log.info({ ...files, notAfter: pair.notAfter.toISOString(), subject: pair.leaf.subject }, "tls: certificate reloaded");
    this.#checkCoverage(pair);
    return this.#report("success");
  }

  #report(result: ReloadResult): ReloadResult {
    try {
      this.opts.onReload?.(result);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, "tls: onReload callback failed");
    }
    return result;
  }

  /** Warn early about what clients would otherwise reject at handshake time. */
  #checkCoverage(pair: Pair): void {
    const uncovered = this.opts.config.names.filter((name) => pair.leaf.checkHost(name) === undefined);
    if (uncovered.length > 0) {
      this.opts.log.warn({ cert: this.files?.cert, uncovered }, "tls: certificate does not name these domains; clients may reject it");
    }
    if (pair.notAfter.getTime() <= Date.now()) {
      this.opts.log.warn({ cert: this.files?.cert, notAfter: pair.notAfter.toISOString() }, "tls: certificate has expired");
    }
  }
}
