// The chain runner: the only place with timing, error isolation and stage metrics (stages stay plain).
import type { Element } from "@xmpp/xml";
import { DROP, type Direction, type SessionView, type Stage, type StanzaContext } from "./stage.js";
import type { Logger } from "../log.js";

export interface Delivery {
  /** Write toward the destination of the direction (upstream for c2s, the client for s2c). */
  onward(el: Element): void;
  /** Write back toward the origin of the direction. */
  back(el: Element): void;
}

export interface ChainRunner {
  run(direction: Direction, session: SessionView, stanza: Element, delivery: Delivery): void;
}

export function createChainRunner(deps: { stages: readonly Stage[]; log: Logger; onStageError?: (stage: string) => void }): ChainRunner {
  const c2s = deps.stages.filter((s) => s.c2s);
  const s2c = deps.stages.filter((s) => s.s2c).reverse();
  return {
    run(direction, session, stanza, delivery) {
      const stages = direction === "c2s" ? c2s : s2c;
      // Pass-through fast path: nothing wants it, so no context object and no loop.
      let first = 0;
      while (first < stages.length && !(stages[first] as Stage).wants(stanza, direction, session)) first++;
      if (first === stages.length) { delivery.onward(stanza); return; }
      const ctx: StanzaContext = {
        direction,
        session,
        stanza,
        reply: (el) => delivery.back(el),
        forward: (el) => delivery.onward(el),
      };
      for (let i = first; i < stages.length; i++) {
        const s = stages[i] as Stage;
        // The first stage's wants() was just asked; later ones see the stanza as earlier stages left it.
        if (i !== first && !s.wants(ctx.stanza, direction, session)) continue;
        const handler = direction === "c2s" ? s.c2s : s.s2c;
        try {
          if (handler?.call(s, ctx) === DROP) return;
        } catch (err) {
          // One stage failing on one stanza must not take the session down; the stanza is dropped.
          deps.log.error({ err, stage: s.name, stanza: ctx.stanza.name, id: ctx.stanza.attrs.id }, "stage failed");
          deps.onStageError?.(s.name);
          return;
        }
      }
      delivery.onward(ctx.stanza);
    },
  };
}
