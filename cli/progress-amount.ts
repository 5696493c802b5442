/** How far a phase has got, in words: "12/30" steps, or "120.0 MiB of 250.0 MiB". */
import type { Progress } from "../core/progress.js";
import { formatBytes } from "../core/units.js";

export function progressAmount(done: number, total: number, unit: Progress["unit"]): string {
  return unit === "bytes" ? `${formatBytes(done)} of ${formatBytes(total)}` : `${done}/${total}`;
}

/** The whole percent done, 0..100 (100 only when done reaches total). */
export function progressPercent(done: number, total: number): number {
  if (total <= 0) return 100;
  return Math.min(100, Math.floor((100 * done) / total));
}
