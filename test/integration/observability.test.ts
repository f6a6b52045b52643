// Operations, checked with the real tools: a real Prometheus server (Debian `prometheus`) scrapes mucmux in
// front of a real Prosody while clients log in, join a room and chat, with the repository's rules loaded;
// the live /metrics passes `promtool check metrics`; every PromQL expression of the dashboard and the rules
// reads only metrics the live scrape has and runs on the server; and a certificate Secret update (the
// kubelet's `..data` symlink swap) reaches a running mucmux.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { X509Certificate } from "node:crypto";
import { xml } from "@xmpp/xml";
import { generateSelfSigned } from "../../src/net/tls/index.js";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { startMucmux, type TestMucmux } from "../support/mucmux.js";
import { connectClient, type TestClient } from "../support/clients.js";
import { RawClient } from "../support/raw-client.js";
import { startPrometheus, type PrometheusServer } from "../support/prometheus.js";
import { isGroupchat, join, waitAfter } from "./muc-support.js";
import { until } from "../support/wait.js";
import {
  dashboardExpressions, exposedNames, loadDashboard, metricNames, recordedNames, RULES_FILE, ruleExpressions, variableSelectors,
} from "../unit/deploy/promql.js";
import { requireTool, tool } from "../unit/deploy/tools.js";

/** Series Prometheus itself adds to every target; accepted in expressions when the server has them. */
const SCRAPE_SERIES = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added", "scrape_samples_post_metric_relabeling"]);

let prosody: ProsodyServer;
let mux: TestMucmux;
let prom: PrometheusServer;
const clients: TestClient[] = [];

before(async () => {
  await requireTool("promtool");
  prosody = await startProsody({ muc: true });
  mux = await startMucmux({ upstreamPort: prosody.port });
  prom = await startPrometheus({ targets: [`127.0.0.1:${mux.adminPort}`], job: "mucmux", interval: "1s", ruleFiles: [RULES_FILE] });
});

after(async () => {
  await Promise.allSettled(clients.map((c) => c.stop()));
  await prom?.stop();
  await mux?.stop();
  await prosody?.stop();
});

async function login(user: string, mode: "starttls" | "direct", resource: string): Promise<TestClient> {
  const service = mode === "starttls" ? `xmpp://127.0.0.1:${mux.starttlsPort}` : `xmpps://127.0.0.1:${mux.directPort}`;
  const c = await connectClient({ service, domain: "localhost", username: user, password: `${user}pw`, resource });
  clients.push(c);
  return c;
}

const scrape = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

