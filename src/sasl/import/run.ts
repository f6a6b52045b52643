// Writes what an importer found into the store and counts it per host (SPEC A12). A verifier the store holds
// already with the same salt, iteration count and keys is left as it is (a learned one keeps its sealed
// password); a different one for the same (account, hash) is replaced, since the server's storage is what
// the server checks now. An account's imported verifiers for other hashes are removed: the server keeps one
// verifier per account, so those are stale (its password hash was changed).
import type { Store, StoredVerifier } from "../../store/store.js";
import type { ImportRecord } from "./records.js";

export interface HostTally {
  imported: number;
  skipped: number;
  failed: number;
  /** Skip reason → how many accounts. */
  skipReasons: Map<string, number>;
}

export interface ImportSummary {
  hosts: Map<string, HostTally>;
  /** One line per place that failed: where, and why. */
  failures: string[];
}

export async function storeRecords(records: AsyncIterable<ImportRecord> | Iterable<ImportRecord>, store: Store): Promise<ImportSummary> {
  const summary: ImportSummary = { hosts: new Map(), failures: [] };
  for await (const r of records) {
    const tally = summary.hosts.get(r.host) ?? { imported: 0, skipped: 0, failed: 0, skipReasons: new Map<string, number>() };
    summary.hosts.set(r.host, tally);
    if (r.kind === "verifier") {
      await save(store, r.verifier);
      tally.imported++;
    } else if (r.kind === "skipped") {
      tally.skipped++;
      tally.skipReasons.set(r.reason, (tally.skipReasons.get(r.reason) ?? 0) + 1);
    } else {
      tally.failed++;
      summary.failures.push(`${r.where}: ${r.reason}`);
    }
  }
  return summary;
}

async function save(store: Store, v: StoredVerifier): Promise<void> {
  const existing = await store.verifiers(v.account);
  for (const old of existing) {
    if (old.hash !== v.hash && old.source === "imported") await store.deleteVerifiers(v.account, old.hash);
  }
  const same = existing.find((old) => old.hash === v.hash);
  if (same && sameSecrets(same, v)) return;
  await store.saveVerifiers([v]);
}

function sameSecrets(a: StoredVerifier, b: StoredVerifier): boolean {
  return a.iterations === b.iterations && a.salt.equals(b.salt) && a.storedKey.equals(b.storedKey) && a.serverKey.equals(b.serverKey);
}

/** The report: one line per host, reasons for skips, then the failures. Names no key, salt or password. */
export function formatSummary(summary: ImportSummary): { out: string; err: string } {
  const hosts = [...summary.hosts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const total = { imported: 0, skipped: 0, failed: 0 };
  const out: string[] = [];
  for (const [host, t] of hosts) {
    total.imported += t.imported;
    total.skipped += t.skipped;
    total.failed += t.failed;
    out.push(`${host}: ${t.imported} imported, ${t.skipped} skipped, ${t.failed} failed`);
    for (const [reason, n] of t.skipReasons) out.push(`  skipped ${n}: ${reason}`);
  }
  if (hosts.length === 0) out.push("no accounts found");
  out.push(`total: ${total.imported} imported, ${total.skipped} skipped, ${total.failed} failed`);
  const err = summary.failures.map((f) => `failed: ${f}`);
  return { out: `${out.join("\n")}\n`, err: err.length > 0 ? `${err.join("\n")}\n` : "" };
}
