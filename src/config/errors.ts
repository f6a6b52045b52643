/**
 * Every configuration problem surfaces as one ConfigError whose message lists each problem on its own
 * line, each naming the key path ("config: upstream.port: …"), so an operator can fix them all at once.
 */
export class ConfigError extends Error {
  readonly code = "ERR_MUCMUX_CONFIG";
  /** The individual problems, each already prefixed with "config: ". */
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === "string" ? [problems] : [...problems];
    super(list.join("\n"));
    this.name = "ConfigError";
    this.problems = list;
  }
}
