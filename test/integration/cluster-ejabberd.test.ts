// Several replicas (SPEC H) against real ejabberd 23.01 with room archives (mod_mam, which the catch-up after a kill
// reads): three mucmux processes sharing a throwaway PostgreSQL behind the test's balancer; the body is in
// cluster-support.ts. MUCMUX_TEST_CLUSTER_KILLS: SIGKILLs in the kill loop (default 10 here).
import { startEjabberd } from "../support/ejabberd.js";
import { clusterSuite } from "./cluster-support.js";

clusterSuite("ejabberd 23.01", () => startEjabberd({ muc: true, debugLog: true, mam: true }), {
  kills: Number(process.env.MUCMUX_TEST_CLUSTER_KILLS ?? 10),
});
