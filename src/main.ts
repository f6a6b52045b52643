// Process entry: `mucmux` (bin/mucmux.js runs the compiled copy of this file).
import { main } from "./cli.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mucmux: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
