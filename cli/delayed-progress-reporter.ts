/**
 * A reporter that shows a phase only once it has lasted a while, so work that is usually quick (a plan
 * search, a simulation) prints nothing extra when it is.
 */
import type { Progress } from "../core/progress.js";
import type { ProgressReporter } from "./progress-reporter.js";

/** Shows each phase only once it has lasted `delaySeconds`. */
export class DelayedProgressReporter implements ProgressReporter {
  private pending: { total: number; label: string; unit: Progress["unit"]; startedSeconds: number } | undefined;
  private shown = false;

  constructor(
    private readonly inner: ProgressReporter,
    private readonly delaySeconds: number,
    private readonly nowSeconds: () => number,
  ) {}

  start(total: number, label: string, unit?: Progress["unit"]): void {
    this.stop();
    this.pending = { total, label, unit, startedSeconds: this.nowSeconds() };
  }

  update(done: number, detail?: string): void {
    const pending = this.pending;
    if (!pending) return;
    if (!this.shown) {
      if (this.nowSeconds() - pending.startedSeconds < this.delaySeconds) return;
      this.inner.start(pending.total, pending.label, pending.unit);
      this.shown = true;
    }
    this.inner.update(done, detail);
  }

  stop(): void {
    if (this.shown) this.inner.stop();
    this.shown = false;
    this.pending = undefined;
  }
}
