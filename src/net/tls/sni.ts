/**
 * The TLS server name a client asked for (SNI, RFC 6066 §3), normalized for comparison with the
 * configured domains: lower-cased, a trailing root dot removed. undefined when the socket is not TLS
 * (yet) or the client sent no SNI (clients connecting to an IP address send none).
 */
import { TLSSocket } from "node:tls";
import type { Socket } from "node:net";

export function serverNameOf(socket: Socket): string | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  const name = socket.servername;
  if (typeof name !== "string" || name === "") return undefined;
  return name.toLowerCase().replace(/\.$/, "");
}
