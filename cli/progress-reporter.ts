/**
 * What a long command draws its progress with (cli/command-progress.ts picks one): a redrawing bar
 * (bar-progress-reporter.ts), plain lines (plain-progress-reporter.ts), or nothing (`--quiet`).
 */
import type { Progress } from "../core/progress.js";

export interface ProgressReporter {
  /** Begins counting a phase of `total` units (ending any phase before it). */
  start(total: number, label: string, unit?: Progress["unit"]): void;
  /** Units done so far in the phase, and where the work is. */
  update(done: number, detail?: string): void;
  /** Ends the phase (a bar is finished with a newline); safe to call twice or with nothing started. */
  stop(): void;
}

/** Prints nothing (`--quiet`). */
export const SILENT_PROGRESS: ProgressReporter = { start() {}, update() {}, stop() {} };

/** A stream progress can be written to: process.stderr, or a fake one in tests. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}
