/** `spillway compare`: the plan's prediction, the simulation and the measured run side by side (text). */

import { RESOURCES } from "../core/resources.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import type { Comparison } from "../runtime/compare.js";
import type { SliceComparison, SliceFigures } from "../simulator/trace-slices.js";
import { expertSummaryRows } from "./format-expert-summary.js";

export function formatComparison(c: Comparison): string {
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
  const row = (name: string, p: string, s: string, m: string, e: string) =>
    `${name.padEnd(22)}${p.padStart(14)}${s.padStart(14)}${m.padStart(14)}${e.padStart(10)}`;
  const lines = [row("", "predicted", "simulated", "measured", "error")];
  const P = c.predicted,
    S = c.simulated,
    M = c.measured;
  lines.push(
    row(
      "throughput (token/s)",
      formatSignificant(P.throughputTokensPerSecond),
      formatSignificant(S.throughputTokensPerSecond),
      formatSignificant(M.throughputTokensPerSecond),
      pct(c.relativeError.throughput),
    ),
  );
  lines.push(
    row(
      "prefill",
      formatSeconds(P.prefillSeconds),
      formatSeconds(S.prefillSeconds),
      formatSeconds(M.prefillSeconds),
      pct(c.relativeError.prefill),
    ),
  );
  lines.push(
    row(
      "decode",
      formatSeconds(P.decodeSeconds),
      formatSeconds(S.decodeSeconds),
      formatSeconds(M.decodeSeconds),
      pct(c.relativeError.decode),
    ),
  );
  for (const r of RESOURCES) {
    const p = P.busySeconds[r] ?? 0,
      s = S.busySeconds[r] ?? 0,
      m = M.busySeconds[r] ?? 0;
    if (p + s + m === 0) continue;
    lines.push(row(`busy ${r}`, formatSeconds(p), formatSeconds(s), formatSeconds(m), p > 0 ? pct((m - p) / p) : ""));
  }
  for (const t of ["gpu", "cpu", "disk"] as const) {
    lines.push(
      row(
        `peak ${t}`,
        formatBytes(P.peakBytes[t]),
        formatBytes(S.peakBytes[t]),
        formatBytes(M.peakBytes[t]),
        P.peakBytes[t] > 0 ? pct((M.peakBytes[t] - P.peakBytes[t]) / P.peakBytes[t]) : "",
      ),
    );
  }
  if (c.experts) {
    const x = c.experts;
    lines.push(`decode experts (${x.measured.decodeSteps} steps; simulated: the run's routing replayed)`);
    lines.push(...expertSummaryRows([x.predicted, x.simulated, x.measured], 22, 14));
  }
  if (c.slices && c.slices.length > 0) lines.push(...sliceRows(c.slices));
  if (c.matchesReference !== undefined)
    lines.push(`tokens ${c.matchesReference ? "match" : "DIFFER FROM"} the all-on-device reference`);
  return lines.join("\n");
}

/** Where the time went, slice kind by slice kind: simulated and measured median and total, the ratio of the totals. */
function sliceRows(slices: readonly SliceComparison[]): string[] {
  const us = (f?: SliceFigures) => (f ? `${formatSignificant(f.medianSeconds * 1e6)} us` : "-");
  const total = (f?: SliceFigures) => (f ? formatSeconds(f.totalSeconds) : "-");
  const count = (f?: SliceFigures) => (f ? `${f.count}` : "-");
  const row = (a: string, n: string, b: string, c: string, d: string, e: string, f: string) =>
    `${a.padEnd(22)}${n.padStart(11)}${b.padStart(12)}${c.padStart(12)}${d.padStart(12)}${e.padStart(12)}${f.padStart(10)}`;
  const lines = [
    "slices (per kind: how many, median, total; x: measured total over simulated; the runtime may cut a kind finer)",
    row("", "sim/run n", "sim median", "run median", "sim total", "run total", "x"),
  ];
  for (const s of slices) {
    const ratio =
      s.simulated && s.measured && s.simulated.totalSeconds > 0
        ? `${formatSignificant(s.measured.totalSeconds / s.simulated.totalSeconds)}x`
        : "";
    lines.push(
      row(
        `${s.name} (${s.phase})`,
        `${count(s.simulated)}/${count(s.measured)}`,
        us(s.simulated),
        us(s.measured),
        total(s.simulated),
        total(s.measured),
        ratio,
      ),
    );
  }
  return lines;
}
