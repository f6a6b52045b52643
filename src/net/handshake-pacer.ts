// TLS handshake pacing (SPEC E8). A server handshake's crypto (key share, certificate signature) runs on the main
// thread when the ClientHello is fed to OpenSSL, and libuv hands every ready socket to the loop in one turn: a
// burst of logins would stall the loop for as many handshakes as arrived at once. So a connection's TLS socket is
// made only once its ClientHello is in (read from the raw socket and kept until then), at most `perTurn` per turn
// of the event loop; its crypto runs right then (Node feeds the bytes put back into the raw socket to the new TLS
// socket on the next tick). The others wait in a bounded FIFO queue, drained `perTurn` per setImmediate turn.
// A waiting socket is still read, so a client that closes or resets leaves the queue before it costs a handshake.
import type { Socket } from "node:net";

export type TlsMode = "starttls" | "direct";

/** How a handshake that had to wait for its turn ended: the label of mucmux_tls_handshakes_paced_total. */
export const PACED_OUTCOMES = ["started", "closed", "refused", "drain"] as const;
export type PacedOutcome = (typeof PACED_OUTCOMES)[number];

/** What the pacer needs of a socket (a net.Socket; tests may pass a stand-in). */
export type PacedSocket = Pick<Socket, "on" | "once" | "off" | "pause" | "resume" | "unshift" | "destroy" | "destroyed" | "readableEnded">;

export interface HandshakePacerOptions {
  /** limits.tlsHandshakesPerTurn: handshakes started per event-loop turn at most. */
  perTurn: number;
  /** limits.tlsHandshakeQueue: handshakes waiting for their turn at most; a connection beyond it is closed. */
  maxQueued: number;
  /** A handshake that could not start in the turn its ClientHello arrived: how it left the queue. */
  onPaced?(mode: TlsMode, outcome: PacedOutcome): void;
  /** Runs `fn` in the next turn of the event loop (default setImmediate; tests step turns by hand). */
  nextTurn?(fn: () => void): void;
}

/** Bytes read from a waiting client at most (a ClientHello is one record, ≤ 16 KiB); beyond, it is just paused. */
const MAX_HELD_BYTES = 64 * 1024;

/** A submitted connection; cancel() when its owner gives it up before the handshake started. */
export interface PacedHandshake { cancel(): void }

interface Entry {
  socket: PacedSocket;
  mode: TlsMode;
  /** Makes the TLS socket; false when the owner no longer wants it (closing), which costs no slot. */
  start(): boolean;
  state: "reading" | "queued" | "done";
  /** What the client sent so far (its ClientHello), given back to the socket for the TLS socket to read. */
  held: Buffer[];
  heldBytes: number;
  onData(chunk: Buffer): void;
  onGone(): void;
}

export class HandshakePacer {
  /** Insertion-ordered: the FIFO, with O(1) removal of a connection that goes away while it waits. */
  private readonly queue = new Set<Entry>();
  /** Handshakes started since the last turn began (the budget is perTurn). */
  private startedThisTurn = 0;
  private turnScheduled = false;
  private closed = false;
  /** Handshakes started in all, paced or not (tests read it per turn). */
  started = 0;

  constructor(private readonly opts: HandshakePacerOptions) {}

  get queued(): number { return this.queue.size; }

  /**
   * `socket`: the raw TCP socket, nothing else reading it (bytes already read, such as those after a PROXY header,
   * are buffered in it). Once its first bytes are in, `start` runs in a turn with a free slot and wraps it in TLS.
   */
  submit(socket: PacedSocket, mode: TlsMode, start: () => boolean): PacedHandshake {
    const entry: Entry = {
      socket, mode, start, state: "reading", held: [], heldBytes: 0,
      onData: (chunk) => {
        entry.held.push(chunk);
        entry.heldBytes += chunk.length;
        if (entry.heldBytes >= MAX_HELD_BYTES) socket.pause();
        this.ready(entry);
      },
      onGone: () => this.leave(entry, "closed"),
    };
    socket.once("close", entry.onGone);
    socket.on("data", entry.onData);
    if (this.closed) this.leave(entry, "drain");
    else socket.resume();
    return { cancel: () => this.leave(entry, "closed") };
  }

  /** SIGTERM drain (SPEC E6): every queued connection is closed without a handshake, and so is every later one. */
  close(): void {
    this.closed = true;
    for (const entry of [...this.queue]) this.leave(entry, "drain");
  }

  private ready(entry: Entry): void {
    if (entry.state !== "reading") return;
    if (this.closed) return this.leave(entry, "drain");
    if (this.queue.size === 0 && this.startedThisTurn < this.opts.perTurn) return this.begin(entry);
    if (this.queue.size >= this.opts.maxQueued) return this.leave(entry, "refused");
    entry.state = "queued";
    this.queue.add(entry);
    this.scheduleTurn();
  }

  private begin(entry: Entry): void {
    const { socket } = entry;
    if (socket.destroyed || socket.readableEnded) return this.leave(entry, "closed"); // gone, or about to be
    const paced = entry.state === "queued";
    this.release(entry);
    socket.pause();
    socket.unshift(entry.held.length === 1 ? (entry.held[0] as Buffer) : Buffer.concat(entry.held));
    entry.held = [];
    if (!entry.start()) { // the owner is closing it: no slot used
      if (paced) this.opts.onPaced?.(entry.mode, "closed");
      return;
    }
    this.startedThisTurn++;
    this.started++;
    if (paced) this.opts.onPaced?.(entry.mode, "started");
    this.scheduleTurn(); // the budget is per turn: the next one begins with a fresh count
  }

  /** The connection leaves without a handshake: it closed, its owner gave it up, the queue was full, or drain. */
  private leave(entry: Entry, outcome: PacedOutcome): void {
    if (entry.state === "done") return;
    const counted = entry.state === "queued" || outcome !== "closed";
    this.release(entry);
    entry.held = [];
    if (counted) this.opts.onPaced?.(entry.mode, outcome);
    if (outcome === "refused" || outcome === "drain") entry.socket.destroy();
  }

  private release(entry: Entry): void {
    this.queue.delete(entry);
    entry.state = "done";
    entry.socket.off("data", entry.onData);
    entry.socket.off("close", entry.onGone);
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    (this.opts.nextTurn ?? setImmediate)(() => this.turn());
  }

  private turn(): void {
    this.turnScheduled = false;
    this.startedThisTurn = 0;
    for (const entry of this.queue) {
      if (this.startedThisTurn >= this.opts.perTurn) break;
      this.begin(entry); // removing the current entry of a Set while iterating it is safe
    }
    if (this.queue.size > 0) this.scheduleTurn();
  }
}
