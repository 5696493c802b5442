/** `spillway compare`: the plan's prediction, the simulation and the measured run side by side (text). */

import { RESOURCES } from "../core/resources.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import type { Comparison } from "../runtime/compare.js";
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
  if (c.matchesReference !== undefined)
    lines.push(`tokens ${c.matchesReference ? "match" : "DIFFER FROM"} the all-on-device reference`);
  return lines.join("\n");
}
