// Room push (SPEC G1–G5): a room message for an account that is away — queued for offline delivery while none of
// its devices is connected, or fanned out to a hibernated device — becomes a wake-up stanza on the account's anchor,
// which the server's own push module turns into a notification as it would for a 1:1 message. Wake-ups are taken
// out of everything toward a device (the offline flood at login, a resumed stream, carbons, archive results): the
// device gets mucmux's own copies of the room messages instead.
import type { Element } from "@xmpp/xml";
import { randomBytes } from "node:crypto";
import { DROP, type ChainOrigin, type Direction, type Stage, type StanzaContext } from "../../chain/stage.js";
import type { Session } from "../../chain/session.js";
import type { Account } from "../../account/account.js";
import type { EventBus } from "../../chain/events.js";
import type { Views } from "../../chain/views.js";
import type { AccountRegistry } from "../../account/registry.js";
import type { Config } from "../../config/index.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { Logger } from "../../log.js";
import { AccountWakeups, notifiable, wakeupIn, wakeupStanza, type WakeupPolicy } from "./wakeup.js";

export interface WakeupDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  accounts: AccountRegistry;
  events: EventBus;
  views: Views;
}

const PUSH = "urn:xmpp:push:0";
const SID = "urn:xmpp:sid:0";
const STATE = Symbol("wakeup");
/** Session slot: push enable/disable IQs of this session waiting for the server's answer, by id. */
const PENDING = Symbol("wakeup.pending");
const ID_PREFIX = "mmwake-";

type PushChange = { op: "enable" | "disable"; jid: string; node: string | undefined };

/** The room message's identity: the room's stanza-id, else sender and id (one message, several devices). */
function keyOf(el: Element): string {
  for (const sid of el.getChildren("stanza-id", SID)) if (sid.attrs.id) return `${sid.attrs.by ?? ""}\0${sid.attrs.id}`;
  return `${el.attrs.from ?? ""}\0${el.attrs.id ?? ""}\0${el.getChildText("body") ?? ""}`;
}

export function createWakeupStage(deps: WakeupDeps): Stage {
  const { config, metrics, events, views, accounts } = deps;
  const policy: WakeupPolicy = { intervalMs: config.wakeup.intervalSeconds * 1000, maxPending: config.wakeup.maxPending };
  for (const outcome of ["sent", "coalesced", "capped", "no_push", "no_anchor"]) metrics.wakeups.inc({ outcome }, 0);
  for (const where of ["direct", "carbon", "archive"]) metrics.wakeupsStripped.inc({ where }, 0);
  const state = (account: Account) => account.slot(STATE, () => new AccountWakeups());

  /** SPEC G1–G3: a room message the account should be woken for, unless the policy says otherwise. */
  function wake(account: Account, el: Element): void {
    if (!config.wakeup.enabled) return;
    const from = el.attrs.from ?? "";
    const room = from.split("/")[0] ?? "";
    const m = notifiable(el, views.rooms.get(account, room)?.nick);
    if (!m) return;
    const decision = state(account).decide(Date.now(), keyOf(el), m.mention, policy);
    if (decision === "duplicate") return;
    if (decision !== "send") return void metrics.wakeups.inc({ outcome: decision });
    const stanza = wakeupStanza(account.bare, `${ID_PREFIX}${randomBytes(6).toString("hex")}`, m, config.wakeup.includeBody);
    if (!account.sendViaAnchor(stanza)) {
      state(account).pending--;
      return void metrics.wakeups.inc({ outcome: "no_anchor" });
    }
    metrics.wakeups.inc({ outcome: "sent" });
  }

  events.on("offline-queued", ({ account, el }) => wake(account, el));
  // A device is back: what was pending is answered (an account with no state yet has nothing pending: none made).
  const answered = (account: Account) => (account.slots.get(STATE) as AccountWakeups | undefined)?.answered();
  events.on("session-bound", ({ account }) => answered(account));
  events.on("session-resumed", ({ account }) => answered(account));
  // SPEC G6: a kept anchor brings the registrations it was kept with.
  events.on("account-restored", ({ account, push }) => { for (const r of push) state(account).registrations.add(r); });

  /** c2s: a push enable or disable (XEP-0357) on its way to the server. */
  function onPushRequest(ctx: StanzaContext): void {
    const el = ctx.stanza;
    const child = el.getChildElements().find((c) => c.attrs.xmlns === PUSH && (c.name === "enable" || c.name === "disable"));
    const id = el.attrs.id;
    if (!child || id === undefined || !child.attrs.jid) return;
    let pending = ctx.session.slots.get(PENDING) as Map<string, PushChange> | undefined;
    if (!pending) ctx.session.slots.set(PENDING, (pending = new Map()));
    if (pending.size >= 16) pending.delete(pending.keys().next().value as string); // bounded: a client that never gets answers
    pending.set(id, { op: child.name as PushChange["op"], jid: child.attrs.jid, node: child.attrs.node });
  }

  /** s2c: the server's answer to a push enable or disable: the account has push (or no longer has it). */
  function onPushAnswer(ctx: StanzaContext): void {
    const pending = ctx.session.slots.get(PENDING) as Map<string, PushChange> | undefined;
    const id = ctx.stanza.attrs.id ?? "";
    const change = pending?.get(id);
    if (!pending || !change) return;
    pending.delete(id);
    const account = accounts.forSession(ctx.session);
    if (!account || ctx.stanza.attrs.type !== "result") return;
    const regs = state(account).registrations;
    if (change.op === "enable") regs.add(`${change.jid}\0${change.node ?? ""}`);
    else for (const r of [...regs]) if (r.startsWith(`${change.jid}\0`) && (change.node === undefined || r === `${change.jid}\0${change.node}`)) regs.delete(r);
    events.emit("push-registrations", { account, registrations: [...regs] });
  }

  return {
    name: "wakeup",
    wants(el: Element, direction: Direction, session: Session, origin: ChainOrigin): boolean {
      if (direction === "c2s") return el.name === "iq" && el.attrs.type === "set" && el.children.some((c) => typeof c !== "string" && c.attrs.xmlns === PUSH);
      if (el.name === "iq") return (el.attrs.type === "result" || el.attrs.type === "error") && session.slots.has(PENDING);
      if (el.name !== "message") return false;
      return (session.hibernated === true && origin === "anchor") || wakeupIn(el) !== undefined;
    },
    c2s(ctx) {
      onPushRequest(ctx);
    },
    s2c(ctx) {
      const el = ctx.stanza;
      if (el.name === "iq") return onPushAnswer(ctx);
      const place = wakeupIn(el);
      if (place) {
        // SPEC G4: the device gets mucmux's own copies of room messages, never the server's wake-up.
        metrics.wakeupsStripped.inc({ where: place });
        return DROP;
      }
      // SPEC G1: a room message reaching a hibernated device: the server is asked to wake it.
      const account = accounts.forSession(ctx.session);
      if (account) wake(account, el);
    },
    anchor(account, el) {
      // SPEC G5: a wake-up the server bounced (its offline store full, say) comes back to the anchor.
      if (el.name !== "message" || el.attrs.type !== "error" || !el.attrs.id?.startsWith(ID_PREFIX)) return;
      metrics.wakeupsRefused.inc();
      deps.log.warn({ condition: el.getChild("error")?.getChildElements()[0]?.name }, "the server refused a wake-up");
      state(account).pending = Math.max(0, state(account).pending - 1);
      return DROP;
    },
  };
}
