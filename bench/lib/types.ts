// The shape every scenario has, so that run.ts can alternate modes, take medians and print one table.
import type { ProsodyServer } from "../../test/support/prosody.js";
import type { MucmuxProcess, SpawnOptions } from "./mucmux-process.js";

/** direct: clients connect to the server's own direct TLS port; mucmux: to mucmux's, in front of it. */
export type Mode = "direct" | "mucmux";
export const MODES: readonly Mode[] = ["direct", "mucmux"];

export interface BenchEnv {
  readonly quick: boolean;
  readonly prosody: ProsodyServer;
  /** PEM of the test CA (clients verify the server certificate with it). */
  readonly ca: string;
  /** Password of every account the benchmark registered. */
  password(user: string): string;
  /** The long-lived mucmux process (started on first use). */
  sharedMucmux(): Promise<MucmuxProcess>;
  /** A new mucmux process, stopped by the caller (for figures that need a clean baseline). */
  freshMucmux(opts?: SpawnOptions): Promise<MucmuxProcess>;
  /** Restart Prosody (same ports and accounts), for a clean memory baseline; the shared mucmux reconnects per session. */
  restartProsody(): Promise<void>;
  /** A second Prosody with debug logging (every stanza it sends is logged) and a mucmux in front of it, for
   * server-side counts; started on first use, stopped at the end. Debug logging costs Prosody CPU: use it
   * only where stanzas are counted. */
  mucServer(): Promise<{ prosody: ProsodyServer; mucmux: MucmuxProcess }>;
  log(line: string): void;
}

/** One run of one scenario in one mode: named figures (NaN where a figure does not apply to the mode). */
export type Sample = Record<string, number>;

export interface Figure {
  key: string;
  label: string;
  unit: string;
  /** How the two modes are compared: ratio mucmux/direct, difference mucmux − direct, or that difference and
   * the same as a percentage of direct (per pair: (mucmux − direct) / direct × 100). */
  compare?: "ratio" | "delta" | "delta-percent" | "none";
  digits?: number;
  /** Figures only meaningful in one mode (e.g. mucmux's own CPU). */
  only?: Mode;
  /** The performance target for this figure, shown next to it (e.g. "≤ 5 µs, acceptable ≤ 12"). */
  target?: string;
}

/** What the two columns hold when they are not "direct" and "mucmux" (e.g. two variants both through mucmux). */
export interface Columns {
  direct: string;
  mucmux: string;
  /** Header of the comparison column. */
  compare: string;
}

export interface Scenario {
  id: string;
  title: string;
  /** Column names in the tables (default "direct", "mucmux", "mucmux vs direct"); the modes still alternate A B A B. */
  columns?: Columns;
  /** One line on what exactly is measured (printed above the table, stored in the JSON). */
  describe(env: BenchEnv): string;
  figures: readonly Figure[];
  /** Method notes shown under the scenario's table in docs/benchmarks.md (what a figure means, what it leaves out). */
  notes?: readonly string[];
  /** Pairs for this scenario when --pairs is not given (default: 2 quick, 5 full), for scenarios whose runs are long. */
  pairs?(quick: boolean): number;
  run(mode: Mode, env: BenchEnv, iteration: number): Promise<Sample>;
  /** Stops what the scenario started for all of its runs (called once at the end of the benchmark, even after a failure). */
  stop?(): Promise<void>;
}

/** One figure of a scenario over its runs: the median of each mode and, where compared, the median of the per-pair
 * comparison with its range (delta-percent: `value` is the difference, `percent` the same in % of direct). */
export interface SummaryEntry {
  direct: number;
  mucmux: number;
  compare?: "ratio" | "delta" | "delta-percent";
  value?: number;
  range?: [number, number];
  percent?: number;
  percentRange?: [number, number];
}
