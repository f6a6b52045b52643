#!/usr/bin/env node
// Entry point installed as `mucmux`; the TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import { main } from "../dist/cli.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(`mucmux: ${err instanceof Error ? err.message : String(err)}`); process.exit(1); },
);
