// The chain runner: the only place with error isolation and stage metrics (stages stay plain). Three entries:
// c2s (a client's stanza toward its leg), s2c (every stanza toward a device: relayed, synthesized or fanned
// out) and anchor (a stanza that arrived on an account's anchor). A stage that throws costs that stanza,
// never the stream it came on (SPEC E7).
import type { Element } from "@xmpp/xml";
import { DROP, type ChainOrigin, type Direction, type Stage, type StanzaContext } from "./stage.js";
import type { DeliverOptions, Session } from "./session.js";
import type { Account } from "../account/account.js";
import type { Logger } from "../log.js";
import { clone, iqError } from "../protocol/element.js";

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

/** A stanza waiting behind a held one of the same session and direction (stanzas keep their order). */
type Waiting = () => void;

export function createChainRunner(deps: {
  stages: readonly Stage[];
  log: Logger;
  onStageError?: (stage: string, kind: StageErrorKind) => void;
}): ChainRunner {
  const c2s = deps.stages.filter((s) => s.c2s);
  const s2c = deps.stages.filter((s) => s.s2c).reverse();
  const anchorStages = deps.stages.filter((s) => s.anchor);
  // While a stage holds a stanza (a returned promise), later stanzas of that session and direction wait
  // behind it: RFC 6120 §10.1 in-order processing.
  const held: Record<Direction, WeakMap<Session, Waiting[]>> = { c2s: new WeakMap(), s2c: new WeakMap() };
  const failed = (s: Stage, kind: StageErrorKind, err: unknown, el: Element) => {
    deps.log.error({ err, stage: s.name, kind, stanza: el.name, id: el.attrs.id }, "stage failed");
    deps.onStageError?.(s.name, kind);
  };
  const notWritten = (opts: DeliverOptions | undefined, why: string) => opts?.onWritten?.(new Error(why));

  /**
   * A stage failed on `el`: it is dropped, and an IQ request is answered (RFC 6120 §8.2.3) toward where it
   * came from — the client, or the server on the session's own leg — never silently lost.
   */
  function lost(el: Element, direction: Direction, origin: ChainOrigin, delivery: Delivery, opts: DeliverOptions | undefined, why: string): void {
    notWritten(opts, why);
    const type = el.attrs.type;
    if (el.name !== "iq" || (type !== "get" && type !== "set")) return;
    if (direction === "s2c" && origin !== "upstream") return; // an anchor's IQ is answered by its own path
    delivery.back(iqError(el.attrs.id, el.attrs.to, el.attrs.from, "wait", "internal-server-error"));
  }

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
      return lost(stanza, direction, origin, delivery, opts, `${(stages[first] as Stage).name} failed`);
    }
    if (first === stages.length) return delivery.onward(stanza, opts);
    handle(stages, first, direction, session, stanza, delivery, origin, opts);
  }

  /** Some stage wants the stanza: run the wanting stages from `first` on with a context. */
  function handle(
    stages: readonly Stage[], first: number, direction: Direction, session: Session, stanza: Element, delivery: Delivery,
    origin: ChainOrigin, opts: DeliverOptions | undefined,
  ): void {
    // Shared: the caller keeps the element (fan-out to many, or one copy of a cached stanza).
    const shared = opts?.prepared?.el ?? (opts?.shared ? stanza : undefined);
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
    const onward = () => {
      // A stanza some stage replaced (or copied to edit) is serialized on its own, not from the shared form.
      if (opts?.prepared !== undefined && ctx.stanza !== shared) delivery.onward(ctx.stanza, { ...opts, prepared: undefined });
      else delivery.onward(ctx.stanza, opts);
    };
    /**
     * true: go onward; false: dropped (or lost to a failure); a promise: a stage holds the stanza, and the
     * promise settles once the rest has run.
     */
    const loop = (from: number, askedFirst: boolean): boolean | Promise<void> => {
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
          lost(ctx.stanza, direction, origin, delivery, opts, `${s.name} failed`);
          return false;
        }
        if (result === DROP) {
          notWritten(opts, `dropped by ${s.name}`);
          return false;
        }
        if (result instanceof Promise) {
          // The caller may change a shared element once this call returns (fan-out restores `to`): the held
          // stanza is this session's own copy from now on.
          if (shared !== undefined && ctx.stanza === shared) ctx.stanza = clone(shared);
          return result.then(
            (r) => {
              if (r === DROP) return void notWritten(opts, `dropped by ${s.name}`);
              const rest = loop(i + 1, false);
              if (rest === true) return void onward();
              return rest === false ? undefined : rest;
            },
            (err: unknown) => {
              failed(s, direction, err, ctx.stanza);
              lost(ctx.stanza, direction, origin, delivery, opts, `${s.name} failed`);
            },
          );
        }
      }
      return true;
    };
    const outcome = loop(first, true);
    if (outcome === true) onward();
    else if (outcome instanceof Promise) hold(session, direction, outcome);
  }

  /** Later stanzas of this session and direction wait until `done` settles, then run in their order. */
  function hold(session: Session, direction: Direction, done: Promise<void>): void {
    const queues = held[direction];
    if (!queues.has(session)) queues.set(session, []);
    void done.catch((err: unknown) => deps.log.error({ err }, "delivery after a held stanza failed")).then(() => {
      const waiting = queues.get(session) ?? [];
      queues.delete(session);
      for (let k = 0; k < waiting.length; k++) {
        (waiting[k] as Waiting)();
        const again = queues.get(session);
        if (again) { // held again: the rest waits behind that one
          again.push(...waiting.slice(k + 1));
          return;
        }
      }
    });
  }

  return {
    run(direction, session, stanza, delivery, origin, opts) {
      const waiting = held[direction].get(session);
      if (waiting) {
        // Behind a held stanza; a fan-out caller restores its element after this returns: keep our own.
        const own = opts?.prepared !== undefined || opts?.shared ? clone(stanza) : stanza;
        const later = opts?.prepared !== undefined ? { ...opts, prepared: undefined } : opts;
        waiting.push(() => runFrom(direction === "c2s" ? c2s : s2c, 0, direction, session, own, delivery, origin, later));
        return;
      }
      runFrom(direction === "c2s" ? c2s : s2c, 0, direction, session, stanza, delivery, origin, opts);
    },

    anchor(account, el) {
      for (const s of anchorStages) {
        try {
          if (s.anchor?.call(s, account, el) === DROP) return;
        } catch (err) {
          // The anchor's stream stays up, and the other stages still get the stanza: each handles it on its
          // own (a bookkeeping stage failing must not cost the room's fan-out).
          failed(s, "anchor", err, el);
        }
      }
    },
  };
}
