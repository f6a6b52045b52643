// Preloaded (`--import`) by scripts/run-tests.mjs into every test-file process that `node --test` starts:
// when the process exits it writes its exit code (node:test sets 1 when any test of the file failed) to
// $MUCMUX_TEST_RESULTS. The runner then checks that every file's own process exited 0, independently of the
// reporter's event stream: under load Node 20's runner once lost the tail of one file's events (13 tests
// missing from its count, the run still "passed"), and a failure in such a tail would have gone unseen.
import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";

const dir = process.env.MUCMUX_TEST_RESULTS;
const file = process.argv[1];
// Only in the test-file processes (node --test marks them), not in the runner itself.
if (dir && file && (process.env.NODE_TEST_CONTEXT ?? "").startsWith("child")) {
  process.on("exit", (code) => {
    const name = createHash("sha1").update(path.resolve(file)).digest("hex");
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ file: path.resolve(file), code: process.exitCode ?? code }));
  });
}
