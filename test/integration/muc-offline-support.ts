// Helpers for the MUC offline delivery tests (SPEC D): the registration flow Siskin uses, metrics, and
// mucmux as a real process (restart on the same store file).
import { xml, type Element } from "@xmpp/xml";
import type { TestClient } from "../support/clients.js";
import { spawnMucmuxProcess } from "../support/mucmux.js";

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

/** One sample of a metric from /metrics (0 when absent); `labels` as written, e.g. `reason="ttl"`. */
export async function metric(adminPort: number, name: string, labels?: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\}` : ""} (\\S+)$`, "m");
  return Number(re.exec(text)?.[1] ?? 0);
}

export async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const stanzaId = (el: Element | undefined) => el?.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id;

/** An offline copy (SPEC D6a/b): type groupchat from room/nick with this body. */
export const isCopy = (room: string, body: string) => (el: Element) =>
  el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from?.split("/")[0] === room && el.getChildText("body") === body;

export type { MucmuxProcess } from "../support/mucmux.js";

/** mucmux as a real process (src/main.ts through tsx), on the ports of `configFile`; its log is audited for secrets. */
export const spawnMucmux = spawnMucmuxProcess;
