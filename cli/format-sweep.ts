/** The text `spillway sweep` prints: one line per profile, then why each that does not fit does not. */

import { formatSignificant } from "../core/units.js";
import type { SweepResult } from "../planner/sweep/sweep.js";
import type { SweepRow } from "../planner/sweep/sweep-row.js";

const number = (x: number | undefined, digits = 4) => (x === undefined ? "-" : formatSignificant(x, digits));

function policyWords(r: SweepRow): string {
  if (r.gpuBatchSize === undefined) return "-";
  const block = `${r.gpuBatchSize} x ${r.numGpuBatches}`;
  const T = r.tensorParallelSize ?? 1;
  if (T > 1) return `${block}, ${r.stages} x ${T} GPUs x ${r.microBatches} micro`;
  return (r.stages ?? 1) > 1 ? `${block}, ${r.stages} stages x ${r.microBatches} micro` : block;
}

export function formatSweep(result: SweepResult): string {
  const priced = result.rows.some((r) => r.dollarsPerGpuHour !== undefined);
  const header = ["profile", "GPU", "nodes x GPUs", "fits", "policy (gbs x nb)", "token/s", "bottleneck"];
  if (priced) header.push("$/GPU-hour", "$/M tokens");
  const table = result.rows.map((r) => {
    const cells = [
      r.profile,
      r.gpu,
      `${r.nodes} x ${r.gpusPerNode}`,
      r.fits ? "yes" : "no",
      policyWords(r),
      number(r.throughputTokensPerSecond),
      r.bottleneck ?? "-",
    ];
    if (priced)
      cells.push(
        r.dollarsPerGpuHour === undefined ? "-" : r.dollarsPerGpuHour.toFixed(2),
        r.dollarsPerMillionTokens === undefined ? "-" : number(r.dollarsPerMillionTokens, 3),
      );
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const lines = [
    `Sweep of ${result.model} (prompt ${result.workload.promptLen}, generate ${result.workload.genLen}) over ${result.rows.length} profile${result.rows.length === 1 ? "" : "s"}, ${result.costModel} cost model`,
    "",
    line(header),
    ...table.map(line),
  ];
  const unfit = result.rows.filter((r) => !r.fits);
  if (unfit.length) lines.push("", ...unfit.map((r) => `${r.profile}: ${r.reason}`));
  if (priced)
    lines.push(
      "",
      "$/M tokens: the profile's GPUs x $/GPU-hour / 3600 / (token/s) x 1e6; every GPU of a cluster is paid for",
    );
  return lines.join("\n");
}
