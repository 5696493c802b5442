/**
 * Progress as one redrawing bar (cli-progress) on an interactive terminal: "run [████░░░░] 40% 4/10
 * token 2/5". Drawn only where terminal.ts's fancyProgress() allows it; the bar redraws at most 10 times
 * a second and is finished with a newline when its phase ends.
 */
import { Presets, SingleBar } from "cli-progress";
import type { Progress } from "../core/progress.js";
import { progressAmount } from "./progress-amount.js";
import type { ProgressReporter } from "./progress-reporter.js";

export class BarProgressReporter implements ProgressReporter {
  private bar: SingleBar | undefined;
  private total = 0;
  private unit: Progress["unit"];
  private done = 0;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  start(total: number, label: string, unit?: Progress["unit"]): void {
    this.stop();
    this.total = Math.max(0, total);
    this.unit = unit;
    this.done = 0;
    // The label is a phase name the library chose; braces would be read as placeholders.
    const safeLabel = label.replace(/[{}]/g, "");
    this.bar = new SingleBar(
      {
        format: `${safeLabel} [{bar}] {percentage}% {amount} {detail}`,
        stream: this.stream,
        gracefulExit: false,
        hideCursor: false,
      },
      Presets.shades_classic,
    );
    this.bar.start(this.total, 0, { amount: progressAmount(0, this.total, unit), detail: "" });
  }

  update(done: number, detail?: string): void {
    if (!this.bar || !(done >= this.done)) return;
    this.done = Math.min(done, this.total);
    this.bar.update(this.done, { amount: progressAmount(this.done, this.total, this.unit), detail: detail ?? "" });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
