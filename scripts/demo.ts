// `npm run demo`: what account-level MUC saves, measured on a real Prosody on loopback.
// Three devices of alice and one of bob in a room, once through mucmux and once directly; the copies the
// server sent to alice's account are counted from Prosody's own debug log, not from mucmux.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { xml } from "@xmpp/xml";
import { testCertificate } from "../test/support/certs.js";

const cert = testCertificate();
if (!process.env.MUCMUX_DEMO_CHILD) {
  // The throwaway certificate must be trusted by the demo's clients (Node reads NODE_EXTRA_CA_CERTS only at
  // start): run again with it, next to whatever the environment already trusts.
  const prior = process.env.NODE_EXTRA_CA_CERTS;
  let bundle = cert.certFile;
  if (prior && existsSync(prior)) {
    bundle = path.join(path.dirname(cert.certFile), "demo-bundle.pem");
    writeFileSync(bundle, `${readFileSync(prior, "utf8").trimEnd()}\n${cert.cert}`);
  }
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: bundle, MUCMUX_DEMO_CHILD: "1" },
  });
  process.exit(r.status ?? 1);
}

function ensureProsody(): void {
  try {
    execFileSync("sh", ["-c", "command -v prosody"], { stdio: "ignore" });
  } catch {
    console.log("Prosody is not installed; installing it with apt-get (no questions asked)...");
    execFileSync("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prosody"], { stdio: "inherit" });
  }
}

ensureProsody();
const { startProsody } = await import("../test/support/prosody.js");
const { startMucmux } = await import("../test/support/mucmux.js");
const { connectClient } = await import("../test/support/clients.js");
const { join, isGroupchat, serverLogReaches } = await import("../test/integration/muc-support.js");

const prosody = await startProsody({ muc: true, debugLog: true });
const mux = await startMucmux({ upstreamPort: prosody.port });
console.log(`Prosody on 127.0.0.1:${prosody.port}; mucmux on 127.0.0.1:${mux.starttlsPort} (STARTTLS) in front of it.\n`);

type Mode = "through mucmux" | "direct";
const MESSAGES = 5;

async function scenario(mode: Mode) {
  const service = mode === "direct" ? `xmpp://127.0.0.1:${prosody.port}` : `xmpp://127.0.0.1:${mux.starttlsPort}`;
  const room = `demo-${mode === "direct" ? "direct" : "mucmux"}@conference.localhost`;
  const login = (username: string, resource: string) =>
    connectClient({ service, domain: "localhost", username, password: `${username}pw`, resource });
  const devices = [await login("alice", "phone"), await login("alice", "laptop"), await login("alice", "tablet")];
  const bob = await login("bob", "desktop");
  for (const c of [...devices, bob]) await c.send(xml("presence"));
  await join(bob, room, "bob");
  for (const d of devices) await join(d, room, "alice");
  const occupants = bob.received.filter((el) => el.name === "presence" && el.attrs.from === `${room}/alice` && !el.attrs.type).length;
  const ids: string[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const id = `demo-${mode === "direct" ? "d" : "m"}-${i}`;
    ids.push(id);
    await bob.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, `message ${i}`)));
    for (const d of devices) await d.waitFor(isGroupchat(room, `message ${i}`));
  }
  await serverLogReaches(prosody, bob, room, "alice@localhost"); // Prosody's log has every copy of the messages by then
  const log = readFileSync(prosody.logFile, "utf8").split("\n");
  const upstream = ids.map((id) => log.filter((l) => /Sending\[c2s\]: <message/.test(l) && l.includes(`id='${id}'`) && l.includes("to='alice@localhost/")).length);
  const received = devices.map((d) => d.received.filter((el) => el.name === "message" && el.attrs.type === "groupchat" && el.getChildText("body")?.startsWith("message ")).length);
  for (const c of [...devices, bob]) await c.stop();
  return { occupants, upstream, received };
}

const via = await scenario("through mucmux");
const direct = await scenario("direct");
const perMsg = (u: number[]) => u.reduce((a, b) => a + b, 0) / u.length;

const rows: [string, string, string][] = [
  ["", "through mucmux", "direct to Prosody"],
  ["alice's devices in the room", "3", "3"],
  ["occupants 'alice' bob saw join", String(via.occupants), String(direct.occupants)],
  [`copies Prosody sent to alice per message (${MESSAGES} messages)`, String(perMsg(via.upstream)), String(perMsg(direct.upstream))],
  ["messages each device received", via.received.join(" / "), direct.received.join(" / ")],
];
const w = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length)), Math.max(...rows.map((r) => r[2].length))];
for (const r of rows) console.log(`${r[0].padEnd(w[0] ?? 0)}  ${r[1].padStart(w[1] ?? 0)}  ${r[2].padStart(w[2] ?? 0)}`);
console.log(`\nupstream copies per message: ${perMsg(via.upstream)} (${perMsg(direct.upstream)} without mucmux)`);
const metrics = await (await fetch(`http://127.0.0.1:${mux.adminPort}/metrics`)).text();
for (const name of ["mucmux_muc_upstream_joins_total", "mucmux_muc_synthesized_joins_total", "mucmux_muc_upstream_copies_saved_total"]) {
  const line = metrics.split("\n").find((l) => l.startsWith(name));
  if (line) console.log(`  ${line}`);
}

await mux.stop();
await prosody.stop();
