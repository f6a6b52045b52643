// Helpers for the store tests: throwaway files (and makeReadOnly, shared with the integration tests).
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export { makeReadOnly } from "../../support/readonly.js";

export const tmpFile = (): string => path.join(mkdtempSync(path.join(os.tmpdir(), "mucmux-store-")), "mucmux.sqlite");
