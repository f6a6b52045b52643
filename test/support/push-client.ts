// The client side of XEP-0357 push and XEP-0198 stream management, on a raw XmppConnection (scram-client.ts), for
// tests that need a session the server hibernates: enable push the way Conversations does, enable stream
// management with resumption, keep every received stanza acknowledged, and cut the TCP connection without
// closing the stream (what a phone's lost network looks like to the server).
//
//   const r = await scramLogin({ port, transport: "plain", username: "alice", password: "alicepw", mechanism: "SCRAM-SHA-1" });
//   await enablePush(r.conn, { jid: server.pushComponent.jid, node: "n1", secret: "s1" });
//   const sm = await StreamManagement.enable(r.conn);   // resume='true'
//   r.conn.send("<presence/>");
//   await sm.cut();                                     // everything acked, then the socket is destroyed
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import type { Element } from "@xmpp/xml";
import { escapeAttr, escapeText } from "../../src/xml/serialize.js";
import type { XmppTestServer } from "./server.js";
import { until } from "./wait.js";
import type { XmppConnection } from "./xmpp-connection.js";

export const NS_PUSH = "urn:xmpp:push:0";
export const NS_SM = "urn:xmpp:sm:3";

export interface PushEnableOptions {
  /** The app server's JID (the servers' push component: push.localhost). */
  jid: string;
  /** The pubsub node the app server gave this device. */
  node: string;
  /** publish-options `secret` (Conversations sends one; the server passes it on in every publish). Omitted: no form. */
  secret?: string;
  id?: string;
}

/**
 * The XEP-0357 §5 enable IQ as Conversations sends it (IqGenerator.enablePush): jid and node, and a
 * pubsub#publish-options form carrying the secret.
 */
export function pushEnableIq(o: PushEnableOptions): string {
  const id = o.id ?? `push-${randomBytes(4).toString("hex")}`;
  const form = o.secret === undefined ? "" : "<x xmlns='jabber:x:data' type='submit'>" +
    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
    `<field var='secret'><value>${escapeText(o.secret)}</value></field></x>`;
  return `<iq type='set' id='${escapeAttr(id)}'><enable xmlns='${NS_PUSH}' jid='${escapeAttr(o.jid)}' node='${escapeAttr(o.node)}'>` +
    `${form}</enable></iq>`;
}

/** Sends the enable IQ and waits for its answer; throws unless it is a result. */
export async function enablePush(conn: XmppConnection, o: PushEnableOptions, timeoutMs = 10_000): Promise<void> {
  const id = o.id ?? `push-${randomBytes(4).toString("hex")}`;
  conn.send(pushEnableIq({ ...o, id }));
  const iq = await conn.waitFor((el) => el.name === "iq" && el.attrs.id === id, timeoutMs);
  if (iq.attrs.type !== "result") throw new Error(`push enable refused: ${iq.toString()}`);
}

/** XEP-0357 §6: disables push for `jid` (and `node`, when given); throws unless the answer is a result. */
export async function disablePush(conn: XmppConnection, o: { jid: string; node?: string }, timeoutMs = 10_000): Promise<void> {
  const id = `push-off-${randomBytes(4).toString("hex")}`;
  const node = o.node === undefined ? "" : ` node='${escapeAttr(o.node)}'`;
  conn.send(`<iq type='set' id='${id}'><disable xmlns='${NS_PUSH}' jid='${escapeAttr(o.jid)}'${node}/></iq>`);
  const iq = await conn.waitFor((el) => el.name === "iq" && el.attrs.id === id, timeoutMs);
  if (iq.attrs.type !== "result") throw new Error(`push disable refused: ${iq.toString()}`);
}

const isSm = (el: Element, name: string) => el.name === name && el.attrs.xmlns === NS_SM;
const isStanza = (el: Element) => el.name === "message" || el.name === "presence" || el.name === "iq";

/**
 * XEP-0198 on a raw connection, client side: counts the stanzas received since <enabled/> (`handled`), answers
 * every <r/> with <a h='handled'/>, so the server's queue of unacknowledged stanzas stays empty while the client
 * lives (Prosody's mod_cloud_notify pushes for stanzas left unacked for smacks_max_ack_delay, 30 s, and both
 * servers push for the unacked queue when the session goes into hibernation).
 */
export class StreamManagement {
  private constructor(
    readonly conn: XmppConnection,
    /** The <enabled/> element: id, resume, max, location. */
    readonly enabled: Element,
    private readonly listener: (el: Element) => void,
    private readonly counter: { on: boolean; handled: number },
  ) {}

  /** Inbound stanzas counted since <enabled/> (XEP-0198 §4 `h`, client side). */
  get handled(): number {
    return this.counter.handled;
  }

  get id(): string | undefined {
    return this.enabled.attrs.id;
  }

  /** The server granted resumption (resume='true' or '1'). */
  get resumable(): boolean {
    return this.enabled.attrs.resume === "true" || this.enabled.attrs.resume === "1";
  }

