// Scenario: upstream copies and bytes per room message, and upstream stanzas caused by extra joins, with
// N sessions of one account in one room. Counted on the server side: Prosody's debug log (a Prosody of its
// own, since debug logging costs Prosody CPU) shows every stanza it sends, with its `to`. The sender is a
// second account connected directly to Prosody in both modes, so only the receiving account differs.
import { metricSum } from "../lib/mucmux-process.js";
import { logOffset, prosodySent, Collector, joinRoom } from "../lib/muc.js";
import { sleep } from "../lib/target.js";
import type { BenchEnv, Figure, Mode, Sample, Scenario } from "../lib/types.js";
import { BenchSession, DOMAIN, login } from "../lib/xmpp.js";

export const COPY_NS = [1, 2, 5, 10] as const;
export const COPY_ACCOUNTS = COPY_NS.map((n) => `mc${n}`);
export const COPY_SENDER = "mcsend";
const MESSAGES = 10;
const BODY = "x".repeat(120);

const figures: Figure[] = [];
for (const n of COPY_NS) {
  figures.push({ key: `copies${n}`, label: `upstream copies per room message, N=${n}`, unit: "copies", compare: "delta", digits: 2, target: "exactly 1 for any N" });
}
for (const n of COPY_NS) {
  figures.push({ key: `bytes${n}`, label: `upstream bytes to the account per room message, N=${n}`, unit: "B", compare: "ratio", digits: 0 });
}
for (const n of COPY_NS.filter((k) => k > 1)) {
  figures.push({ key: `joinStanzas${n}`, label: `upstream stanzas per 2nd..Nth join, N=${n}`, unit: "stanzas", compare: "delta", digits: 1 });
}

export const mucCopies: Scenario = {
  id: "muc-copies",
  title: "MUC: upstream copies and bytes per room message, upstream stanzas per extra join",
  describe() {
    return `N = ${COPY_NS.join(", ")} sessions of one account join one fresh room (same nick, no history), then another account ` +
      `(always direct) sends ${MESSAGES} groupchat messages (${BODY.length}-byte body). Copies and join stanzas: what Prosody's ` +
      "debug log shows it sent to the account's sessions (direct: the N sessions; mucmux: legs + anchor). Bytes: XML bytes the " +
      "server sent towards the account during the messages (direct: decrypted bytes the N clients received; mucmux: mucmux's " +
      "upstream-side bytes-in counter), per message. A Prosody of its own with debug logging, and a mucmux in front of it.";
  },
  figures,
  run: runOnce,
};

async function runOnce(mode: Mode, env: BenchEnv, iteration: number): Promise<Sample> {
  const { prosody, mucmux } = await env.mucServer();
  const port = mode === "direct" ? (prosody.directTlsPort ?? 0) : mucmux.directPort;
  const sample: Sample = {};
  const opened: BenchSession[] = [];
  try {
    const sender = await login({ port: prosody.directTlsPort ?? 0, user: COPY_SENDER, password: env.password(COPY_SENDER), resource: `s${mode}${iteration}`, ca: env.ca });
    opened.push(sender);
    const senderC = new Collector(sender);
    for (const n of COPY_NS) {
      const account = `mc${n}`;
      const room = `copies-${mode}-${iteration}-${n}-${Date.now().toString(36)}@conference.${DOMAIN}`;
      await joinRoom(senderC, room, "sender");
      const cs: Collector[] = [];
      for (let i = 0; i < n; i++) {
        const s = await login({ port, user: account, password: env.password(account), resource: `r${mode}${iteration}-${i}`, ca: env.ca });
        opened.push(s);
        cs.push(new Collector(s));
      }
      const c0 = cs[0] as Collector;
      await joinRoom(c0, room, "reader");
      await sleep(300);
      const logBeforeJoins = logOffset(prosody.logFile);
      for (const c of cs.slice(1)) await joinRoom(c, room, "reader");
      await sleep(500); // presence broadcasts to the other sessions settle
      if (n > 1) sample[`joinStanzas${n}`] = prosodySent(prosody.logFile, logBeforeJoins, `${account}@${DOMAIN}`) / (n - 1);
      const logBefore = logOffset(prosody.logFile);
      const bytes0 = cs.reduce((a, c) => a + c.bytes, 0);
      const up0 = mode === "mucmux" ? metricSum(await mucmux.metrics(), "mucmux_bytes_total", { direction: "in", side: "upstream" }) : 0;
      const all = cs.map((c) => waitCount(c, "</body>", MESSAGES));
      let out = "";
      for (let k = 0; k < MESSAGES; k++) out += `<message to='${room}' type='groupchat' id='mc${k}'><body>${BODY}</body></message>`;
      sender.write(out);
      await Promise.all(all);
      await sleep(500);
      sample[`copies${n}`] = prosodySent(prosody.logFile, logBefore, `${account}@${DOMAIN}`, (l) => l.includes("<message") && l.includes("groupchat")) / MESSAGES;
      if (mode === "direct") sample[`bytes${n}`] = (cs.reduce((a, c) => a + c.bytes, 0) - bytes0) / MESSAGES;
      else sample[`bytes${n}`] = (metricSum(await mucmux.metrics(), "mucmux_bytes_total", { direction: "in", side: "upstream" }) - up0) / MESSAGES;
      await Promise.all(opened.splice(1).map((s) => s.close()));
      senderC.session.write(`<presence to='${room}/sender' type='unavailable'/>`);
    }
    return sample;
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
}

/** Resolves when `needle` has been received `count` times from now on. */
function waitCount(c: Collector, needle: string, count: number, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const prev = c.session.onData;
    const t = setTimeout(() => reject(new Error(`${c.session.jid}: ${seen}/${count} ${needle} within ${timeoutMs} ms`)), timeoutMs);
    let carry = "";
    c.session.onData = (chunk) => {
      prev(chunk);
      const text = carry + chunk.toString("latin1");
      for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) seen++;
      carry = text.slice(Math.max(0, text.length - needle.length + 1));
      if (seen >= count) {
        clearTimeout(t);
        c.session.onData = prev;
        resolve();
      }
    };
  });
}
