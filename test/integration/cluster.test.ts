// Several replicas (SPEC H) against real Prosody 0.12 with room archives (muc_mam): three mucmux processes sharing a
// throwaway PostgreSQL behind the test's balancer; the body is in cluster-support.ts.
// MUCMUX_TEST_CLUSTER_KILLS: SIGKILLs in the kill loop (default 50).
import { startProsody } from "../support/prosody.js";
import { clusterSuite } from "./cluster-support.js";

clusterSuite("Prosody 0.12", () => startProsody({ muc: true, debugLog: true }), {
  kills: Number(process.env.MUCMUX_TEST_CLUSTER_KILLS ?? 50),
});
