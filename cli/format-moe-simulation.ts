/** The human-readable summary of `spillway simulate` on a Mixture-of-Experts plan. */
import { formatSeconds, formatSignificant } from "../core/units.js";
import type { MoeSimulationResult } from "../simulator/simulate-moe.js";

const PREDICTOR_NAMES = {
  "pre-gated": "pre-gated: the next layer's experts",
  recorded: "the guesses the trace recorded",
  statistical: "statistical co-occurrence predictor: the trace recorded no guesses",
} as const;

export function formatMoeSimulation(r: MoeSimulationResult): string {
  const e = r.experts;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `Replayed ${e.decodeStepsReplayed} decode steps of ${r.routingSource} through the expert caches`,
    `  throughput   ${formatSignificant(r.throughputTokensPerSecond)} token/s   cost model on the same routing ${formatSignificant(r.planned.throughputTokensPerSecond)} (${r.relativeError >= 0 ? "+" : ""}${pct(r.relativeError)})` +
      (r.plannedByPlan ? `   plan ${formatSignificant(r.plannedByPlan.throughputTokensPerSecond)}` : ""),
    `  prefill      ${formatSeconds(r.prefillSeconds)}    decode ${formatSeconds(r.decodeSeconds)}`,
    `  hit rate     ${e.lookups > 0 ? pct(e.hitRate) : "- (no lookups)"} replayed, ${pct(e.plannedHitRate)} expected${r.plannedByPlan?.expectedHitRate !== undefined ? `, ${pct(r.plannedByPlan.expectedHitRate)} in the plan` : ""}`,
    `  prefetch     recall ${pct(e.prefetchRecall)}, precision ${pct(e.prefetchPrecision)} (${e.prefetches} prefetched, ${e.wastedPrefetches} wasted)`,
    `  misses       ${e.demandFetches} fetched on demand, ${e.cpuComputed} computed on the CPU, ${e.writeBacks} written back; stall ${formatSeconds(e.stallSeconds)} of ${e.lookups} lookups`,
  ];
  if (e.predictor !== "none")
    lines.splice(
      5,
      0,
      `  guesses      recall ${pct(e.guessRecall)}, precision ${pct(e.guessPrecision)} of ${e.guesses} (${PREDICTOR_NAMES[e.predictor]})`,
    );
  return lines.join("\n");
}
