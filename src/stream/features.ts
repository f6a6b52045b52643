// Stream features mucmux composes for clients (SPEC A1, A5).
import type { Element } from "@xmpp/xml";
import { serialize } from "../xml/serialize.js";
import { NS } from "./ns.js";

// Features mucmux cannot honour across a TLS/SASL terminator or must own itself (SPEC A5).
const WITHHELD = new Set([
  "urn:xmpp:sm:3", "urn:xmpp:sm:2",                 // stream management is per hop: mucmux offers its own (SPEC F1)
  "http://jabber.org/features/compress",             // no compression
  "urn:xmpp:sasl:2", "urn:xmpp:bind:0", "urn:xmpp:fast:0",
  "urn:xmpp:sasl-cb:0", "urn:xmpp:channel-binding:0", // no channel binding through a TLS terminator
  NS.sasl, NS.tls,
  NS.limits,                                         // mucmux advertises its own limits (XEP-0478)
]);

const limitsXml = (maxBytes: number) => `<limits xmlns='${NS.limits}'><max-bytes>${maxBytes}</max-bytes></limits>`;

export function starttlsFeatures(maxBytes: number): string {
  return `<stream:features><starttls xmlns='${NS.tls}'><required/></starttls>${limitsXml(maxBytes)}</stream:features>`;
}

/** SPEC A10, A14: the mechanisms mucmux offers, and the channel binding types (XEP-0440) when -PLUS is among them. */
/**
 * SPEC A10, A14, A15: the mechanisms mucmux offers, the channel binding types (XEP-0440) when -PLUS is among them,
 * and with `sasl2` the same mechanisms over SASL2 (XEP-0388) with Bind2 (carbons inline) and FAST.
 */
export function saslFeatures(maxBytes: number, mechanisms: readonly string[], bindingTypes: readonly string[], sasl2?: { fast: boolean; sm: boolean }): string {
  const mechs = mechanisms.map((m) => `<mechanism>${m}</mechanism>`).join("");
  const cb = bindingTypes.length > 0 && mechanisms.some((m) => m.endsWith("-PLUS"))
    ? `<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>${bindingTypes.map((t) => `<channel-binding type='${t}'/>`).join("")}</sasl-channel-binding>`
    : "";
  const v2 = sasl2
    ? `<authentication xmlns='${NS.sasl2}'>${mechs}<inline>` +
      `<bind xmlns='${NS.bind2}'><inline><feature var='${NS.carbons}'/>${sasl2.sm ? `<feature var='${NS.sm}'/>` : ""}</inline></bind>` +
      (sasl2.fast ? `<fast xmlns='${NS.fast}'><mechanism>HT-SHA-256-NONE</mechanism></fast>` : "") +
      (sasl2.sm ? `<sm xmlns='${NS.sm}'/>` : "") +
      "</inline></authentication>"
    : "";
  return `<stream:features><mechanisms xmlns='${NS.sasl}'>${mechs}</mechanisms>${v2}${cb}${limitsXml(maxBytes)}</stream:features>`;
}

/** Upstream's post-authentication features minus what mucmux withholds, plus mucmux's own limits and SM (`sm`). */
export function postAuthFeatures(upstream: Element, maxBytes: number, sm: boolean): string {
  let inner = "";
  let csi = false;
  for (const child of upstream.getChildElements()) {
    if (WITHHELD.has(child.attrs.xmlns ?? "")) continue;
    if (child.attrs.xmlns === NS.csi) csi = true;
    inner += serialize(child);
  }
  // SPEC C15: mucmux does CSI itself, whatever the server does.
  if (!csi) inner += `<csi xmlns='${NS.csi}'/>`;
  // SPEC F1: stream management toward the client is mucmux's, whatever the server does.
  if (sm) inner += `<sm xmlns='${NS.sm}'/>`;
  return `<stream:features>${inner}${limitsXml(maxBytes)}</stream:features>`;
}

export function offersFeature(features: Element, xmlns: string): boolean {
  return features.getChildElements().some((c) => c.attrs.xmlns === xmlns);
}
