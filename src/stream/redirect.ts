// RFC 6120 §4.9.3.19: an upstream <see-other-host/> names where the client should reconnect. It is
// relayed only when the operator allow-listed that host (upstream.seeOtherHostAllow); otherwise the
// target is an upstream-internal host that clients must not be sent to (the caller sends reset).
import { isIP, isIPv6 } from "node:net";
import type { Element } from "@xmpp/xml";
import { NS } from "./ns.js";
import { escapeText } from "../xml/serialize.js";
import { HOST_NAME } from "../net/ip-address.js";


/** Host (lower-cased, IPv6 without brackets) and port of a see-other-host value, or undefined if malformed. */
export function parseRedirect(value: string): { host: string; port: number | undefined } | undefined {
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (v6) {
    host = v6[1] ?? "";
    port = v6[2];
    if (!isIPv6(host)) return undefined;
  } else {
    const parts = value.split(":");
    if (parts.length > 2) return undefined; // a bare IPv6 address must be bracketed (the port is ambiguous)
    host = parts[0] ?? "";
    port = parts[1];
    if (!HOST_NAME.test(host) && isIP(host) !== 4) return undefined;
  }
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) return undefined;
  return { host: host.toLowerCase(), port: port === undefined ? undefined : Number(port) };
}

/** The see-other-host value of a received `<stream:error>` when its host is allow-listed, else undefined. */
export function allowedRedirect(streamError: Element, allow: readonly string[] | undefined): string | undefined {
  if (!allow || allow.length === 0) return undefined;
  const value = streamError.getChild("see-other-host", NS.streams)?.getText().trim() ?? "";
  const target = parseRedirect(value);
  if (!target || !allow.some((h) => h.toLowerCase() === target.host)) return undefined;
  return value;
}

/** The stream error sent to the client for an allowed redirect (the close follows). */
export function redirectXml(value: string, text: string | undefined): string {
  const t = text ? `<text xmlns='${NS.streams}' xml:lang='en'>${escapeText(text)}</text>` : "";
  return `<stream:error><see-other-host xmlns='${NS.streams}'>${escapeText(value)}</see-other-host>${t}</stream:error></stream:stream>`;
}
