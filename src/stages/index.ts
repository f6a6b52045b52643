// The one place that orders stages (c2s runs them in this order, s2c in reverse, anchor stanzas in this order).
// Adding a stage: its folder, and one line here.
import type { Stage } from "../chain/stage.js";
import type { EventBus } from "../chain/events.js";
import type { Views } from "../chain/views.js";
import type { Logger } from "../log.js";
import type { Config } from "../config/index.js";
import type { Metrics } from "../metrics/metrics.js";
import type { AccountRegistry } from "../account/registry.js";
import type { Store } from "../store/store.js";
import { createMucFoldStage } from "./muc-fold/index.js";
import { createMucOfflineStage } from "./muc-offline/index.js";
import { createCsiStage } from "./csi/index.js";
import { createWakeupStage } from "./wakeup/index.js";

export interface StageDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  accounts: AccountRegistry;
  events: EventBus;
  /** Read-only views stages offer each other (rooms) and the app offers them (MUC services). */
  views: Views;
  /** The durable store, once the app opened it (undefined before start and when it could not be opened). */
  store(): Store | undefined;
}

export function createStages(deps: StageDeps): Stage[] {
  const child = (stage: string) => ({ ...deps, log: deps.log.child({ stage }) });
  return [
    createCsiStage(child("csi")), // first, so last toward devices: holds what an inactive device need not see yet (SPEC C15)
    // Before muc-fold: c2s it sees room registration IQs before they are routed via the anchor; s2c (reverse
    // order) it sees their answers after muc-fold mapped them back to the session (SPEC D2–D4).
    createMucOfflineStage(child("muc-offline")), // offline delivery (SPEC D)
    createMucFoldStage(child("muc-fold")), // account-level MUC (SPEC B, C)
    // Last, so first toward devices: takes the server's wake-ups out of everything (SPEC G5) and sees each room
    // message fanned out to a hibernated device as it was fanned out (SPEC G1).
    createWakeupStage(child("wakeup")),
  ];
}
