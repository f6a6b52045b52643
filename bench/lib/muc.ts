// MUC helpers for the load client (no XML parser): join a room and wait for the end of the join, collect
// decrypted text until a marker appears, and count what Prosody's debug log says it sent to an account.
import { readFileSync, statSync } from "node:fs";

import type { BenchSession } from "./xmpp.js";

export const MUC_NS = "http://jabber.org/protocol/muc";

/** Keeps the last `keep` characters a session received and resolves waiters when a needle shows up. */
export class Collector {
  text = "";
  bytes = 0;
  private waiters: { needle: string; resolve: () => void }[] = [];
  constructor(readonly session: BenchSession, private readonly keep = 1 << 20) {
    session.onData = (chunk) => this.push(chunk);
  }

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    const fresh = chunk.toString("utf8");
    // Needles are searched in what arrived since the waiter was made (plus a short tail across chunk borders).
    const window = this.text.slice(-64) + fresh;
    this.text += fresh;
    if (this.text.length > this.keep) this.text = this.text.slice(this.text.length - this.keep);
    this.waiters = this.waiters.filter((w) => {
      if (window.indexOf(w.needle) === -1) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves when `needle` is received after this call (rejects after timeoutMs). */
  waitFor(needle: string, timeoutMs = 15_000): Promise<void> {
    this.text = ""; // only what arrives from now on counts
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.session.jid}: no ${needle} within ${timeoutMs} ms; last: ${this.text.slice(-300)}`)), timeoutMs);
      this.waiters.push({ needle, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }
}

/** Join `room` as `nick` without history and wait for the subject (the end of the join, XEP-0045 §7.2.15). */
export async function joinRoom(c: Collector, room: string, nick: string, timeoutMs = 15_000): Promise<void> {
  const done = c.waitFor("<subject", timeoutMs);
  c.session.write(`<presence to='${room}/${nick}'><x xmlns='${MUC_NS}'><history maxstanzas='0'/></x></presence>`);
  await done;
}

/** Size of Prosody's log now: count only what is logged after this offset. */
export const logOffset = (file: string): number => statSync(file).size;

/**
 * Stanzas Prosody logged as sent (`Sending[c2s]: <name ...`) to any session of `account` after `offset`;
 * `filter` narrows on the logged opening tag.
 */
export function prosodySent(file: string, offset: number, account: string, filter: (line: string) => boolean = () => true): number {
  const text = readFileSync(file).subarray(offset).toString("utf8");
  const to = new RegExp(`to=\\\\?['"]${account.replace(/[.@]/g, (c) => `\\${c}`)}/`);
  let n = 0;
  for (const line of text.split("\n")) {
    if (!line.includes("Sending[c2s]: <")) continue;
    if (!to.test(line) || !filter(line)) continue;
    n++;
  }
  return n;
}
