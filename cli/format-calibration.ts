/** `spillway calibrate`: each fitted rate's prior and fitted value, and the leave-one-out errors, as text. */

import { formatSignificant } from "../core/units.js";
import type { Calibration } from "../engines/calibrate.js";
import { signedPercent } from "./format-scores.js";

const PREFIXES: readonly [number, string][] = [
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
  [1, ""],
];

/** A rate with an SI prefix and the unit its name ends in (BytesPerSecond, FlopsPerSecond, ValuesPerSecond, Seconds, SecondsPerWeight). */
export function formatRateValue(name: string, value: number): string {
  if (name.endsWith("SecondsPerWeight")) return `${(value * 1e9).toPrecision(4)} ns/weight`;
  if (name.endsWith("Seconds") && !name.endsWith("PerSecond")) {
    if (value >= 1) return `${value.toPrecision(4)} s`;
    return value >= 1e-3 ? `${(value * 1e3).toPrecision(4)} ms` : `${(value * 1e6).toPrecision(4)} us`;
  }
  const unit = name.endsWith("BytesPerSecond")
    ? "B/s"
    : name.endsWith("FlopsPerSecond")
      ? "FLOP/s"
      : name.endsWith("ValuesPerSecond")
        ? "values/s"
        : "";
  const [scale, prefix] = PREFIXES.find(([scale]) => value >= scale) ?? [1, ""];
  return `${(value / scale).toPrecision(4)} ${prefix}${unit}`;
}

export function formatCalibration(
  engine: string,
  hardware: string,
  calibration: Calibration,
  setAside: number,
  out: string,
): string {
  const { fit, leaveOneOut } = calibration;
  const aside = setAside ? ` (${setAside} run${setAside > 1 ? "s" : ""} of other engines set aside)` : "";
  const lines = [`Calibrated ${hardware} to ${leaveOneOut.runs.length} runs of the ${engine} engine${aside}`];
  const names = fit.rates.map((rate) => `${rate.label} (${rate.path})`);
  const width = Math.max(0, ...names.map((n) => n.length)) + 2;
  const sourceWidth = Math.max(0, ...leaveOneOut.runs.map((r) => r.source.length));
  fit.rates.forEach((rate, i) => {
    const prior = `${formatRateValue(rate.name, rate.prior.value)} (${rate.prior.kind})`;
    const fitted = formatRateValue(rate.name, rate.fitted);
    const bound = rate.atBound ? "  at its bound: widen --bounds, or the model misses a cost" : "";
    lines.push(
      `  ${names[i]!.padEnd(width)}${prior.padStart(26)} -> ${fitted.padStart(16)}  x${(rate.fitted / rate.prior.value).toFixed(3)}${bound}`,
    );
  });
  if (fit.rates.length === 0)
    lines.push("  no rate was fitted: no run's prediction moves with any rate the engine lists");
  for (const rate of fit.unfitted) lines.push(`  not fitted: ${rate.label}: ${rate.reason}`);
  lines.push(
    `Sum of squared log errors over the runs: ${fit.sumSquaredLogErrorBefore.toPrecision(4)} -> ${fit.sumSquaredLogErrorAfter.toPrecision(4)} (prior term ${fit.priorTermAfter.toPrecision(4)} at weight ${fit.priorWeight})`,
    `Leave-one-out |error| (each run predicted from rates fitted to the others), median: ${(leaveOneOut.medianAbsoluteErrorBefore * 100).toFixed(1)}% -> ${(leaveOneOut.medianAbsoluteErrorAfter * 100).toFixed(1)}%`,
    ...leaveOneOut.runs.map(
      (r) =>
        `  ${r.source.padEnd(sourceWidth)} measured ${formatSignificant(r.measuredTokensPerSecond).padStart(10)} token/s  error ${signedPercent(r.errorBefore).padStart(8)} -> ${signedPercent(r.errorAfter).padStart(8)}`,
    ),
    `Wrote ${out}`,
  );
  return lines.join("\n");
}
