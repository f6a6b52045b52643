// A stand-in XEP-0357 app server: an XEP-0114 component (jabber:component:accept) connected to a test server's
// `push.localhost` component port (the servers' `push` option). It answers every pubsub publish with a result, as
// a real app server does, and records it: the node, who sent it, the urn:xmpp:push:summary fields of the
// notification and the publish-options (the client's secret). Any other iq get/set gets service-unavailable.
//
//   const server = await startProsody({ push: true });
//   const app = await startPushAppServer(server.pushComponent);
//   ... await app.waitForPublishes(1, 5000, "node-1");  app.publishes[0].summary?.["last-message-body"]
//   await app.close();
import { createHash } from "node:crypto";
import net from "node:net";
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";
import { escapeAttr } from "../../src/xml/serialize.js";
import type { PushComponent } from "./server.js";
import { STANZA_LIMITS } from "./stanzas.js";

export const NS_COMPONENT = "jabber:component:accept";
export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUSH = "urn:xmpp:push:0";
export const NS_DATA = "jabber:x:data";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** One pubsub publish the server sent to the app server. */
export interface PushPublish {
  /** The pubsub node (the `node` the client enabled push with). */
  node: string;
  /** The publishing entity: the user's server (Prosody and ejabberd publish from the bare domain, "localhost"). */
  from: string;
  id: string;
  /** Valued fields of the urn:xmpp:push:summary form in <notification> (see formFields); undefined without a form. */
  summary: Record<string, string> | undefined;
  /** Valued fields of the <publish-options> form, e.g. the client's `secret`; undefined without one. */
  publishOptions: Record<string, string> | undefined;
  /** Date.now() when it arrived. */
  at: number;
  stanza: Element;
}

export interface PushAppServer {
  /** The component's JID (push.localhost). */
  readonly jid: string;
  /** Every publish received, in order. */
  readonly publishes: readonly PushPublish[];
  /** Every stanza received after the handshake, in order (publishes and anything else). */
  readonly stanzas: readonly Element[];
  /** Publishes for `node`. */
  publishesFor(node: string): PushPublish[];
  /**
   * Resolves with the publishes (for `node`, when given) once there are at least `count`; rejects after `timeoutMs`
   * (default 10 s) with what did arrive.
   */
  waitForPublishes(count: number, timeoutMs?: number, node?: string): Promise<PushPublish[]>;
  /** True once the server closed the component stream or the socket. */
  readonly closed: boolean;
  /** Closes the component stream and the socket; idempotent. */
  close(): Promise<void>;
}

/**
 * The data form's fields that carry a value, as var → value (several values joined with "\n"); FORM_TYPE and
 * fields without <value> (Prosody sends empty pending-subscription-count and last-message-sender) left out.
 */
export function formFields(x: Element | undefined): Record<string, string> | undefined {
  if (!x) return undefined;
  const out: Record<string, string> = {};
  for (const f of x.getChildren("field")) {
    const name = f.attrs.var;
    const values = f.getChildren("value");
    if (name === undefined || name === "FORM_TYPE" || values.length === 0) continue;
    out[name] = values.map((v) => v.text()).join("\n");
  }
  return out;
}

