/** "Did you mean" hints for unknown keys, flags and environment variables. */

const squash = (s: string) => s.toLowerCase().replace(/[-_]/g, "");

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The closest allowed key, if the unknown one looks like a typo or a different spelling of it. */
export function suggest(unknown: string, candidates: readonly string[]): string | undefined {
  return candidates.find((c) => squash(c) === squash(unknown)) ?? candidates.find((c) => distance(c, unknown) <= 2);
}
