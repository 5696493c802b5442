/**
 * The progress every long command shows on stderr (never stdout, so `--json` output stays clean): a
 * redrawing bar (cli-progress) on an interactive terminal, plain lines otherwise (NO_COLOR, TERM=dumb, a
 * pipe or a file; see terminal.ts), nothing with `--quiet`. Commands hand the library's `onProgress`
 * options (core/progress.ts) the listener withProgress() gives them; the reporter is stopped however the
 * work ends.
 */
import type { OnProgress } from "../core/progress.js";
import { BarProgressReporter } from "./bar-progress-reporter.js";
import { DelayedProgressReporter } from "./delayed-progress-reporter.js";
import { PlainProgressReporter } from "./plain-progress-reporter.js";
import { type ProgressReporter, type ProgressStream, SILENT_PROGRESS } from "./progress-reporter.js";
import { fancyProgress } from "./terminal.js";

export interface ProgressReporterOptions {
  /** `--quiet`: no progress at all. */
  readonly quiet: boolean;
  /** Where progress goes (default process.stderr). */
  readonly stream?: ProgressStream;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Show a phase only once it has run this long (default 0): work that is usually quick (a plan search,
   * a simulation) then prints nothing extra when it is.
   */
  readonly delaySeconds?: number;
  /** The clock, in seconds (default: performance.now()); tests pass their own. */
  readonly nowSeconds?: () => number;
}

/** The reporter for a command: silent with --quiet, a bar on a terminal that allows one, plain lines otherwise. */
export function progressReporter(options: ProgressReporterOptions): ProgressReporter {
  if (options.quiet) return SILENT_PROGRESS;
  const stream = options.stream ?? process.stderr;
  const nowSeconds = options.nowSeconds ?? (() => performance.now() / 1000);
  const reporter = fancyProgress(stream, options.env ?? process.env)
    ? new BarProgressReporter(stream as NodeJS.WritableStream)
    : new PlainProgressReporter(stream, { nowSeconds });
  const delaySeconds = options.delaySeconds ?? 0;
  return delaySeconds > 0 ? new DelayedProgressReporter(reporter, delaySeconds, nowSeconds) : reporter;
}

/** The library callback that drives `reporter`: each new phase (or total) starts a new count. */
export function progressListener(reporter: ProgressReporter): OnProgress {
  let phase: string | undefined;
  let total = 0;
  return (p) => {
    if (p.phase !== phase || p.total !== total) {
      phase = p.phase;
      total = p.total;
      reporter.start(p.total, p.phase, p.unit);
    }
    reporter.update(p.done, p.detail);
  };
}

/** Runs `work` with the command's reporter, stopping it (a bar's cursor restored) however the work ends. */
export async function withProgress<T>(
  options: ProgressReporterOptions,
  work: (onProgress: OnProgress) => T | Promise<T>,
): Promise<T> {
  const reporter = progressReporter(options);
  try {
    return await work(progressListener(reporter));
  } finally {
    reporter.stop();
  }
}

/** As withProgress, for synchronous work. */
export function withProgressSync<T>(options: ProgressReporterOptions, work: (onProgress: OnProgress) => T): T {
  const reporter = progressReporter(options);
  try {
    return work(progressListener(reporter));
  } finally {
    reporter.stop();
  }
}
