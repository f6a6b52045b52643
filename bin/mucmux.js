#!/usr/bin/env node
// Entry point installed as `mucmux`; the TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import "../dist/main.js";
