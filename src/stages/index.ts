// The one place that orders stages (c2s runs them in this order, s2c in reverse).
// Feature stages (account-level MUC, MUC offline delivery) are added here by their issues.
import type { Stage } from "../chain/stage.js";
import type { Logger } from "../log.js";
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";

export interface StageDeps { config: Config; metrics: Metrics; log: Logger }

export function createStages(_deps: StageDeps): Stage[] {
  return [];
}
