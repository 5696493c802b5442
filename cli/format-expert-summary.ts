/** The expert figures of an MoE run as rows of a table, one column per source (predicted, simulated, measured). */
import { formatBytes, formatSeconds } from "../core/units.js";
import type { ExpertSummary } from "../runtime/moe/expert-summary.js";

const ROWS: readonly { readonly name: string; readonly value: (x: ExpertSummary) => string }[] = [
  { name: "expert hit rate", value: (x) => `${(x.hitRate * 100).toFixed(1)}%` },
  { name: "prefetch recall", value: (x) => (x.prefetches > 0 ? `${(x.prefetchRecall * 100).toFixed(1)}%` : "-") },
  {
    name: "prefetch precision",
    value: (x) => (x.prefetches > 0 ? `${(x.prefetchPrecision * 100).toFixed(1)}%` : "-"),
  },
  { name: "expert bytes moved", value: (x) => formatBytes(x.expertBytes) },
  { name: "expert stall", value: (x) => formatSeconds(x.stallSeconds) },
  { name: "experts on CPU", value: (x) => x.cpuComputed.toFixed(0) },
  { name: "demand fetches", value: (x) => x.demandFetches.toFixed(0) },
];

/**
 * One row per figure: its name padded to `nameWidth`, then each column right-aligned in `columnWidth`
 * (a column that is absent prints "-").
 */
export function expertSummaryRows(
  columns: readonly (ExpertSummary | undefined)[],
  nameWidth: number,
  columnWidth: number,
): string[] {
  return ROWS.map(
    (row) => row.name.padEnd(nameWidth) + columns.map((c) => (c ? row.value(c) : "-").padStart(columnWidth)).join(""),
  );
}
