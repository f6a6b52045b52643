// Helpers for the MUC offline delivery tests (SPEC D): the registration flow Siskin uses, metrics, and
// mucmux as a real process (restart on the same store file).
import { xml, type Element } from "@xmpp/xml";
import type { TestClient } from "../support/clients.js";
import { spawnMucmuxProcess, type TestMucmux } from "../support/mucmux.js";
import { until } from "../support/wait.js";
import { waitAfter } from "./muc-support.js";

export const OFFLINE = "{http://tigase.org/protocol/muc}offline";
export const REGISTER = "jabber:iq:register";
const XDATA = "jabber:x:data";

export const discoInfo = (to: string) => xml("iq", { type: "get", to }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
export const features = (iq: Element) => iq.getChild("query")?.getChildren("feature").map((f) => f.attrs.var) ?? [];

export function formField(iq: Element, name: string): Element | undefined {
  return iq.getChild("query", REGISTER)?.getChild("x", XDATA)?.getChildren("field").find((f) => f.attrs.var === name);
}

export const getRegistration = (c: TestClient, room: string) => c.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: REGISTER })));

/** The form Siskin submits: FORM_TYPE, the nick and (unless undefined) the offline field. */
export function submit(room: string, nick: string, offline?: string): Element {
  const field = (v: string, value: string) => xml("field", { var: v }, xml("value", {}, value));
  return xml("iq", { type: "set", to: room }, xml("query", { xmlns: REGISTER }, xml("x", { xmlns: XDATA, type: "submit" },
    field("FORM_TYPE", "http://jabber.org/protocol/muc#register"), field("muc#register_roomnick", nick),
    offline === undefined ? null : field(OFFLINE, offline))));
}

export const removeRegistration = (room: string) => xml("iq", { type: "set", to: room }, xml("query", { xmlns: REGISTER }, xml("remove")));

export { metric } from "../support/mucmux.js";

export { until } from "../support/wait.js";

/** The account manages `room` and has no session in it: its last session's departure is done (SPEC C5). */
export async function roomKept(mux: TestMucmux, user: string, room: string): Promise<void> {
  await until(`${user}'s last session out of ${room}, the room kept`, () => {
    const account = mux.app.accounts.get(`${user}@localhost`);
    const view = account && mux.app.views.rooms.get(account, room);
    return view?.state === "joined" && !view.occupied;
  });
}

const BARRIER = "offline barrier";
let barriers = 0;

/** Is this the private message of an offlineBarrier? */
export const isBarrier = (el: Element) => el.getChildText("body")?.startsWith(BARRIER) === true;

/**
 * Ordering round trip through the offline stage: `sender` (an occupant) writes a private message to the
 * account's nick. The room hands it to the account's anchor after everything it sent there before, and
 * with no session of the account in the room it goes through the account's offline order (SPEC C12: to
 * every online session) after every delivery, queue read and catch-up queued there before. Resolves once
 * `c` has it; what those earlier steps wrote to `c` came before.
 */
export async function offlineBarrier(sender: TestClient, room: string, nick: string, c: TestClient): Promise<Element> {
  const body = `${BARRIER} ${++barriers}`;
  const start = c.received.length;
  await sender.send(xml("message", { to: `${room}/${nick}`, type: "chat" }, xml("body", {}, body), xml("x", { xmlns: "http://jabber.org/protocol/muc#user" })));
  return waitAfter(c, start, (el) => el.name === "message" && el.getChildText("body") === body, 10_000);
}

export const stanzaId = (el: Element | undefined) => el?.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id;

/** An offline copy (SPEC D6a/b): type groupchat from room/nick with this body. */
export const isCopy = (room: string, body: string) => (el: Element) =>
  el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from?.split("/")[0] === room && el.getChildText("body") === body;

export type { MucmuxProcess } from "../support/mucmux.js";

/** mucmux as a real process (src/main.ts through tsx), on the ports of `configFile`; its log is audited for secrets. */
export const spawnMucmux = spawnMucmuxProcess;
