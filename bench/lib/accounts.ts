// Many accounts on a running Prosody without one `prosodyctl register` per account (a Lua start each, ~0.2 s of
// CPU: 1000 accounts would take minutes). Writes what `register` writes: Prosody 0.12's internal_hashed
// account record (SCRAM-SHA-1 stored key and server key, a salt, the iteration count) in its file storage,
// data/<host>/accounts/<user>.dat. Prosody reads that file at each login, so accounts written while it runs
// work at once. Each account gets its own salt and the default iteration count (10000), as registered ones do.
import { createHash, createHmac, pbkdf2, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import type { ProsodyServer } from "../../test/support/prosody.js";
import { mapLimit } from "./xmpp.js";

const pbkdf2Async = promisify(pbkdf2);
const ITERATIONS = 10_000; // Prosody 0.12's default for new accounts

/** datamanager's file-name encoding: every non-alphanumeric byte as %xx. */
const encode = (s: string) => s.replace(/[^A-Za-z0-9]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`);

async function record(password: string): Promise<string> {
  const salt = randomUUID(); // Prosody uses a UUID string as the salt, too
  const salted = await pbkdf2Async(password, salt, ITERATIONS, 20, "sha1");
  const clientKey = createHmac("sha1", salted).update("Client Key").digest();
  const storedKey = createHash("sha1").update(clientKey).digest("hex");
  const serverKey = createHmac("sha1", salted).update("Server Key").digest("hex");
  return `return {\n\t["iteration_count"] = ${ITERATIONS};\n\t["server_key"] = "${serverKey}";\n` +
    `\t["stored_key"] = "${storedKey}";\n\t["salt"] = "${salt}";\n};\n`;
}

/** Creates `users` (names of letters and digits) on a running test Prosody; existing ones are left as they are. */
export async function addProsodyAccounts(server: ProsodyServer, users: readonly string[], password: (user: string) => string): Promise<void> {
  const dir = path.join(server.dir, "data", encode(server.domain), "accounts");
  fs.mkdirSync(dir, { recursive: true });
  const missing = users.filter((u) => !fs.existsSync(path.join(dir, `${encode(u)}.dat`)));
  // PBKDF2 runs on the libuv pool: 8 in flight keep both cores busy without queuing the rest of the process.
  await mapLimit(missing, 8, async (u) => {
    const file = path.join(dir, `${encode(u)}.dat`);
    fs.writeFileSync(`${file}.tmp`, await record(password(u)));
    fs.renameSync(`${file}.tmp`, file);
  });
}
