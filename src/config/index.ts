// Public surface of the configuration module; see docs/configuration.md for the keys.
export { configSchema, LOG_LEVELS, type Config } from "./schema.js";
export { ConfigError } from "./errors.js";
export { loadConfig, type LoadOptions } from "./load.js";
export { parseCli, helpText, type CliArgs } from "./argv.js";
export { configLeaves, flagName, envName, type Leaf, type LeafKind } from "./leaves.js";
