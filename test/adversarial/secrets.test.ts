// Issue 6 item 13: no secrets in logs. Login flows at debug level (client PLAIN to mucmux; mucmux to the
// upstream with PLAIN against the fake upstream and with SCRAM against Prosody; a failed login too);
// every log line is grepped for the passwords, the base64 PLAIN payloads and SCRAM client messages.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import path from "node:path";
import { rmSync } from "node:fs";
import { loadConfig } from "../../src/config/index.js";
import { createApp } from "../../src/app.js";
import { createLogger } from "../../src/log.js";
import { writeTestConfig } from "../support/mucmux.js";
import { FakeUpstream } from "../support/fake-upstream.js";
import { startProsody } from "../support/prosody.js";
import { RawClient } from "../support/raw-client.js";
import { connectClient } from "../support/clients.js";

const PASSWORD = "Sup3r-Secret-Passw0rd";

async function withLoggedMucmux(upstreamPort: number, fn: (directPort: number) => Promise<void>): Promise<string[] & { metrics?: string }> {
  const lines: string[] & { metrics?: string } = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString("utf8").split("\n").filter(Boolean)); cb(); } });
  const configFile = writeTestConfig({ upstreamPort, logLevel: "trace" });
  const config = loadConfig({ file: configFile });
  const app = createApp({ config, log: createLogger("trace", sink), build: { version: "test", commit: "test" } });
  await app.start();
  try {
    await fn(app.listeners.find((l) => l.spec.tls === "direct")?.port ?? 0);
    lines.metrics = await (await fetch(`http://127.0.0.1:${app.adminPort ?? 0}/metrics`)).text();
  } finally {
    await app.drain();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
  }
  return lines;
}

function secretsIn(lines: string[], user: string): string[] {
  const plain = Buffer.from(`\0${user}\0${PASSWORD}`).toString("base64");
  const needles = [
    PASSWORD, plain, plain.slice(0, 16), Buffer.from(PASSWORD).toString("base64").slice(0, 12),
    "c=biws", "Yz1iaXdz", // SCRAM client-final (channel binding "n,,") in clear and base64
    "biwsbj1", // base64 of the SCRAM client-first "n,,n="
  ];
  const hits: string[] = [];
  for (const l of lines) for (const n of needles) if (l.includes(n)) hits.push(`${n} in ${l.slice(0, 200)}`);
  for (const l of lines) if (/\bp=[A-Za-z0-9+/]{20,}/.test(l)) hits.push(`SCRAM proof in ${l.slice(0, 200)}`);
  return hits;
}

describe("item 13: no secrets in logs", () => {
  test("PLAIN through mucmux to a PLAIN upstream, plus a failed login, at trace level", async () => {
    const upstream = await FakeUpstream.start();
    try {
      const lines = await withLoggedMucmux(upstream.port, async (port) => {
        const c = await RawClient.connect(port);
        await c.login("logged", PASSWORD, "r1");
        c.send("<message to='bob@localhost'><body>hello</body></message>");
        await new Promise((r) => setTimeout(r, 100));
        c.close();
        const bad = await RawClient.connect(port);
        bad.open();
        await bad.waitFor(/<mechanism>PLAIN/);
        bad.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0logged\0wrong`).toString("base64")}</auth>`);
        await bad.waitFor(/<failure/);
        bad.close();
      });
      assert.ok(lines.length > 5, `only ${lines.length} log lines: debug logging did not run`);
      assert.deepEqual(secretsIn(lines, "logged"), []);
      assert.ok(!lines.some((l) => l.includes(Buffer.from("\0logged\0wrong").toString("base64"))));
    } finally {
      await upstream.stop();
    }
  });

  test("SCRAM from mucmux to Prosody, at trace level", async () => {
    const prosody = await startProsody({ muc: false, users: { scramuser: PASSWORD } });
    try {
      const lines = await withLoggedMucmux(prosody.port, async (port) => {
        const c = await connectClient({ service: `xmpps://127.0.0.1:${port}`, domain: "localhost", username: "scramuser", password: PASSWORD, resource: "r" });
        await c.stop();
      });
      assert.ok(lines.length > 5);
      assert.match(lines.metrics ?? "", /mechanism="SCRAM-SHA-[^"]*",result="success"/, "the upstream login used SCRAM");
      assert.deepEqual(secretsIn(lines, "scramuser"), []);
    } finally {
      await prosody.stop();
    }
  });
});
