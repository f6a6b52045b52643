// Minimal typings for the parts of @xmpp/client 0.14 (which ships none) that the tests use.
declare module "@xmpp/client" {
  import type { Element } from "@xmpp/xml";
  export { xml } from "@xmpp/xml";

  export interface JID {
    local: string;
    domain: string;
    resource: string;
    bare(): JID;
    toString(): string;
  }

  export interface ClientOptions {
    /** xmpp://host:port (STARTTLS is used whenever the server offers it) or xmpps://host:port (direct TLS). */
    service: string;
    domain?: string | undefined;
    resource?: string | undefined;
    username?: string | undefined;
    password?: string | undefined;
    /** Called with the offered mechanisms instead of choosing the first; must call authenticate. */
    credentials?: ((authenticate: (credentials: object, mechanism: string) => Promise<void>, mechanisms: string[]) => Promise<void>) | undefined;
    lang?: string | undefined;
    /** Stream open/close timeout in ms (default 2000). */
    timeout?: number | undefined;
  }

  export interface Client {
    readonly jid: JID | null;
    readonly status: string;
    readonly options: ClientOptions;
    /** xmpp://: a net.Socket subclass; xmpps:// or after STARTTLS: a wrapper whose `.socket` is the TLSSocket. */
    readonly socket: { socket?: import("node:net").Socket | null; destroy?: () => void; end(): void } | null;
    reconnect: { start(): void; stop(): void };
    iqCaller: { request(stanza: Element, timeoutMs?: number): Promise<Element> };
    start(): Promise<JID>;
    stop(): Promise<void>;
    send(element: Element): Promise<void>;
    isSecure(): boolean;
    on(event: "stanza" | "nonza" | "element", listener: (el: Element) => void): this;
    on(event: "error", listener: (err: Error) => void): this;
    on(event: "status", listener: (status: string, value?: unknown) => void): this;
    on(event: "online", listener: (jid: JID) => void): this;
    once(event: "online", listener: (jid: JID) => void): this;
    on(event: "offline" | "disconnect", listener: (...args: unknown[]) => void): this;
    removeListener(event: string, listener: (...args: never[]) => void): this;
  }

  export function client(options: ClientOptions): Client;
}
