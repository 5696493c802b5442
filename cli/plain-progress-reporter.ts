/**
 * Progress as plain lines ("run: 40% (4/10), token 2/5"), for stderr that is not an interactive
 * terminal or has opted out of redrawing (terminal.ts). Bounded: a line when a phase starts, when it
 * passes each further `stepPercent`, and otherwise at most one every `intervalSeconds` while it moves,
 * so a phase prints at most 100/stepPercent + 1 lines plus one per interval however many updates it
 * gets. Lines only go forward: an update below one already shown is ignored.
 */
import type { Progress } from "../core/progress.js";
import { progressAmount, progressPercent } from "./progress-amount.js";
import type { ProgressReporter, ProgressStream } from "./progress-reporter.js";

export interface PlainProgressOptions {
  /** The clock, in seconds. */
  readonly nowSeconds: () => number;
  /** A line at every multiple of this percent (default 10). */
  readonly stepPercent?: number;
  /** Between those, a line at most this often while the count moves (default 5). */
  readonly intervalSeconds?: number;
}

export class PlainProgressReporter implements ProgressReporter {
  private phase:
    | {
        readonly label: string;
        readonly total: number;
        readonly unit: Progress["unit"];
        done: number;
        printedDone: number;
        printedStep: number;
        printedSeconds: number;
      }
    | undefined;
  private readonly stepPercent: number;
  private readonly intervalSeconds: number;

  constructor(
    private readonly stream: ProgressStream,
    private readonly options: PlainProgressOptions,
  ) {
    this.stepPercent = options.stepPercent ?? 10;
    this.intervalSeconds = options.intervalSeconds ?? 5;
  }

  start(total: number, label: string, unit?: Progress["unit"]): void {
    this.phase = {
      label,
      total: Math.max(0, total),
      unit,
      done: 0,
      printedDone: -1,
      printedStep: -1,
      printedSeconds: this.options.nowSeconds(),
    };
  }

  update(done: number, detail?: string): void {
    const phase = this.phase;
    if (!phase || !(done >= phase.done)) return;
    phase.done = Math.min(done, phase.total);
    const step = Math.floor(progressPercent(phase.done, phase.total) / this.stepPercent);
    const now = this.options.nowSeconds();
    const due =
      step > phase.printedStep ||
      (phase.done > phase.printedDone && now - phase.printedSeconds >= this.intervalSeconds);
    if (!due) return;
    phase.printedStep = step;
    phase.printedDone = phase.done;
    phase.printedSeconds = now;
    const percent = progressPercent(phase.done, phase.total);
    this.stream.write(
      `${phase.label}: ${percent}% (${progressAmount(phase.done, phase.total, phase.unit)})${detail ? `, ${detail}` : ""}\n`,
    );
  }

  stop(): void {
    this.phase = undefined;
  }
}
