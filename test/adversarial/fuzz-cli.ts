// npm run fuzz [-- SECONDS [SEED]]: the mutation fuzzer of fuzz.ts for longer (default 600 s).
// npm run fuzz -- --differential [INPUTS [SEED]]: the differential fuzzer of differential.ts, scanner against
// saxes (default 1 000 000 inputs).
import { fuzz } from "./fuzz.js";
import { differentialFuzz } from "./differential.js";

if (process.argv[2] === "--differential") {
  const inputs = Number(process.argv[3] ?? 1_000_000);
  const seed = Number(process.argv[4] ?? Date.now() % 2 ** 31);
  console.log(`differential fuzz: ${inputs} inputs, seed ${seed}`);
  const started = performance.now();
  const stats = differentialFuzz(inputs, seed);
  console.log(JSON.stringify({ ...stats, failures: stats.failures.length, seconds: Math.round((performance.now() - started) / 1000) }, null, 2));
  for (const f of stats.failures) console.log(`FAIL ${f}`);
  process.exit(stats.failures.length > 0 ? 1 : 0);
}

const seconds = Number(process.argv[2] ?? 600);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
console.log(`fuzz: ${seconds} s, seed ${seed}`);
const stats = fuzz({ durationMs: seconds * 1000, seed });
console.log(JSON.stringify({ ...stats, failures: stats.failures.length }, null, 2));
for (const f of stats.failures) console.log(`FAIL ${f}`);
const bad = stats.failures.length > 0 || stats.heapGrowthMiB > 32;
process.exit(bad ? 1 : 0);
