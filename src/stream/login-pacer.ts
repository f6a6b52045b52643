// Login pacing (SPEC E8). A burst of logins is a burst of small steps (stream header, features, SASL, the server's
// answers, bind), and libuv hands the loop every ready socket in one turn: a few hundred logins' steps at once stall
// it for tens of milliseconds. So the input of streams that are not online yet (the client's, and the session's
// upstream leg's) is handled at most `budgetMs` per turn of the event loop, counted from the turn's first login
// step; a read beyond it waits, in arrival order, for a later turn, its socket paused meanwhile. Online sessions
// and anchors are never held.

/** A stream whose reads the pacer may hold (a Wire). */
export interface PacedReader {
  /** Handle a read the pacer held (the reader paused its socket when it was held). */
  release(chunk: Buffer): void;
}

export interface LoginPacerOptions {
  /** limits.loginMsPerTurn: milliseconds of login input handled per event-loop turn. */
  budgetMs: number;
  /** A read had to wait for a later turn. */
  onHeld?(): void;
  now?(): number;
  /** Runs `fn` in the next turn of the event loop (default setImmediate). */
  nextTurn?(fn: () => void): void;
}

interface Held { reader: PacedReader; chunk: Buffer }

export class LoginPacer {
  /** When this turn's first login step began; undefined until there is one. */
  private turnStart: number | undefined;
  private turnScheduled = false;
  /** FIFO: `held[head]` is next. */
  private held: Held[] = [];
  private head = 0;
  private readonly now: () => number;

  constructor(private readonly opts: LoginPacerOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  get waiting(): number { return this.held.length - this.head; }

  /** True: handle `chunk` now. False: the pacer keeps it and hands it to `reader.release` in a later turn. */
  admit(reader: PacedReader, chunk: Buffer): boolean {
    if (this.waiting === 0 && this.withinBudget()) return true;
    this.held.push({ reader, chunk });
    this.opts.onHeld?.();
    this.scheduleTurn();
    return false;
  }

  /** Starts the turn's clock at its first login step; true while the turn has budget left. */
  private withinBudget(): boolean {
    const now = this.now();
    if (this.turnStart === undefined) {
      this.turnStart = now;
      this.scheduleTurn(); // the clock starts again in the next turn
    }
    return now - this.turnStart < this.opts.budgetMs;
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    (this.opts.nextTurn ?? setImmediate)(() => this.turn());
  }

  private turn(): void {
    this.turnScheduled = false;
    this.turnStart = undefined;
    while (this.waiting > 0 && this.withinBudget()) {
      const { reader, chunk } = this.held[this.head] as Held;
      this.held[this.head++] = undefined as unknown as Held;
      reader.release(chunk);
    }
    if (this.waiting === 0) {
      this.held = [];
      this.head = 0;
    } else {
      if (this.head > 1024) {
        this.held = this.held.slice(this.head);
        this.head = 0;
      }
      this.scheduleTurn();
    }
  }
}
