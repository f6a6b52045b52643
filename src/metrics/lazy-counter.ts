// Hot-path counters (relay CPU per stanza): prom-client hashes the label set on every inc(), also through a labels()
// child, which cost a few per cent of the relay's CPU. A LazyCounter adds to a plain number and hands the
// sum to prom-client when the counter is collected (a scrape, or any registry read), so every read sees
// exact values and the per-stanza cost is one addition.
import type { Counter } from "prom-client";

export interface LazyCounter {
  inc(n?: number): void;
}

interface Pending { child: { inc(n: number): void }; n: number }

const PENDING = new WeakMap<object, Pending[]>();

/** A LazyCounter for `counter` with `labels` (values in labelNames order). Keep it: each call adds one. */
export function lazyCounter<T extends string>(counter: Counter<T>, ...labels: string[]): LazyCounter {
  let list = PENDING.get(counter);
  if (!list) {
    const all: Pending[] = (list = []);
    PENDING.set(counter, all);
    const c = counter as unknown as { collect?: () => unknown };
    const previous = c.collect;
    c.collect = function (this: unknown) {
      for (const p of all) {
        if (p.n === 0) continue;
        const n = p.n;
        p.n = 0;
        p.child.inc(n);
      }
      return previous?.call(this);
    };
  }
  const p: Pending = { child: counter.labels(...labels), n: 0 };
  list.push(p);
  return { inc: (n = 1) => void (p.n += n) };
}