test("a real Prometheus scrapes mucmux during logins, joins and messages and finds the series", async () => {
  await prom.waitFor('up{job="mucmux"} == 1');

  // Traffic: two devices of alice (one per listener), bob, a room, room messages and a chat.
  const room = `ops-${Math.random().toString(36).slice(2, 8)}@conference.localhost`;
  const a1 = await login("alice", "direct", "a1");
  const a2 = await login("alice", "starttls", "a2");
  const bob = await login("bob", "direct", "b1");
  await join(a1, room, "alice");
  await join(a2, room, "alice"); // answered from mucmux's cache: an upstream join saved
  await join(bob, room, "bob");
  for (let i = 0; i < 5; i++) {
    const s1 = a1.received.length;
    const s2 = a2.received.length;
    await bob.send(xml("message", { to: room, type: "groupchat", id: `ops-${i}` }, xml("body", {}, `hello ${i}`)));
    await waitAfter(a1, s1, isGroupchat(room, `hello ${i}`));
    await waitAfter(a2, s2, isGroupchat(room, `hello ${i}`));
    if (i === 0) {
      // A rate needs an increase between two scrapes of a series: once Prometheus has scraped the first
      // message's counts (the groupchat series is new), the other four increase them in a later scrape.
      await prom.waitFor('mucmux_stanzas_total{job="mucmux",direction="c2s",kind="message",type="groupchat"} >= 1');
      await prom.waitFor('mucmux_muc_upstream_copies_saved_total{job="mucmux"} >= 1');
    }
  }
  await a1.send(xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, "hi")));
  await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "hi");
  const raw = await RawClient.connect(mux.directPort);
  raw.open();
  await raw.waitFor(/<mechanism>PLAIN<\/mechanism>/);
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0carol\0wrong").toString("base64")}</auth>`);
  await raw.waitFor(/<not-authorized\/>/);
  raw.close();

  // What the server sees, while the clients are still connected.
  const expectations = [
    'mucmux_build_info{job="mucmux",version="test",commit="test"} == 1',
    'sum(mucmux_connections_open{job="mucmux",side="client"}) >= 3',
    'mucmux_connections_open{job="mucmux",side="client",listener="starttls"} >= 1',
    'sum(mucmux_connections_open{job="mucmux",side="upstream"}) >= 3',
    'sum(mucmux_connections_accepted_total{job="mucmux"}) >= 4',
    'mucmux_streams_authenticated_total{job="mucmux"} >= 3',
    'mucmux_tls_handshakes_total{job="mucmux",mode="direct",result="success"} > 0',
    'mucmux_tls_handshakes_total{job="mucmux",mode="starttls",result="success"} > 0',
    'mucmux_tls_handshake_duration_seconds_count{job="mucmux"} > 0',
    'sum(mucmux_sasl_outcomes_total{job="mucmux",result="success"}) >= 3',
    'sum(mucmux_sasl_outcomes_total{job="mucmux",result="not-authorized"}) >= 1',
    'mucmux_stanzas_total{job="mucmux",direction="c2s",kind="message",type="groupchat"} >= 5',
    'mucmux_stanzas_total{job="mucmux",direction="c2s",kind="message",type="chat"} >= 1',
    'mucmux_stanzas_total{job="mucmux",direction="s2c",kind="message",type="chat"} >= 1',
    'mucmux_stanzas_total{job="mucmux",direction="c2s",kind="presence"} > 0',
    'mucmux_stanzas_total{job="mucmux",direction="c2s",kind="iq"} > 0',
    'mucmux_bytes_total{job="mucmux",direction="in",side="client"} > 0',
    'mucmux_bytes_total{job="mucmux",direction="out",side="upstream"} > 0',
    'mucmux_upstream_connect_duration_seconds_count{job="mucmux"} >= 4',
    'mucmux_upstream_reachable{job="mucmux"} == 1',
    'mucmux_anchors_open{job="mucmux"} >= 2',
    'mucmux_rooms_managed{job="mucmux",state="joined"} >= 2',
    'mucmux_muc_upstream_joins_total{job="mucmux"} >= 2',
    'mucmux_muc_upstream_joins_saved_total{job="mucmux"} >= 1',
    'mucmux_muc_synthesized_joins_total{job="mucmux"} >= 1',
    'mucmux_muc_fanout_deliveries_total{job="mucmux"} >= 10',
    'mucmux_muc_upstream_copies_saved_total{job="mucmux"} >= 5',
    'mucmux_muc_fanout_recipients_count{job="mucmux"} > 0',
    'mucmux_tls_certificate_expiry_timestamp_seconds{job="mucmux"} > time()',
    'mucmux_event_loop_lag_seconds_count{job="mucmux"} > 0',
    'mucmux_draining{job="mucmux"} == 0',
    'process_resident_memory_bytes{job="mucmux"} > 0',
    // recording rules of deploy/prometheus/mucmux.rules.yml, evaluated by the server
    'instance:mucmux_muc_upstream_copies_saved:rate5m{job="mucmux"} > 0',
    'instance:mucmux_muc_fanout_deliveries:rate5m{job="mucmux"} > 0',
    'sum(instance:mucmux_stanzas:rate5m{job="mucmux"}) > 0',
    'instance:mucmux_event_loop_lag_seconds:p99_5m{job="mucmux"} >= 0',
  ];
  const missing: string[] = [];
  for (const e of expectations) {
    try {
      await prom.waitFor(e, 20_000);
    } catch {
      missing.push(`${e}  (now: ${JSON.stringify(await prom.query(e.replace(/\s*(==|>=|>|<)\s*[^\s)]+$/, "")))})`);
    }
  }
  assert.deepEqual(missing, [], `series Prometheus did not find:\n${missing.join("\n")}`);

  // The rules load and evaluate cleanly; nothing fires against a healthy setup.
  type Rules = { groups: { name: string; rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[] };
  let rules: Rules = { groups: [] };
  await until("every rule evaluated", async () => {
    rules = await prom.api<Rules>("rules");
    const all = rules.groups.flatMap((g) => g.rules);
    return all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith("0001-"));
  }, 15_000, 250);
  const all = rules.groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.groups.map((g) => g.name).sort(), ["mucmux.alerts", "mucmux.recording"]);
  assert.deepEqual(all.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.health} ${r.lastError ?? ""}`), []);
  const alerts = await prom.api<{ alerts: { labels: Record<string, string>; state: string }[] }>("alerts");
  assert.deepEqual(alerts.alerts.filter((a) => a.state === "firing").map((a) => a.labels.alertname), []);
});

test("the live /metrics passes promtool check metrics with no findings at all", async () => {
  const text = await scrape(mux.adminPort);
  // A real scrape of the running mucmux, default process/Node metrics included.
  for (const family of ["mucmux_build_info", "process_cpu_seconds_total", "nodejs_active_handles", "nodejs_active_requests", "nodejs_active_resources"]) {
    assert.match(text, new RegExp(`^# TYPE ${family} `, "m"), `${family} is missing from the scrape`);
  }
  const r = await tool("promtool", ["check", "metrics"], { input: text });
  const findings = `${r.stdout}${r.stderr}`.split("\n").map((l) => l.trim()).filter(Boolean);
  assert.deepEqual(findings, [], `promtool check metrics (exit ${r.code}):\n${findings.join("\n")}`);
  assert.equal(r.code, 0, `promtool check metrics exited ${r.code}`);
  // label values stay bounded: no JID, room, nick, resource or address in any mucmux_* series
  for (const line of text.split("\n").filter((l) => l.startsWith("mucmux_"))) {
    assert.doesNotMatch(line, /@|localhost|127\.0\.0\.1|alice|bob|carol|ops-/, line);
  }
});

