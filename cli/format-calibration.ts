/** `spillway calibrate`: each fitted rate's prior and fitted value, and the leave-one-out errors, as text. */
import type { Calibration } from "../engines/calibrate.js";
import { signedPercent } from "./format-scores.js";

/** A rate with its unit, read off the rate's name (bytesPerSecond, flopsPerSecond, seconds, valuesPerSecond). */
export function formatRateValue(name: string, value: number): string {
  if (name.endsWith("BytesPerSecond")) return `${(value / 1e9).toPrecision(4)} GB/s`;
  if (name.endsWith("FlopsPerSecond")) return `${(value / 1e12).toPrecision(4)} TFLOP/s`;
  if (name.endsWith("ValuesPerSecond")) return `${(value / 1e9).toPrecision(4)} G values/s`;
  if (name.endsWith("Seconds")) return `${(value * 1e6).toPrecision(4)} us`;
  return value.toPrecision(4);
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
    `Sum of squared log errors over the runs: ${fit.sumSquaredLogErrorBefore.toPrecision(4)} -> ${fit.sumSquaredLogErrorAfter.toPrecision(4)}`,
    `Leave-one-out |error| (each run predicted from rates fitted to the others), median: ${(leaveOneOut.medianAbsoluteErrorBefore * 100).toFixed(1)}% -> ${(leaveOneOut.medianAbsoluteErrorAfter * 100).toFixed(1)}%`,
    ...leaveOneOut.runs.map(
      (r) =>
        `  ${r.source.padEnd(40)} measured ${r.measuredTokensPerSecond.toPrecision(4).padStart(10)} tokens/s  error ${signedPercent(r.errorBefore).padStart(8)} -> ${signedPercent(r.errorAfter).padStart(8)}`,
    ),
    `Wrote ${out}`,
  );
  return lines.join("\n");
}
