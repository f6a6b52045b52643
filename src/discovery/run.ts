// One discovery run for one served domain (XEP-0030 §4 then §3): disco#items to the domain, then
// disco#info to each listed item, a few at a time; the domain's own disco#info is asked alongside.
import type { Element } from "@xmpp/xml";
import { DISCO_INFO } from "../protocol/xep.js";
import { DISCO_ITEMS, discoGet, infoSaysMuc, itemDomains, type IqQuery } from "./xep0030.js";

/** Items asked about per run; a server listing more is unusual, and the rest are left out (and counted). */
export const MAX_ITEMS = 64;
/** disco#info queries in flight at once during a run. */
export const PARALLEL = 4;
/** An IqQuery that neither answers nor times out within this long counts as unanswered. */
export const QUERY_GUARD_MS = 30_000;

export type RunOutcome =
  | { readonly ok: true; readonly services: Set<string>; readonly unanswered: number; readonly leftOut: number }
  | { readonly ok: false; readonly reason: "error" | "no answer" };

/**
 * Runs discovery for `served`. `known` is what this domain's previous runs found: an item (or the
 * domain itself) whose disco#info fails keeps its previous standing. A failed disco#items fails the
 * whole run, so that the caller keeps everything it knew.
 */
export async function runDiscovery(served: string, query: IqQuery, known: ReadonlySet<string>, signal: AbortSignal): Promise<RunOutcome> {
  const [items, own] = await Promise.all([ask(query, discoGet(served, DISCO_ITEMS), signal), ask(query, discoGet(served, DISCO_INFO), signal)]);
  const domains = itemDomains(items);
  if (domains === undefined) return { ok: false, reason: items === undefined ? "no answer" : "error" };

  const services = new Set<string>();
  let unanswered = 0;
  const judge = (domain: string, answer: Element | undefined) => {
    const muc = infoSaysMuc(answer);
    if (muc === undefined) unanswered++;
    if (muc ?? known.has(domain)) services.add(domain);
  };
  judge(served, own);

  const listed = domains.filter((d) => d !== served);
  const asked = listed.slice(0, MAX_ITEMS);
  let next = 0;
  const worker = async () => {
    while (next < asked.length && !signal.aborted) {
      const domain = asked[next++] as string;
      judge(domain, await ask(query, discoGet(domain, DISCO_INFO), signal));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, asked.length) }, worker));
  return { ok: true, services, unanswered, leftOut: listed.length - asked.length };
}

/**
 * One query, bounded: a rejection, a query that outlives QUERY_GUARD_MS, or a run cancelled by close()
 * all count as no answer. Nothing is sent once the run is cancelled.
 */
function ask(query: IqQuery, iq: Element, signal: AbortSignal): Promise<Element | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const settle = (answer: Element | undefined) => {
      clearTimeout(guard);
      signal.removeEventListener("abort", onAbort);
      resolve(answer);
    };
    const onAbort = () => settle(undefined);
    const guard = setTimeout(onAbort, QUERY_GUARD_MS);
    guard.unref();
    signal.addEventListener("abort", onAbort, { once: true });
    let sent: Promise<Element | undefined>;
    try {
      sent = query(iq);
    } catch {
      sent = Promise.resolve(undefined);
    }
    sent.then(settle, () => settle(undefined));
  });
}