test("every PromQL expression of the dashboard and the rules reads only exported metrics, and runs on Prometheus", async () => {
  const text = await scrape(mux.adminPort);
  const exposed = exposedNames(text);
  const recorded = recordedNames();
  const known = new Set(await prom.api<string[]>("label/__name__/values"));
  const exprs = [...dashboardExpressions(), ...variableSelectors(), ...ruleExpressions()];
  assert.ok(exprs.length > 50);
  const unknown: string[] = [];
  const used = new Set<string>();
  for (const e of exprs) {
    for (const name of metricNames(e.promql)) {
      used.add(name);
      const ok = exposed.has(name) || recorded.has(name) || (SCRAPE_SERIES.has(name) && known.has(name));
      if (!ok) unknown.push(`${e.where}: ${name}`);
    }
  }
  assert.deepEqual(unknown, [], `expressions read metrics the live scrape does not have:\n${unknown.join("\n")}`);
  // ... and every expression is accepted by the running server
  const failed: string[] = [];
  for (const e of exprs) {
    await prom.query(e.promql).catch((err: unknown) => failed.push(`${e.where}: ${(err as Error).message}`));
  }
  assert.deepEqual(failed, []);
  // The dashboard shows every mucmux metric family.
  const dash = new Set(dashboardExpressions(loadDashboard()).flatMap((e) => metricNames(e.promql)).map((n) => n.replace(/_(bucket|sum|count)$/, "")));
  const families = [...text.matchAll(/^# TYPE (mucmux_\S+) /gm)].map((m) => m[1] ?? "");
  const absent = families.filter((f) => !dash.has(f));
  assert.deepEqual(absent, [], "mucmux metrics missing from the dashboard");
});

test("a certificate Secret update (the kubelet's ..data symlink swap) reaches a running mucmux", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mucmux-secret-"));
  let m: TestMucmux | undefined;
  const sockets: tls.TLSSocket[] = [];
  try {
    const pairA = generateSelfSigned({ names: ["localhost"], days: 20 });
    const pairB = generateSelfSigned({ names: ["localhost"], days: 40 });
    const version = (name: string, pair: { cert: string; key: string }) => {
      mkdirSync(path.join(dir, name));
      writeFileSync(path.join(dir, name, "tls.crt"), pair.cert);
      writeFileSync(path.join(dir, name, "tls.key"), pair.key);
    };
    // The layout of a Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    version("..2026_01_01_00_00_00.1", pairA);
    symlinkSync("..2026_01_01_00_00_00.1", path.join(dir, "..data"));
    symlinkSync("..data/tls.crt", path.join(dir, "tls.crt"));
    symlinkSync("..data/tls.key", path.join(dir, "tls.key"));
    m = await startMucmux({
      upstreamPort: prosody.port,
      extra: { tls: { cert: path.join(dir, "tls.crt"), key: path.join(dir, "tls.key"), reloadSeconds: 1 } },
    });
    const port = m.directPort;
    const adminPort = m.adminPort;
    const served = async (): Promise<{ socket: tls.TLSSocket; fingerprint: string | undefined }> => {
      const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false });
      sockets.push(socket);
      socket.on("error", () => {});
      await once(socket, "secureConnect");
      return { socket, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 };
    };
    const fpA = new X509Certificate(pairA.cert).fingerprint256;
    const fpB = new X509Certificate(pairB.cert).fingerprint256;
    const first = await served();
    assert.equal(first.fingerprint, fpA);

    // The kubelet's atomic update: write the new version, point ..data_tmp at it, rename over ..data.
    version("..2026_02_01_00_00_00.2", pairB);
    symlinkSync("..2026_02_01_00_00_00.2", path.join(dir, "..data_tmp"));
    renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
    rmSync(path.join(dir, "..2026_01_01_00_00_00.1"), { recursive: true });

    // The reload's event: mucmux counts it once the new pair is in place; the next connection gets it.
    await until("the certificate reload", async () => /^mucmux_tls_certificate_reloads_total\{result="success"\} [1-9]/m.test(await scrape(adminPort)), 10_000, 100);
    const now = await served();
    assert.equal(now.fingerprint, fpB, "a new TLS connection gets the new certificate");
    // The connection made before the update still works: it gets a stream.
    assert.equal(first.socket.destroyed, false);
    let text = "";
    first.socket.on("data", (d: Buffer) => { text += d.toString(); });
    first.socket.write("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await until("stream features on the old connection", () => text.includes("<stream:features"), 5000);
    const metrics = await scrape(m.adminPort);
    assert.match(metrics, /^mucmux_tls_certificate_reloads_total\{result="success"\} [1-9]/m);
    const expiry = Number(/^mucmux_tls_certificate_expiry_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
    assert.equal(expiry, Date.parse(new X509Certificate(pairB.cert).validTo) / 1000);
  } finally {
    for (const s of sockets) s.destroy();
    await m?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
