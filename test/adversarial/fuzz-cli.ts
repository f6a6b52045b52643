// npm run fuzz [-- SECONDS [SEED]]: the mutation fuzzer of fuzz.ts for longer (default 600 s).
import { fuzz } from "./fuzz.js";

const seconds = Number(process.argv[2] ?? 600);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
console.log(`fuzz: ${seconds} s, seed ${seed}`);
const stats = fuzz({ durationMs: seconds * 1000, seed });
console.log(JSON.stringify({ ...stats, failures: stats.failures.length }, null, 2));
for (const f of stats.failures) console.log(`FAIL ${f}`);
const bad = stats.failures.length > 0 || stats.heapGrowthMiB > 32;
process.exit(bad ? 1 : 0);
