/** Measured runs against an engine model's predictions (`spillway compare --engine E --measured FILE`), as text. */

import { formatSignificant } from "../core/units.js";
import type { RunScores } from "../engines/score-runs.js";

/** A signed percentage with one decimal: "+12.3%". */
export function signedPercent(x: number): string {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
}

export function formatScores(engine: string, hardware: string, result: RunScores): string {
  const width = Math.max(4, ...result.scores.map((s) => s.run.source.length)) + 2;
  const row = (source: string, model: string, measured: string, predicted: string, error: string, note: string) =>
    `${source.padEnd(width)}${model.padEnd(14)}${measured.padStart(12)}${predicted.padStart(12)}${error.padStart(10)}  ${note}`;
  const lines = [
    `${result.scores.length} measured runs against the ${engine} model on ${hardware} (token/s)`,
    row("run", "model", "measured", "predicted", "error", "bottleneck"),
    ...result.scores.map((s) =>
      row(
        s.run.source,
        s.run.model.name,
        formatSignificant(s.measuredTokensPerSecond),
        formatSignificant(s.predictedTokensPerSecond),
        signedPercent(s.relativeError),
        `${s.bottleneck}${s.feasible ? "" : " (does not fit the profile's capacities)"}`,
      ),
    ),
    `median |error|: ${(result.medianAbsoluteError * 100).toFixed(1)}%`,
  ];
  return lines.join("\n");
}
