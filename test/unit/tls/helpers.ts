// Real TLS servers and clients on loopback for the TLS material tests.
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { createServer as createTcpServer, type AddressInfo, type Server } from "node:net";
import { connect, createServer as createTlsServer, TLSSocket, type SecureContext } from "node:tls";
import type { TlsLogger } from "../../../src/net/tls/index.js";

export interface LogEntry {
  level: "info" | "warn" | "error";
  obj: object;
  msg: string | undefined;
}

export function recordingLog(): { log: TlsLogger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: LogEntry["level"]) => (obj: object, msg?: string) => { entries.push({ level, obj, msg }); };
  return { log: { info: at("info"), warn: at("warn"), error: at("error") }, entries };
}

/** Collects onReload results and lets a test wait for the next one. */
export function reloadRecorder() {
  const results: string[] = [];
  const waiters: ((r: string) => void)[] = [];
  return {
    results,
    onReload: (r: "success" | "failure") => {
      results.push(r);
      waiters.shift()?.(r);
    },
    next: (timeoutMs = 5000) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reload within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((r) => { clearTimeout(timer); resolve(r); });
      }),
    /** Waits for a given result, skipping others (a poll may catch a pair half-written). */
    async waitFor(result: "success" | "failure", timeoutMs = 5000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while ((await this.next(Math.max(1, deadline - Date.now()))) !== result);
    },
  };
}

export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

async function listen(server: Server, sockets: Set<{ destroy(): void }>): Promise<EchoServer> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A direct-TLS echo server that picks the context per handshake through SNI. */
export function sniEchoServer(context: () => SecureContext): Promise<EchoServer> {
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer({ SNICallback: (_name, cb) => cb(null, context()) }, (s) => {
    sockets.add(s);
    s.on("error", () => undefined).on("close", () => sockets.delete(s));
    s.pipe(s);
  });
  return listen(server, sockets);
}

/** A TCP echo server that upgrades each socket with the context current at accept time (STARTTLS style). */
export function perSocketEchoServer(context: () => SecureContext): Promise<EchoServer> {
  const sockets = new Set<TLSSocket>();
  const server = createTcpServer((raw) => {
    const s = new TLSSocket(raw, { isServer: true, secureContext: context() });
    sockets.add(s);
    s.on("error", () => undefined).on("close", () => sockets.delete(s));
    s.pipe(s);
  });
  return listen(server, sockets);
}

/** Connects and verifies the server against `ca` for `servername`; rejects if verification fails. */
export async function tlsClient(port: number, ca: string | string[], servername: string): Promise<TLSSocket> {
  const socket = connect({ host: "127.0.0.1", port, ca, servername });
  await once(socket, "secureConnect");
  return socket;
}

export async function echo(socket: TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [data] = (await once(socket, "data")) as [Buffer];
  return data.toString();
}

export const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

export const servedFingerprint = (socket: TLSSocket): string | undefined => socket.getPeerX509Certificate()?.fingerprint256;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
