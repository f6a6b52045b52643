// What a Link needs from the process (passed in by app.ts; no singletons).
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../log.js";
import type { ChainRunner } from "../chain/runner.js";
import type { UpstreamOutcome } from "./upstream.js";
import type { SecureContext } from "node:tls";
import type { Link } from "./link.js";

export interface LinkDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  chain: ChainRunner;
  /** The current server TLS context (swapped in place when certificates are reloaded). */
  secureContext(): SecureContext;
  connectUpstream(domain: string, username: string, password: string): Promise<UpstreamOutcome>;
  isDraining(): boolean;
  /** Authenticated (called once SASL succeeded upstream). */
  onAuthenticated(link: Link): void;
  onClosed(link: Link): void;
}