  /** The session's resumption timeout the server announced (max, seconds), if any. */
  get max(): number | undefined {
    return this.enabled.attrs.max === undefined ? undefined : Number(this.enabled.attrs.max);
  }

  /** Sends <enable/> (resume='true' by default) and waits for <enabled/>; throws on <failed/>. */
  static async enable(conn: XmppConnection, opts: { resume?: boolean; timeoutMs?: number } = {}): Promise<StreamManagement> {
    const counter = { on: false, handled: 0 };
    const listener = (el: Element) => {
      if (isSm(el, "enabled")) counter.on = true;
      else if (counter.on && isStanza(el)) counter.handled++;
      else if (counter.on && isSm(el, "r")) conn.send(`<a xmlns='${NS_SM}' h='${counter.handled}'/>`);
    };
    conn.listeners.add(listener);
    conn.send(`<enable xmlns='${NS_SM}'${opts.resume === false ? "" : " resume='true'"}/>`);
    const answer = await conn.waitFor((el) => isSm(el, "enabled") || isSm(el, "failed"), opts.timeoutMs);
    if (!isSm(answer, "enabled")) {
      conn.listeners.delete(listener);
      throw new Error(`stream management refused: ${answer.toString()}`);
    }
    return new StreamManagement(conn, answer, listener, counter);
  }

  /**
   * Acknowledges every stanza received so far and proves the server took the ack: sends <a h/> then <r/>, waits for
   * the server's <a/> (input is handled in order, so the ack was processed first), and repeats if a stanza arrived
   * meanwhile. Resolves with the server's h (the client stanzas it has handled).
   */
  async ackAll(timeoutMs = 10_000): Promise<number> {
    for (;;) {
      const sent = this.handled;
      const answer = this.nextSm("a", timeoutMs);
      this.conn.send(`<a xmlns='${NS_SM}' h='${sent}'/><r xmlns='${NS_SM}'/>`);
      const a = await answer;
      if (this.handled === sent) return Number(a.attrs.h);
    }
  }

  /**
   * Hibernates the session the way a lost network does: acknowledges everything (ackAll), then destroys the socket
   * without </stream:stream>; the server keeps the session for resumption (it sees the TCP close, no stream close).
   */
  async cut(timeoutMs = 10_000): Promise<void> {
    await this.ackAll(timeoutMs);
    this.conn.listeners.delete(this.listener);
    const closed = new Promise<void>((resolve) => this.conn.socket.once("close", () => resolve()));
    this.conn.destroy();
    await closed;
  }

  /** Stops counting and answering <r/> (the connection stays as it is). */
  stop(): void {
    this.conn.listeners.delete(this.listener);
  }

  /** The next SM nonza `name` to arrive (a listener, so it does not consume the connection's reading cursor). */
  private nextSm(name: string, timeoutMs: number): Promise<Element> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.conn.listeners.delete(l);
        reject(new Error(`no <${name} xmlns='${NS_SM}'/> within ${timeoutMs} ms; received: ${this.conn.transcript()}`));
      }, timeoutMs);
      const l = (el: Element) => {
        if (!isSm(el, name)) return;
        clearTimeout(timer);
        this.conn.listeners.delete(l);
        resolve(el);
      };
      this.conn.listeners.add(l);
    });
  }
}

/** The server log's size now: pass it to untilHibernated() to look only at what is logged after this point. */
export function logMark(server: XmppTestServer): number {
  try {
    return fs.statSync(server.logFile).size;
  } catch {
    return 0;
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Waits until the server's log says it keeps `fullJid`'s session for resumption after its connection was lost
 * (logged after `since`, a logMark()): ejabberd logs "Closing c2s connection for JID: …; waiting N seconds for
 * stream resumption" (info); Prosody logs "Session going into hibernation" for the session that bound the JID
 * (debug level: start Prosody with `debugLog: true`).
 */
export async function untilHibernated(server: XmppTestServer, fullJid: string, since: number, timeoutMs = 5000): Promise<void> {
  const read = (): Buffer => {
    try {
      return fs.readFileSync(server.logFile);
    } catch {
      return Buffer.alloc(0);
    }
  };
  const jid = escapeRe(fullJid);
  const check = server.kind === "ejabberd"
    ? () => new RegExp(`Closing c2s connection for ${jid}: .*waiting \\d+ seconds for stream resumption`).test(read().subarray(since).toString("utf8"))
    : () => {
      const log = read();
      const text = log.toString("utf8");
      const sid = [...text.matchAll(new RegExp(`(\\S+)\\tdebug\\tResource bound: ${jid}\\n`, "g"))].pop()?.[1];
      if (sid === undefined && !/\tdebug\t/.test(text)) throw new Error("untilHibernated: Prosody logs hibernation at debug level: start it with debugLog: true");
      return sid !== undefined && log.subarray(since).toString("utf8").includes(`${sid}\tdebug\tSession going into hibernation`);
    };
  await until(`${server.kind} keeping ${fullJid}'s session for resumption`, check, timeoutMs);
}
