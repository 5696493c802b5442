/**
 * Summary statistics of a routing trace, comparable with the published Mixtral numbers
 * (shared/reference/moe-offloading.md). Unless a trace has no decode tokens, everything but the LRU
 * warm-up is measured on decode tokens only; `phase` says which were used.
 *
 * - lruHitRate[k]: LRU hit rate with k expert slots per layer (definition in expert-lru.ts), the mean
 *   over layers; lruHitRatePerLayer[k] per layer.
 * - popularity: share of expert e at layer l = times e is chosen at l (any rank) / choices at l, so a
 *   uniform router gives 1/numExperts. popularityEntropyBits = entropy of those shares (max
 *   log2(numExperts)); topExpertShare = the largest share. Per layer and the mean over layers.
 * - repetitionRate: per layer, the fraction of adjacent token pairs of a request (t-1, t) whose
 *   first-choice (rank 0) expert is the same; random routing gives about 1/numExperts.
 * - nextLayerPredictability: per layer pair (l, l+1), a conditional-frequency predictor trained on the
 *   first half of the tokens (in trace order) and tested on the second half: given layer l's
 *   first-choice expert, predict layer l+1's top-k set as the k experts most often chosen at l+1 after
 *   that first choice in training (ties to the lower index; an unseen first choice falls back to the
 *   k most popular at l+1). Score = |predicted ∩ actual| / k, averaged over test tokens.
 *   nextLayerBaseline is the same score for the popularity-only predictor (the k most popular at l+1
 *   in training), so the gain from knowing layer l is nextLayerPredictability - nextLayerBaseline.
 *   (The published 90-96% is for re-using the next gate on the current hidden state, which a routing
 *   trace cannot show; this is a lower bound on what routing alone predicts.)
 */

import { lruHitRates } from "./expert-lru.js";
import { recordedGuessRecall } from "./guess-recall.js";
import { PHASE_DECODE, type RoutingTrace } from "./routing-trace.js";

export interface RoutingStatsOptions {
  /** Cache sizes (expert slots per layer) to measure the LRU hit rate for. */
  readonly cacheSizes: readonly number[];
}

export interface PerLayerAndMean {
  readonly mean: number;
  readonly perLayer: number[];
}

export interface RoutingStats {
  readonly model: string;
  readonly numLayers: number;
  readonly numExperts: number;
  readonly expertsPerToken: number;
  /** Tokens the popularity, repetition and prediction statistics used. */
  readonly tokensUsed: number;
  readonly phase: "decode" | "all";
  readonly requests: number;
  /** Mean over layers, keyed by cache size. */
  readonly lruHitRate: Record<string, number>;
  readonly lruHitRatePerLayer: Record<string, number[]>;
  readonly popularityEntropyBits: PerLayerAndMean;
  readonly maxEntropyBits: number;
  readonly topExpertShare: PerLayerAndMean;
  readonly repetitionRate: PerLayerAndMean;
  /** Per layer pair (l, l+1): numLayers - 1 entries. */
  readonly nextLayerPredictability: PerLayerAndMean;
  readonly nextLayerBaseline: PerLayerAndMean;
  /** A trace with recorded speculative guesses: their distance, count, and recall of the first k (guess-recall.ts). */
  readonly recordedGuesses?: { readonly distance: number; readonly perLayer: number; readonly recall: number };
}

function mean(values: readonly number[]): number {
  const valid = values.filter((v) => !Number.isNaN(v));
  return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : NaN;
}

function summary(perLayer: number[]): PerLayerAndMean {
  return { mean: mean(perLayer), perLayer };
}

/** Indices of the tokens the statistics use: decode tokens, or all when there are none. */
function selectTokens(trace: RoutingTrace): { tokens: Int32Array; phase: "decode" | "all" } {
  let decode = 0;
  for (let i = 0; i < trace.numTokens; i++) if (trace.phases[i] === PHASE_DECODE) decode++;
  if (decode === 0) return { tokens: Int32Array.from({ length: trace.numTokens }, (_, i) => i), phase: "all" };
  const tokens = new Int32Array(decode);
  let n = 0;
  for (let i = 0; i < trace.numTokens; i++) if (trace.phases[i] === PHASE_DECODE) tokens[n++] = i;
  return { tokens, phase: "decode" };
}

/** The k largest entries of `counts` (ties to the lower index). */
function topIndices(counts: Float64Array | Int32Array, k: number): number[] {
  const order = Array.from({ length: counts.length }, (_, i) => i);
  order.sort((a, b) => counts[b]! - counts[a]! || a - b);
  return order.slice(0, k);
}

