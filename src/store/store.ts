// The durable store behind a small interface, so a networked store can implement it later (DESIGN.md).
// The relay itself keeps nothing durable; the MUC offline issue adds flags and queued messages here.
export interface Store {
  /** Cheap liveness check used by /readyz. */
  healthy(): boolean;
  /** Flush and close (SIGTERM drain, SPEC E6). */
  close(): void;
}
