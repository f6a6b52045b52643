// Writes toward devices leave once per socket per turn. The first stanza a turn writes to a device socket corks it;
// when the turn's synchronous work is over (process.nextTick: the end of the read, timer or immediate that wrote)
// every socket written to is uncorked once, so what one read produced — a room message fanned out to every device,
// a join answered from the cache, the relayed stanzas of one read, the stream management <r/> after them — goes
// out as one TLS record and one syscall per socket instead of one per stanza. A socket's writes keep their order:
// corking only delays them, and everything written to that socket meanwhile joins the same flush.
import type { Socket } from "node:net";

/** One socket held until the end of the turn. */
export interface Hold {
  readonly owner: Holdable;
  /** The socket corked (the owner's socket at the time). */
  readonly sock: Socket;
  /** Runs right before the socket is uncorked (stream management's <r/> after the burst). */
  last: (() => void) | undefined;
}

/** What writes to one socket (a Wire): its hold is kept on it, so a write finds it without a lookup. */
export interface Holdable {
  readonly socket: Socket;
  batchHold: Hold | undefined;
}

export class WriteBatch {
  private held: Hold[] = [];

  /** `onError`: a `last` callback threw (the socket is uncorked all the same, and so are the others). */
  constructor(private readonly onError: (err: unknown) => void) {}

  /** Writes to `owner`'s socket from now until the end of this turn leave together. */
  hold(owner: Holdable): void {
    if (owner.batchHold !== undefined) return;
    if (this.held.length === 0) process.nextTick(this.flush);
    const sock = owner.socket;
    sock.cork();
    const h: Hold = { owner, sock, last: undefined };
    owner.batchHold = h;
    this.held.push(h);
  }

  /**
   * `fn` writes the last thing of this turn to `owner`'s socket (once: a second call replaces nothing). False when
   * it is not held this turn: the caller schedules it itself.
   */
  last(owner: Holdable, fn: () => void): boolean {
    const h = owner.batchHold;
    if (h === undefined) return false;
    h.last ??= fn;
    return true;
  }

  /** Sockets held now (tests, diagnostics). */
  get size(): number { return this.held.length; }

  private readonly flush = (): void => {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      // Until its own uncork a socket stays held: what its `last` (or an earlier socket's callbacks) writes to it
      // still joins this flush. Written to after its uncork, it is held again, for a flush of its own.
      try {
        h.last?.();
      } catch (err) {
        this.onError(err);
      }
      if (h.owner.batchHold === h) h.owner.batchHold = undefined;
      h.sock.uncork();
    }
  };
}
