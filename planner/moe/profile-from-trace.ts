/**
 * A routing profile measured on a routing trace: LRU hit rates for every cache size (routing-stats,
 * Mixtral-offloading's definition), the share of lookups going to each layer's most popular experts,
 * and how well the next layer's experts can be guessed (the trace's next-layer predictability for one
 * layer ahead; the popularity-only baseline beyond, a conservative stand-in since farther guesses are
 * not measured). A trace a run recorded with its gate-lookahead guesses (RoutingTrace.guesses, at
 * least k per token) gives the measured recall of those guesses at their distance instead, so a plan
 * re-planned on a run's routing uses the guesses the model really made.
 */

import { recordedGuessRecall } from "../../routing/guess-recall.js";
import { routingStats } from "../../routing/routing-stats.js";
import { expertsAt, PHASE_DECODE, type RoutingTrace } from "../../routing/routing-trace.js";
import type { RoutingProfile } from "./routing-profile.js";

export function routingProfileFromTrace(trace: RoutingTrace, source: string): RoutingProfile {
  const { numExperts: E, numLayers: L } = trace.meta;
  // Every cache size for up to 16 experts; beyond, about 12 sizes, linearly interpolated between.
  const sizes =
    E <= 16
      ? Array.from({ length: E - 1 }, (_, i) => i + 1)
      : [...new Set(Array.from({ length: 11 }, (_, i) => Math.round(((i + 1) * E) / 12)).values())].filter(
          (k) => k >= 1 && k < E,
        );
  const stats = routingStats(trace, { cacheSizes: sizes });
  const measured = new Map<number, number>([
    [0, 0],
    [E, 1],
    ...sizes.map((k) => [k, stats.lruHitRate[String(k)]!] as [number, number]),
  ]);
  const known = [...measured.keys()].sort((a, b) => a - b);
  const lruHitRate = Array.from({ length: E + 1 }, (_, k) => {
    if (measured.has(k)) return measured.get(k)!;
    const hi = known.findIndex((x) => x > k);
    const a = known[hi - 1]!,
      b = known[hi]!;
    return measured.get(a)! + ((k - a) / (b - a)) * (measured.get(b)! - measured.get(a)!);
  });

  const counts = Array.from({ length: L }, () => new Float64Array(E));
  let decode = 0;
  for (let i = 0; i < trace.numTokens; i++) if (trace.phases[i] === PHASE_DECODE) decode++;
  for (let i = 0; i < trace.numTokens; i++) {
    if (decode > 0 && trace.phases[i] !== PHASE_DECODE) continue;
    for (let l = 0; l < L; l++) for (const e of expertsAt(trace, i, l)) counts[l]![e]! += 1;
  }
  const topShare = Array.from({ length: E + 1 }, (_, k) => {
    let share = 0;
    for (const c of counts) {
      const total = c.reduce((a, b) => a + b, 0);
      const sorted = Array.from(c).sort((a, b) => b - a);
      share += total > 0 ? sorted.slice(0, k).reduce((a, b) => a + b, 0) / total : k / E;
    }
    return share / L;
  });
  const next = Number.isFinite(stats.nextLayerPredictability.mean)
    ? stats.nextLayerPredictability.mean
    : trace.meta.expertsPerToken / E;
  const baseline = Number.isFinite(stats.nextLayerBaseline.mean)
    ? stats.nextLayerBaseline.mean
    : trace.meta.expertsPerToken / E;
  const recorded = recordedGuessRecall(trace);
  if (recorded === undefined || !trace.guesses)
    return { lruHitRate, topShare, speculativeRecall: [next, baseline], source };
  // Index d - 1: the statistics below the recorded distance, the measured recall at it, the baseline beyond.
  const distance = trace.guesses.distance;
  const recall = Array.from({ length: distance + 1 }, (_, i) => (i === 0 ? next : baseline));
  recall[distance - 1] = recorded;
  return { lruHitRate, topShare, speculativeRecall: recall, source };
}
