// The offline stage's disco#info handling (SPEC D1, B10): every disco#info answer to a device gains the
// offline features, but only an answer to the device's own question teaches mucmux a MUC service.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { createMucOfflineStage } from "../../../src/stages/muc-offline/index.js";
import { createChainRunner, type Delivery } from "../../../src/chain/runner.js";
import { EventBus } from "../../../src/chain/events.js";
import { emptyViews } from "../../../src/chain/views.js";
import type { DeliverOptions, Session } from "../../../src/chain/session.js";
import { AccountRegistry } from "../../../src/account/registry.js";
import { loadConfig } from "../../../src/config/index.js";
import { createMetrics } from "../../../src/metrics/metrics.js";
import { createLogger } from "../../../src/log.js";
import { stanza } from "../helpers.js";

const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const OFFLINE_FEATURE = "http://tigase.org/protocol/muc#offline";

function harness() {
  const log = createLogger("silent");
  const metrics = createMetrics({ version: "test", commit: "test" });
  const events = new EventBus((_e, err) => { throw err; });
  const views = emptyViews();
  const learnt: string[] = [];
  views.services = { isService: () => false, settled: () => true, ready: async () => {}, learn: (d) => void learnt.push(d) };
  const accounts = new AccountRegistry({
    log, metrics, events,
    connectUpstream: () => assert.fail("never connects"),
    onAnchorStanza: () => {},
  });
  const stage = createMucOfflineStage({ config: loadConfig({ flags: { domains: "example.test" } }), metrics, log, accounts, events, views, store: () => undefined });
  const runner = createChainRunner({ stages: [stage], log });
  const written: Element[] = [];
  const leg: Element[] = [];
  const session: Session = {
    id: 1, jid: "alice@example.test/phone", online: true, slots: new Map(),
    deliver(el: Element, opts?: DeliverOptions) { runner.run("s2c", session, el, s2c, opts?.origin ?? "local", opts); },
    sendUpstream: (el) => void leg.push(el),
  };
  const s2c: Delivery = { onward: (el) => void written.push(el), back: (el) => void leg.push(el) };
  const c2s: Delivery = { onward: (el) => void leg.push(el), back: (el) => session.deliver(el) };
  accounts.sessionBound(session, { username: "alice", secret: { kind: "password", password: "pw" } });
  return {
    learnt, written, leg, session,
    sends: (xml: string) => runner.run("c2s", session, stanza(xml), c2s, "client"),
    receives: (xml: string) => session.deliver(stanza(xml), { origin: "upstream" }),
  };
}

const answer = (id: string, from: string) =>
  `<iq type='result' id='${id}' from='${from}' to='alice@example.test/phone'><query xmlns='${DISCO_INFO}'>` +
  `<identity category='conference' type='text'/><feature var='http://jabber.org/protocol/muc'/></query></iq>`;
const features = (el: Element | undefined) => el?.getChild("query", DISCO_INFO)?.getChildren("feature").map((f) => f.attrs.var) ?? [];

describe("muc-offline: disco#info answers", () => {
  it("SPEC B10, D1: the answer to the device's own question teaches the service and gains the offline feature", () => {
    const h = harness();
    h.sends(`<iq type='get' id='d1' to='muc.example.test'><query xmlns='${DISCO_INFO}'/></iq>`);
    assert.equal(h.leg.length, 1, "the question goes on unchanged");
    h.receives(answer("d1", "muc.example.test"));
    assert.deepEqual(h.learnt, ["muc.example.test"]);
    assert.ok(features(h.written[0]).includes(OFFLINE_FEATURE));
  });

  it("SPEC B10: an unsolicited answer (no question, another id, or from elsewhere) teaches nothing; it still gains the feature", () => {
    const h = harness();
    h.receives(answer("nobody-asked", "evil.example"));
    h.sends(`<iq type='get' id='d2' to='muc.example.test'><query xmlns='${DISCO_INFO}'/></iq>`);
    h.receives(answer("d2", "other.example"));
    h.receives(answer("d2", "muc.example.test")); // the question was used up by the wrong answer's id
    assert.deepEqual(h.learnt, []);
    assert.equal(h.written.length, 3);
    assert.ok(h.written.every((el) => features(el).includes(OFFLINE_FEATURE)));
  });

  it("SPEC B10: beyond 32 pending questions the oldest is forgotten; answered ones leave nothing in the session", () => {
    const h = harness();
    const ask = (i: number) => h.sends(`<iq type='get' id='q${i}' to='muc${i}.example.test'><query xmlns='${DISCO_INFO}'/></iq>`);
    for (let i = 0; i <= 32; i++) ask(i); // q0 forgotten
    ask(1); // asked again: the newest, so q2 is the oldest now
    ask(33); // q2 forgotten
    for (let i = 0; i <= 33; i++) h.receives(answer(`q${i}`, `muc${i}.example.test`));
    assert.deepEqual(h.learnt, [1, ...Array.from({ length: 31 }, (_, i) => i + 3)].map((i) => `muc${i}.example.test`));
    assert.equal(h.session.slots.size, 0, "no map kept for an idle session");
  });
});
