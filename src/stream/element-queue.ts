// A small pull interface over a Wire's parser events, used while negotiating a stream step by step
// (upstream legs and the anchor). After negotiation the owner switches to push handlers.
import type { Element } from "@xmpp/xml";
import type { StreamHeader } from "../xml/parser.js";
import type { XmlStreamError } from "../xml/errors.js";

export type NegotiationEvent =
  | { kind: "open"; header: StreamHeader }
  | { kind: "element"; el: Element }
  | { kind: "close" }
  | { kind: "error"; error: XmlStreamError }
  | { kind: "end"; error: Error | undefined };

export class NegotiationTimeout extends Error {}

export class ElementQueue {
  private readonly buffered: NegotiationEvent[] = [];
  private waiter: ((e: NegotiationEvent) => void) | undefined;

  push(e: NegotiationEvent): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(e);
    } else {
      this.buffered.push(e);
    }
  }

  /** Everything not consumed yet (handed to push handlers after negotiation). */
  drain(): NegotiationEvent[] {
    return this.buffered.splice(0);
  }

  next(timeoutMs: number): Promise<NegotiationEvent> {
    const first = this.buffered.shift();
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new NegotiationTimeout(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (e) => {
        clearTimeout(t);
        resolve(e);
      };
    });
  }
}
