// Which SASL mechanisms mucmux offers clients (SPEC A10): the SCRAM family the upstream offers, mirrored so a
// client pinned to its server's best mechanism finds it (Conversations refuses a weaker one as a downgrade);
// -PLUS only where configured (SPEC A14); PLAIN always. The upstream's list is learned at every connect.
import { SCRAM_HASHES, mechanismName, type ScramHash } from "./scram.js";

export class SaslOffer {
  private upstream: ReadonlySet<string> | undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: { scram: boolean; channelBinding: boolean }) {}

  /** The mechanisms an upstream stream offered before authentication. */
  observe(mechanisms: readonly string[]): void {
    this.upstream = new Set(mechanisms);
    for (const w of this.waiters.splice(0)) w();
  }

  get known(): boolean { return this.upstream !== undefined; }

  /** Resolves once the upstream's list is known, or after `ms`. */
  ready(ms: number): Promise<void> {
    if (this.upstream) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== done); resolve(); }, ms);
      t.unref();
      const done = () => { clearTimeout(t); resolve(); };
      this.waiters.push(done);
    });
  }

  /** SCRAM hashes offered to clients (those the upstream offers), strongest first: also what a PLAIN login learns. */
  hashes(): ScramHash[] {
    const up = this.upstream;
    if (!this.opts.scram || !up) return [];
    return SCRAM_HASHES.filter((h) => up.has(mechanismName(h)));
  }

  /** The `<mechanisms/>` list for a client; `plus`: channel binding types this connection can give. */
  mechanisms(plus: readonly string[]): string[] {
    const hashes = this.hashes();
    const withPlus = this.opts.channelBinding && plus.length > 0 ? hashes.map((h) => mechanismName(h, true)) : [];
    return [...withPlus, ...hashes.map((h) => mechanismName(h)), "PLAIN"];
  }
}
