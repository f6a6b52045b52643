// The chain runner: the only place with error isolation and stage metrics (stages stay plain). Three entries:
// c2s (a client's stanza toward its leg), s2c (every stanza toward a device: relayed, synthesized or fanned
// out) and anchor (a stanza that arrived on an account's anchor). A stage that throws costs that stanza,
// never the stream it came on (SPEC E7).
import type { Element } from "@xmpp/xml";
import { DROP, type ChainOrigin, type Direction, type Stage, type StanzaContext } from "./stage.js";
import type { DeliverOptions, Session } from "./session.js";
import type { Account } from "../account/account.js";
import type { Logger } from "../log.js";
import { clone } from "../protocol/element.js";

export interface Delivery {
  /** Write toward the destination of the direction (upstream for c2s, the device for s2c). */
  onward(el: Element, opts: DeliverOptions | undefined): void;
  /** Write back toward the origin of the direction. */
  back(el: Element): void;
}

export interface ChainRunner {
  run(direction: Direction, session: Session, stanza: Element, delivery: Delivery, origin: ChainOrigin, opts?: DeliverOptions): void;
  /** An anchor stanza through the stages' anchor handlers, in stage order. */
  anchor(account: Account, el: Element): void;
}

export type StageErrorKind = Direction | "anchor";

export function createChainRunner(deps: {
  stages: readonly Stage[];
  log: Logger;
  onStageError?: (stage: string, kind: StageErrorKind) => void;
}): ChainRunner {
  const c2s = deps.stages.filter((s) => s.c2s);
  const s2c = deps.stages.filter((s) => s.s2c).reverse();
  const anchorStages = deps.stages.filter((s) => s.anchor);
  const failed = (s: Stage, kind: StageErrorKind, err: unknown, el: Element) => {
    deps.log.error({ err, stage: s.name, kind, stanza: el.name, id: el.attrs.id }, "stage failed");
    deps.onStageError?.(s.name, kind);
  };
  const notWritten = (opts: DeliverOptions | undefined, why: string) => opts?.onWritten?.(new Error(why));

  /** The stages from `start` on, then onward. The fast path allocates nothing: no context, no closure. */
  function runFrom(
    stages: readonly Stage[], start: number, direction: Direction, session: Session, stanza: Element, delivery: Delivery,
    origin: ChainOrigin, opts: DeliverOptions | undefined,
  ): void {
    let first = start;
    try {
      while (first < stages.length && !(stages[first] as Stage).wants(stanza, direction, session, origin)) first++;
    } catch (err) {
      failed(stages[first] as Stage, direction, err, stanza);
      return notWritten(opts, `${(stages[first] as Stage).name} failed`);
    }
    if (first === stages.length) return delivery.onward(stanza, opts);
    handle(stages, first, direction, session, stanza, delivery, origin, opts);
  }

  /** Some stage wants the stanza: run the wanting stages from `first` on with a context. */
  function handle(
    stages: readonly Stage[], first: number, direction: Direction, session: Session, stanza: Element, delivery: Delivery,
    origin: ChainOrigin, opts: DeliverOptions | undefined,
  ): void {
    const shared = opts?.prepared?.el;
    let at = first; // the stage that handles (or last handled) the stanza
    const ctx: StanzaContext = {
      direction,
      origin,
      session,
      stanza,
      edit() {
        if (shared !== undefined && ctx.stanza === shared) ctx.stanza = clone(shared);
        return ctx.stanza;
      },
      reply: (el) => delivery.back(el),
      // Onward through the stages after the one that handled this stanza, also when called later (an answer
      // a stage produced after awaiting the store): toward a device, nothing skips its outbound chain.
      forward: (el) => runFrom(stages, at + 1, direction, session, el, delivery, origin, undefined),
    };
    const loop = (from: number, askedFirst: boolean): void => {
      for (let i = from; i < stages.length; i++) {
        const s = stages[i] as Stage;
        let result: ReturnType<NonNullable<Stage["c2s"]>>;
        try {
          // The first stage's wants() was just asked; later ones see the stanza as earlier stages left it.
          if (!(askedFirst && i === from) && !s.wants(ctx.stanza, direction, session, origin)) continue;
          at = i;
          const handler = direction === "c2s" ? s.c2s : s.s2c;
          result = handler?.call(s, ctx);
        } catch (err) {
          // One stage failing on one stanza must not take the session down; the stanza is dropped.
          failed(s, direction, err, ctx.stanza);
          return notWritten(opts, `${s.name} failed`);
        }
        if (result === DROP) return notWritten(opts, `dropped by ${s.name}`);
        if (result instanceof Promise) {
          // Held: the caller may change its element once this call returns (fan-out restores `to`), so the
          // held stanza is this session's own copy from now on.
          ctx.stanza = clone(ctx.stanza);
          result.then(
            (r) => (r === DROP ? notWritten(opts, `dropped by ${s.name}`) : loop(i + 1, false)),
            (err: unknown) => { failed(s, direction, err, ctx.stanza); notWritten(opts, `${s.name} failed`); },
          ).catch((err: unknown) => deps.log.error({ err }, "delivery after a held stanza failed")); // never unhandled
          return;
        }
      }
      // A stanza some stage replaced (or copied to edit) is serialized on its own, not from the shared form.
      if (shared !== undefined && ctx.stanza !== shared) delivery.onward(ctx.stanza, { ...opts, prepared: undefined });
      else delivery.onward(ctx.stanza, opts);
    };
    loop(first, true);
  }

  return {
    run(direction, session, stanza, delivery, origin, opts) {
      runFrom(direction === "c2s" ? c2s : s2c, 0, direction, session, stanza, delivery, origin, opts);
    },

    anchor(account, el) {
      for (const s of anchorStages) {
        try {
          if (s.anchor?.call(s, account, el) === DROP) return;
        } catch (err) {
          // The anchor's stream stays up: only this stanza is lost (SPEC A9 would re-join every room).
          failed(s, "anchor", err, el);
          return;
        }
      }
    },
  };
}
