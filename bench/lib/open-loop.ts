// An open-loop request generator: request j is due at t0 + j/rate whatever happened to earlier ones (no
// coordinated omission); `due[j]` and `written[j]` (the actual write) are filled in for the latency figures.
export interface OpenLoop {
  /** Resolves once every request was written. */
  readonly done: Promise<void>;
  /** Requests written so far. */
  written(): number;
}

export function openLoop(due: Float64Array, written: Float64Array, rate: number, write: (j: number) => void): OpenLoop {
  const total = due.length;
  const interval = 1000 / rate;
  const t0 = performance.now() + 20;
  for (let j = 0; j < total; j++) due[j] = t0 + j * interval;
  let next = 0;
  const done = new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && (due[next] as number) <= now) {
        const j = next++;
        written[j] = performance.now();
        write(j);
      }
      if (next >= total) return resolve();
      setTimeout(tick, Math.max(0, (due[next] as number) - performance.now()));
    };
    setTimeout(tick, 20);
  });
  return { done, written: () => next };
}
