// Shared helpers for the account-level MUC integration tests (run against Prosody and ejabberd).
import { readFileSync } from "node:fs";
import { xml, type Element } from "@xmpp/xml";
import type { TestClient } from "../support/clients.js";
import { connectClient } from "../support/clients.js";
import type { XmppTestServer } from "../support/server.js";
import { until } from "../support/wait.js";

export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const CHATSTATES = "http://jabber.org/protocol/chatstates";

export function codesOf(el: Element): string[] {
  return (el.getChild("x", MUC_USER)?.getChildren("status") ?? []).map((s) => s.attrs.code ?? "");
}

export const isSelfPresence = (room: string) => (el: Element) =>
  el.name === "presence" && (el.attrs.from ?? "").startsWith(`${room}/`) && codesOf(el).includes("110");

export const isSubject = (room: string) => (el: Element) =>
  el.name === "message" && el.attrs.from?.split("/")[0] === room && !!el.getChild("subject") && !el.getChild("body");

export const isGroupchat = (room: string, body: string) => (el: Element) =>
  el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from?.split("/")[0] === room && el.getChildText("body") === body;

export function joinPresence(room: string, nick: string, id: string, history?: Record<string, string>): Element {
  return xml("presence", { to: `${room}/${nick}`, id }, xml("x", { xmlns: MUC }, history ? xml("history", history) : null));
}

/** Join and wait for the subject (the end of the join, XEP-0045 §7.2.15). Returns the stanzas of the join. */
export async function join(c: TestClient, room: string, nick: string, id = `join-${Math.random().toString(36).slice(2)}`, history?: Record<string, string>): Promise<Element[]> {
  const start = c.received.length;
  await c.send(joinPresence(room, nick, id, history));
  await waitAfter(c, start, isSubject(room), 10_000);
  return c.received.slice(start);
}

/** First stanza received after index `start` that matches. */
export async function waitAfter(c: TestClient, start: number, pred: (el: Element) => boolean, ms = 5000): Promise<Element> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = c.received.slice(start).find((el) => { try { return pred(el); } catch { return false; } });
    if (hit) return hit;
    if (Date.now() > end) {
      throw new Error(`nothing matched after #${start} within ${ms} ms; got:\n${c.received.slice(start).map((e) => e.toString().slice(0, 300)).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function countMatching(c: TestClient, pred: (el: Element) => boolean, from = 0): number {
  return c.received.slice(from).filter((el) => { try { return pred(el); } catch { return false; } }).length;
}

/**
 * Upstream-side count, independent of mucmux: how many times the server wrote a groupchat message with
 * this id to a session of `account` (from the server's own debug log, which shows the opening tag).
 */
export function upstreamCopies(server: XmppTestServer, account: string, id: string): number {
  const log = readFileSync(server.logFile, "utf8");
  let n = 0;
  for (const line of log.split("\n")) {
    if (!line.includes("groupchat") || !/<message/.test(line)) continue;
    if (!new RegExp(`id=\\\\?['"]${id}\\\\?['"]`).test(line) || !new RegExp(`to=\\\\?['"]${account}/`).test(line)) continue;
    if (server.kind === "prosody" && /Sending\[c2s\]: <message/.test(line)) n++;
    if (server.kind === "ejabberd" && /Send XML on stream/.test(line)) n++;
  }
  return n;
}

export async function connectVia(port: number, user: string, resource: string, mechanism?: "PLAIN" | "SCRAM-SHA-1"): Promise<TestClient> {
  return connectClient({ service: `xmpps://127.0.0.1:${port}`, domain: "localhost", username: user, password: `${user}pw`, resource, ...(mechanism ? { mechanism } : {}) });
}

/**
 * Ordering round trip through a room: `c` asks the room for its disco#info. The room answers after it has
 * handled everything it received before, and writes the answer to `c`'s stream after everything it wrote
 * to `c` before; so whatever the room did because of earlier stanzas has reached `c` once this resolves.
 * (A session of an account that manages the room asks through the anchor, SPEC B1.)
 */
export async function roomRoundTrip(c: TestClient, room: string): Promise<void> {
  const answer = await c.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: DISCO_INFO })));
  if (answer.attrs.type !== "result") throw new Error(`room round trip: ${answer.toString()}`);
}

/**
 * roomRoundTrip for each client in turn: first the ones whose earlier stanzas (or mucmux's on their
 * behalf) might still make the room do something, which pushes that ahead of the later round trips; then
 * the observers, whose answer comes after whatever the room sent them because of it.
 */
export async function roomSettled(room: string, ...clients: TestClient[]): Promise<void> {
  for (const c of clients) await roomRoundTrip(c, room);
}

/**
 * Ordering round trip on a session's own stream: an XMPP ping to its server, through mucmux and the
 * session's leg. Whatever mucmux wrote to the session before it handled the ping arrives before the answer.
 */
export async function serverRoundTrip(c: TestClient): Promise<void> {
  await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
}

let markers = 0;

/**
 * Server-log barrier: `sender` (an occupant) writes a body-less groupchat message (a chat state: no history,
 * no offline copy) with a fresh id to the room; resolves once the server's debug log shows it written to a
 * session of `account`. The room sends in order, and the server logs a session's stanzas in the order it
 * writes them, so what the room sent that account before is in the log by then.
 */
export async function serverLogReaches(server: XmppTestServer, sender: TestClient, room: string, account: string): Promise<void> {
  const id = `logmark${++markers}-${Date.now().toString(36)}`;
  await sender.send(xml("message", { to: room, type: "groupchat", id }, xml("active", { xmlns: CHATSTATES })));
  await until(`the server's log to show ${id} sent to ${account}`, () => upstreamCopies(server, account, id) >= 1, 20_000); // ejabberd's logger writes lazily
}

/** The server's count of copies of message `id` to `account`, once its log is known to be complete for it (serverLogReaches). */
export async function settledUpstreamCopies(server: XmppTestServer, sender: TestClient, room: string, account: string, id: string): Promise<number> {
  await serverLogReaches(server, sender, room, account);
  return upstreamCopies(server, account, id);
}
