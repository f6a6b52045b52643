// The Store contract (test/unit/store/contract.ts) against the SQLite store, in memory. SQLite has no leases: one
// replica owns its file.
import { SqliteStore } from "../../../src/store/sqlite.js";
import { storeContract } from "./contract.js";

storeContract("SqliteStore", async () => new SqliteStore(":memory:"), async (s) => s.close());
