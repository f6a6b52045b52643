// XEP-0030 Service Discovery, the two questions MUC service discovery asks: which entities does the
// served domain list (disco#items), and is one of them a multi-user chat service (disco#info)?
import { randomBytes } from "node:crypto";
import { Element } from "@xmpp/xml";
import { HOST_NAME } from "../net/ip-address.js";
import { DISCO_INFO } from "../protocol/xep.js";

/** Sends one IQ get on some upstream leg and resolves with the server's answer (result or error), or undefined on timeout / no leg. */
export type IqQuery = (iq: Element) => Promise<Element | undefined>;

export const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

/**
 * Identity types (category `conference`) that make an entity a MUC service here. Only `text`
 * (XEP-0045): an IRC gateway (`conference/irc`, e.g. biboumi) emulates MUC over IRC channels, with
 * `nick!server` JIDs and one IRC connection per presence, which account-level MUC and offline delivery
 * do not model. An operator who wants one folded anyway lists it in `muc.services`.
 */
const MUC_IDENTITY_TYPES: ReadonlySet<string> = new Set(["text"]);

/** `<iq type='get'>` with an empty disco query to `to`; a fresh random id each time. */
export function discoGet(to: string, xmlns: typeof DISCO_INFO | typeof DISCO_ITEMS): Element {
  const iq = new Element("iq", { type: "get", id: `mmd-${randomBytes(8).toString("hex")}`, to });
  iq.c("query", { xmlns });
  return iq;
}

/** The disco query of a result IQ; undefined for an error, a timeout or a malformed answer. */
function resultQuery(answer: Element | undefined, xmlns: string): Element | undefined {
  if (answer?.name !== "iq" || answer.attrs.type !== "result") return undefined;
  return answer.getChild("query", xmlns);
}

/**
 * Does a disco#info result describe a MUC service or room: an identity of category `conference` and
 * type `text`? Exported so that answers seen passing by are judged like discovered ones.
 */
export function hasMucIdentity(query: Element): boolean {
  return query.getChildren("identity").some((i) => i.attrs.category === "conference" && MUC_IDENTITY_TYPES.has(i.attrs.type ?? ""));
}

/** A disco#info answer: true/false when it is a result, undefined when it failed. */
export function infoSaysMuc(answer: Element | undefined): boolean | undefined {
  const query = resultQuery(answer, DISCO_INFO);
  return query ? hasMucIdentity(query) : undefined;
}

/** A domain name as services are kept: lower-cased, undefined when it is not a plain domain. */
export function serviceDomain(jid: string | undefined): string | undefined {
  if (jid === undefined || jid.includes("@") || jid.includes("/")) return undefined;
  const domain = jid.toLowerCase();
  return HOST_NAME.test(domain) ? domain : undefined;
}

/**
 * The domains a disco#items result lists (undefined when the answer failed): items without a `node`
 * (a node is a part of an entity, not a service) whose JID is a bare domain, lower-cased, each once.
 */
export function itemDomains(answer: Element | undefined): string[] | undefined {
  const query = resultQuery(answer, DISCO_ITEMS);
  if (!query) return undefined;
  const domains = new Set<string>();
  for (const item of query.getChildren("item")) {
    if (item.attrs.node !== undefined) continue;
    const domain = serviceDomain(item.attrs.jid);
    if (domain !== undefined) domains.add(domain);
  }
  return [...domains];
}