export function routingStats(trace: RoutingTrace, options: RoutingStatsOptions): RoutingStats {
  const { numLayers: L, numExperts: E, expertsPerToken: k, model } = trace.meta;
  const { tokens, phase } = selectTokens(trace);

  const lruHitRate: Record<string, number> = {};
  const lruHitRatePerLayer: Record<string, number[]> = {};
  for (const size of options.cacheSizes) {
    const rates = lruHitRates(trace, size);
    lruHitRate[String(size)] = rates.mean;
    lruHitRatePerLayer[String(size)] = rates.perLayer;
  }

  // Popularity.
  const entropy: number[] = [];
  const topShare: number[] = [];
  const counts = new Float64Array(E);
  for (let l = 0; l < L; l++) {
    counts.fill(0);
    for (const i of tokens) {
      const base = (i * L + l) * k;
      for (let r = 0; r < k; r++) counts[trace.experts[base + r]!]! += 1;
    }
    const total = tokens.length * k;
    let h = 0;
    let top = 0;
    for (let e = 0; e < E; e++) {
      const p = counts[e]! / total;
      if (p > 0) h -= p * Math.log2(p);
      if (p > top) top = p;
    }
    entropy.push(total > 0 ? h : NaN);
    topShare.push(total > 0 ? top : NaN);
  }

  // Adjacent-token first-choice repetition, within a request.
  const repetition: number[] = [];
  for (let l = 0; l < L; l++) {
    let pairs = 0;
    let same = 0;
    for (let j = 1; j < tokens.length; j++) {
      const a = tokens[j - 1]!;
      const b = tokens[j]!;
      if (trace.requests[a] !== trace.requests[b]) continue;
      pairs++;
      if (trace.experts[(a * L + l) * k] === trace.experts[(b * L + l) * k]) same++;
    }
    repetition.push(pairs > 0 ? same / pairs : NaN);
  }

  // Next-layer predictability: train on the first half, test on the second.
  const predict: number[] = [];
  const baseline: number[] = [];
  const half = Math.floor(tokens.length / 2);
  for (let l = 0; l + 1 < L; l++) {
    const table = new Float64Array(E * E);
    const popularity = new Float64Array(E);
    for (let j = 0; j < half; j++) {
      const i = tokens[j]!;
      const from = trace.experts[(i * L + l) * k]!;
      const base = (i * L + l + 1) * k;
      for (let r = 0; r < k; r++) {
        const e = trace.experts[base + r]!;
        table[from * E + e]! += 1;
        popularity[e]! += 1;
      }
    }
    const popular = topIndices(popularity, k);
    const predictions = new Map<number, Set<number>>();
    let hit = 0;
    let hitBaseline = 0;
    let tested = 0;
    for (let j = half; j < tokens.length; j++) {
      const i = tokens[j]!;
      const from = trace.experts[(i * L + l) * k]!;
      let predicted = predictions.get(from);
      if (!predicted) {
        const row = table.subarray(from * E, (from + 1) * E);
        predicted = new Set(row.some((c) => c > 0) ? topIndices(row, k) : popular);
        predictions.set(from, predicted);
      }
      const base = (i * L + l + 1) * k;
      for (let r = 0; r < k; r++) {
        const e = trace.experts[base + r]!;
        if (predicted.has(e)) hit++;
        if (popular.includes(e)) hitBaseline++;
      }
      tested++;
    }
    predict.push(tested > 0 ? hit / (tested * k) : NaN);
    baseline.push(tested > 0 ? hitBaseline / (tested * k) : NaN);
  }

  let requests = 0;
  for (let i = 0; i < trace.numTokens; i++) if (i === 0 || trace.requests[i] !== trace.requests[i - 1]) requests++;

  return {
    model,
    numLayers: L,
    numExperts: E,
    expertsPerToken: k,
    tokensUsed: tokens.length,
    phase,
    requests,
    lruHitRate,
    lruHitRatePerLayer,
    popularityEntropyBits: summary(entropy),
    maxEntropyBits: Math.log2(E),
    topExpertShare: summary(topShare),
    repetitionRate: summary(repetition),
    nextLayerPredictability: summary(predict),
    nextLayerBaseline: summary(baseline),
    ...recordedGuesses(trace),
  };
}

function recordedGuesses(trace: RoutingTrace): Pick<RoutingStats, "recordedGuesses"> {
  const recall = recordedGuessRecall(trace, Math.min(trace.meta.expertsPerToken, trace.guesses?.perLayer ?? 0));
  if (!trace.guesses || recall === undefined) return {};
  return { recordedGuesses: { distance: trace.guesses.distance, perLayer: trace.guesses.perLayer, recall } };
}
