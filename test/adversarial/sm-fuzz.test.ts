// Random XEP-0198 nonza sequences from authenticated clients (SPEC F1–F5), against real Prosody 0.12 through
// mucmux: bogus and huge `h`, enables in every state, resumes of unknown, foreign, expired, live and just-resumed
// sessions, client-sent server elements, abrupt cuts. Every connection ends with a well-formed answer or stream
// error from the known set; mucmux stays up; no session is left behind once hibernations expire; a canary
// session of another account is untouched throughout. Deterministic PRNG: a failure names its seed.
import { it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startProsody, type ProsodyServer } from "../support/prosody.js";
import { metric, startMucmux, type TestMucmux } from "../support/mucmux.js";
import { RawClient } from "../support/raw-client.js";
import { until } from "../support/wait.js";
import { rng } from "./fuzz.js";

const SM = "urn:xmpp:sm:3";
const SEQUENCES = 120;
const KNOWN_ERRORS = /<stream:error><(undefined-condition|unsupported-stanza-type|policy-violation|resource-constraint|conflict|reset|connection-timeout)/;

let server: ProsodyServer;
let mux: TestMucmux;
before(async () => {
  server = await startProsody();
  mux = await startMucmux({ upstreamPort: server.port, extra: { sm: { resumeSeconds: 2, maxQueueStanzas: 50 } } });
});
after(async () => {
  await mux?.stop();
  await server?.stop();
});

it("random stream management sequences get clear answers and leave nothing behind (SPEC F1–F5)", async () => {
  const seed = Number(process.env.MUCMUX_SM_FUZZ_SEED ?? 20261205);
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const canary = await RawClient.connect(mux.directPort);
  const canaryJid = await canary.login("carol", "carolpw", "canary");
  const baseline = mux.app.links.size;
  const ids: string[] = ["", "x", "'\"<>&", "A".repeat(300)];
  const hs = () => pick(["0", "1", "3", "7", "4294967295", "4294967296", "-1", "01", "1e3", "", "ab", String(Math.floor(r() * 20))]);
  const ops = [
    () => `<enable xmlns='${SM}'/>`,
    () => `<enable xmlns='${SM}' resume='true' max='${pick(["0", "1", "999999", "x", "-5"])}'/>`,
    () => `<r xmlns='${SM}'/>`,
    () => `<a xmlns='${SM}' h='${hs()}'/>`,
    () => `<resume xmlns='${SM}' previd='${pick(ids).replace(/'/g, "&apos;").replace(/</g, "&lt;").replace(/&(?!apos;|lt;)/g, "&amp;")}' h='${hs()}'/>`,
    () => `<enabled xmlns='${SM}' id='forged' resume='true'/>`,
    () => `<failed xmlns='${SM}'/>`,
    () => `<message to='carol@localhost/canary' type='chat'><body>fuzz</body></message>`,
    () => `<presence/>`,
  ];
  for (let n = 0; n < SEQUENCES; n++) {
    const c = await RawClient.connect(mux.directPort);
    try {
      const bind = r() < 0.8; // else stay unbound, where <resume/> belongs
      if (bind) await c.login("alice", "alicepw", `f${n}`);
      else await c.authenticate("alice", "alicepw");
      const steps = 1 + Math.floor(r() * 6);
      for (let i = 0; i < steps && !c.closed; i++) {
        c.send(pick(ops)());
        await new Promise((res) => setTimeout(res, 5));
      }
      for (const m of c.text.matchAll(/<enabled xmlns='urn:xmpp:sm:3' id='([^']+)'/g)) ids.push(m[1] as string);
      // Whatever happened was answered clearly: a stream error, if any, is one of the known conditions.
      await new Promise((res) => setTimeout(res, 30));
      if (c.text.includes("<stream:error>")) assert.match(c.text, KNOWN_ERRORS, `seed ${seed}, sequence ${n}: ${c.text.slice(-400)}`);
    } finally {
      if (r() < 0.5) c.close(); // an abrupt cut: resumable ones hibernate
      else { c.send("</stream:stream>"); await new Promise((res) => setTimeout(res, 10)); c.close(); }
    }
  }
  // Nothing is left once the hibernations (2 s) have expired.
  await until("every fuzzed session gone", () => mux.app.links.size === baseline, 15_000);
  assert.equal(await metric(mux.adminPort, "mucmux_sm_hibernated_sessions"), 0);
  assert.equal(await metric(mux.adminPort, "mucmux_sm_unacked_stanzas"), 0);
  canary.send(`<message to='${canaryJid}' type='chat' id='alive'><body>canary sings</body></message>`);
  await canary.waitFor(/canary sings/);
  assert.doesNotMatch(canary.text, /<stream:error/, "the canary was never touched");
  canary.close();
});
