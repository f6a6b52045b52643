// The one place that orders stages (c2s runs them in this order, s2c in reverse).
import type { Stage } from "../chain/stage.js";
import type { Logger } from "../log.js";
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { AccountRegistry } from "../account/registry.js";
import { createMucFoldStage } from "./muc-fold/index.js";

export interface StageDeps { config: Config; metrics: Metrics; log: Logger; accounts: AccountRegistry }

export function createStages(deps: StageDeps): Stage[] {
  return [
    createMucFoldStage({ ...deps, log: deps.log.child({ stage: "muc-fold" }) }), // account-level MUC (SPEC B, C)
  ];
}