/** XEP-0114 §3: connects as `component.jid`, handshakes with SHA-1(stream id + secret), then serves. */
export async function startPushAppServer(component: PushComponent | undefined, opts: { timeoutMs?: number } = {}): Promise<PushAppServer> {
  if (!component) throw new Error("startPushAppServer: the server was started without the `push` option (no pushComponent)");
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: component.host, port: component.port }, () => { s.off("error", reject); resolve(s); });
    s.once("error", reject);
  });
  socket.on("error", () => {}); // a reset ends up in "close"

  const publishes: PushPublish[] = [];
  const stanzas: Element[] = [];
  const wakers = new Set<() => void>();
  const wake = () => { for (const w of [...wakers]) w(); };
  let closed = false;
  let handshake: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const send = (xml: string) => { if (!socket.destroyed) socket.write(xml); };

  const onStanza = (el: Element) => {
    if (el.name === "handshake") return handshake?.resolve();
    if (el.name === "stream:error") {
      return handshake?.reject(new Error(`push component ${component.jid}: stream error ${el.toString()}`));
    }
    stanzas.push(el);
    if (el.name !== "iq" || (el.attrs.type !== "set" && el.attrs.type !== "get")) return void wake();
    const { id = "", from = "" } = el.attrs;
    const address = `id='${escapeAttr(id)}' from='${escapeAttr(el.attrs.to ?? component.jid)}' to='${escapeAttr(from)}'`;
    const publish = el.attrs.type === "set" ? el.getChild("pubsub", NS_PUBSUB)?.getChild("publish") : undefined;
    if (!publish) {
      send(`<iq type='error' ${address}><error type='cancel'><service-unavailable xmlns='${NS_STANZAS}'/></error></iq>`);
      return void wake();
    }
    const notification = publish.getChild("item")?.getChild("notification", NS_PUSH);
    const options = el.getChild("pubsub", NS_PUBSUB)?.getChild("publish-options")?.getChild("x", NS_DATA);
    publishes.push({
      node: publish.attrs.node ?? "", from, id, at: Date.now(), stanza: el,
      summary: formFields(notification?.getChild("x", NS_DATA)), publishOptions: formFields(options),
    });
    send(`<iq type='result' ${address}/>`);
    wake();
  };

  const parser = new StreamParser({
    onStreamOpen: (h) => {
      const digest = createHash("sha1").update(`${h.attrs.id ?? ""}${component.secret}`, "utf8").digest("hex");
      send(`<handshake>${digest}</handshake>`);
    },
    onElement: onStanza,
    onStreamClose: () => socket.end(),
    onError: () => socket.destroy(),
  }, STANZA_LIMITS, { contentNamespace: NS_COMPONENT });
  socket.on("data", (d: Buffer) => parser.write(d));
  socket.on("close", () => {
    closed = true;
    handshake?.reject(new Error(`push component ${component.jid}: connection closed before the handshake`));
    wake();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`push component ${component.jid}: no handshake within ${timeoutMs} ms`)), timeoutMs);
      handshake = {
        resolve: () => { clearTimeout(timer); handshake = undefined; resolve(); },
        reject: (e) => { clearTimeout(timer); handshake = undefined; reject(e); },
      };
      send(`<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' xmlns:stream='http://etherx.jabber.org/streams' ` +
        `to='${escapeAttr(component.jid)}'>`);
    });
  } catch (e) {
    socket.destroy();
    throw e;
  }

  const publishesFor = (node: string) => publishes.filter((p) => p.node === node);
  return {
    jid: component.jid,
    publishes,
    stanzas,
    publishesFor,
    get closed() {
      return closed;
    },
    async waitForPublishes(count, waitMs = 10_000, node) {
      const matching = () => (node === undefined ? [...publishes] : publishesFor(node));
      const end = Date.now() + waitMs;
      while (matching().length < count) {
        const left = end - Date.now();
        if (left <= 0 || closed) {
          const got = matching();
          throw new Error(`push app server: ${got.length} of ${count} publishes${node === undefined ? "" : ` for node ${node}`} ` +
            `${closed ? "before the component connection closed" : `within ${waitMs} ms`}; received: ` +
            `${stanzas.map((s) => s.toString()).join("").slice(-2000)}`);
        }
        await new Promise<void>((resolve) => {
          const done = () => { clearTimeout(timer); wakers.delete(done); resolve(); };
          const timer = setTimeout(done, left);
          wakers.add(done);
        });
      }
      return matching();
    },
    async close() {
      if (socket.destroyed) return;
      const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.end("</stream:stream>");
      const timer = setTimeout(() => socket.destroy(), 2000);
      await gone;
      clearTimeout(timer);
    },
  };
}
