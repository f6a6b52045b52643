// The mutation fuzzer of fuzz.ts, bounded for npm test: ~15 s (a minute would be more thorough;
// 15 s keeps the suite's run time reasonable — `npm run fuzz` runs the same loop for 10 minutes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { fuzz } from "./fuzz.js";

test("SPEC E1–E3: mutation fuzzing for 15 s: no crash, ≤ 1 error per input, < 50 ms per input, no heap growth", (t) => {
  const seed = Number(process.env.MUCMUX_FUZZ_SEED ?? 20261122);
  const stats = fuzz({ durationMs: Number(process.env.MUCMUX_FUZZ_MS ?? 15_000), seed });
  t.diagnostic(`seed ${seed}: ${stats.inputs} inputs, ${stats.errors} rejected, ${stats.elements} elements accepted, max ${stats.maxMs.toFixed(1)} ms/input, heap growth ${stats.heapGrowthMiB.toFixed(1)} MiB`);
  assert.deepEqual(stats.failures, []);
  assert.ok(stats.inputs > 1000, `only ${stats.inputs} inputs`);
  assert.ok(stats.heapGrowthMiB < 32, `heap grew ${stats.heapGrowthMiB.toFixed(1)} MiB`);
});
