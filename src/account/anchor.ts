// The anchor (SPEC A7–A9): one upstream c2s stream per account, owned by mucmux, resource
// `mucmux-<8 hex>`. It never sends initial or broadcast presence and never enables carbons, so contacts
// never see it and the server never routes bare-JID chat to it. It reconnects with capped backoff.
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { serialize } from "../xml/serialize.js";
import type { UpstreamLeg, UpstreamOutcome } from "../stream/upstream.js";
import { NS } from "../stream/ns.js";
import type { Logger } from "../log.js";

export type AnchorState = "connecting" | "online" | "backoff" | "closed";

export interface AnchorDeps {
  connect(): Promise<UpstreamOutcome>;
  log: Logger;
  onStanza(el: Element): void;
  /** The anchor is (again) online; `reconnected` is true after a drop (SPEC A9). */
  onOnline(reconnected: boolean): void;
  /** The stream is down (dropped or could not connect); `permanent` when credentials were refused. */
  onDown(permanent: boolean): void;
  /** Anchor count metric hooks. */
  opened(): void;
  closed(): void;
}

const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000, 60000];

export class Anchor {
  state: AnchorState = "connecting";
  jid: string | undefined;
  readonly resource = `mucmux-${randomBytes(4).toString("hex")}`;
  private leg: UpstreamLeg | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private everOnline = false;
  private waiters: ((ok: boolean) => void)[] = [];

  constructor(private readonly deps: AnchorDeps) {}

  start(): void {
    void this.connect();
  }

  /** Resolves true once online (or at once when online), false when the attempt failed. */
  ready(): Promise<boolean> {
    if (this.state === "online") return Promise.resolve(true);
    if (this.state === "closed") return Promise.resolve(false);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private settle(ok: boolean): void {
    for (const w of this.waiters.splice(0)) w(ok);
  }

  private async connect(): Promise<void> {
    this.state = "connecting";
    const outcome = await this.deps.connect();
    if ((this.state as AnchorState) === "closed") {
      if (outcome.ok) outcome.leg.wire.destroy();
      return;
    }
    if (!outcome.ok) {
      const permanent = outcome.reason === "sasl" && outcome.condition === "not-authorized";
      this.deps.log.warn({ reason: outcome.reason }, "anchor could not connect");
      return this.down(permanent);
    }
    this.leg = outcome.leg;
    this.deps.opened();
    const bindId = `bind-${this.resource}`;
    outcome.leg.setHandlers({
      onElement: (el) => {
        if (this.state === "connecting" && el.name === "iq" && el.attrs.id === bindId) return this.onBind(el);
        if (this.state === "online" && (el.name === "message" || el.name === "presence" || el.name === "iq")) this.deps.onStanza(el);
      },
      onStreamClose: () => this.lost(),
      onError: () => this.lost(),
      onSocketEnd: () => this.lost(),
      onDrain: () => {},
    });
    outcome.leg.wire.write(
      `<iq type='set' id='${bindId}'><bind xmlns='${NS.bind}'><resource>${this.resource}</resource></bind></iq>`,
    );
  }

  private onBind(el: Element): void {
    const jid = el.attrs.type === "result" ? el.getChild("bind", NS.bind)?.getChildText("jid") : undefined;
    if (!jid) {
      this.deps.log.warn("anchor resource binding failed");
      this.leg?.wire.destroy();
      return;
    }
    this.jid = jid;
    this.state = "online";
    this.attempt = 0;
    const reconnected = this.everOnline;
    this.everOnline = true;
    this.deps.log.debug({ resource: this.resource }, "anchor online");
    this.settle(true);
    this.deps.onOnline(reconnected);
  }

  private lost(): void {
    if (!this.leg) return;
    const leg = this.leg;
    this.leg = undefined;
    this.deps.closed();
    leg.wire.destroy();
    if (this.state === "closed") return;
    this.deps.log.info("anchor stream lost; reconnecting");
    this.down(false);
  }

  private down(permanent: boolean): void {
    this.settle(false);
    this.deps.onDown(permanent);
    if (permanent || this.state === "closed") {
      this.state = "closed";
      return;
    }
    this.state = "backoff";
    // ±25 % jitter: anchors dropped together (a server restart) do not come back in lockstep waves; the
    // connect rate cap (upstream.connectsPerSecond) bounds what is left.
    const delay = (BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)] as number) * (0.75 + Math.random() * 0.5);
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }

  /** Write a stanza on the anchor stream; false when it is not online (the caller decides what to do). */
  send(el: Element): boolean {
    if (this.state !== "online" || !this.leg) return false;
    this.leg.wire.write(serialize(el));
    return true;
  }

  /** Test hook and operator action: drop the stream as if the server had (reconnects per SPEC A9). */
  dropForTest(): void {
    this.leg?.wire.destroy();
  }

  close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this.timer);
    this.settle(false);
    const leg = this.leg;
    this.leg = undefined;
    if (leg) {
      this.deps.closed();
      leg.wire.write("</stream:stream>");
      leg.wire.end();
    }
  }
}
