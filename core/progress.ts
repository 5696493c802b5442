/**
 * How a long library computation (a run, a comparison, writing a synthetic checkpoint, a simulation, a
 * policy search) reports how far it has got: counts handed to an optional `onProgress` callback. The
 * library never prints; the CLI turns these counts into a progress bar or plain lines
 * (cli/progress-reporter.ts). A callback must not throw and is called synchronously from the work.
 */
export interface Progress {
  /** What is being counted ("run", "reference", "simulate", "search"…): a new phase starts a new count. */
  readonly phase: string;
  /** Units done so far, 0..total, never decreasing within a phase. */
  readonly done: number;
  /** Units in the phase (at least 1). */
  readonly total: number;
  /** What the units are: "bytes" (shown as sizes), or plain steps. */
  readonly unit?: "bytes" | "steps";
  /** Where the work is ("token 3/32, layer 5/96"). */
  readonly detail?: string;
}

export type OnProgress = (progress: Progress) => void;
