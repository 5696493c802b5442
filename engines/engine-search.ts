/**
 * The search behind `plan --engine E`: engine E's own knobs (engines/engine-search-space.ts) searched on
 * E's model. The seeds (the policy Spillway's search picked, at the batch sizes `plan --engine` tried
 * before it searched placements) are all scored first, so the result is never slower on E's model than
 * the best of them; then a coordinate descent moves the best candidate along one knob at a time
 * (every variant of the knob scored, the fastest feasible kept) until a whole pass over the knobs
 * finds nothing faster or the evaluation budget is spent. Candidates E cannot run, or that break E's
 * memory rule, are dropped (for FlexGen the memory rule is checked before the costly timing). Pure and
 * deterministic: fixed candidate lists in a fixed order, ties kept by the first found.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { OnProgress } from "../core/progress.js";
import type { Workload } from "../core/workload.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import type { EnginePrediction, EngineRequest } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { candidateKey, type EngineCandidate, neighbours, type SearchDimension } from "./engine-search-space.js";
import { EngineUnsupportedError } from "./engine-unsupported-error.js";
import { engineModel } from "./engines.js";

/**
 * Engine predictions one search may make before its last few full ones (seeds included): FlexGen's
 * fewer_batch proxy takes ~0.01-0.03 s for OPT-30B/175B (its full prediction ~0.2 s), a DeepSpeed OPT-30B
 * prediction ~0.15 s. FlexGen OPT-30B and OPT-6.7B on a T4 need ~190 to finish their descents.
 */
export const MAX_ENGINE_EVALUATIONS = 200;

export interface EngineSearchRequest {
  readonly engine: EngineName;
  readonly model: ModelSpec;
  readonly hardware: HardwareProfile;
  readonly workload: Workload;
  readonly routing?: RoutingProfile;
  /**
   * Scored first, in order (those marked `full` by the engine's full prediction, never by a proxy);
   * the descent starts from the fastest feasible one (or the first).
   */
  readonly seeds: readonly (EngineCandidate & { readonly full?: boolean })[];
  readonly dimensions: readonly SearchDimension[];
  /** Further starting points, each descended from after the seeds' best (a coordinate descent finds local optima only). */
  readonly starts?: readonly EngineCandidate[];
  readonly maxEvaluations?: number;
  /** Progress in predictions made, against the budget (the search often ends early, at 100%). */
  readonly onProgress?: OnProgress;
}

export interface EngineSearchResult {
  /** The fastest feasible candidate found, with its prediction; undefined when none fits. */
  readonly best?: { readonly candidate: EngineCandidate; readonly prediction: EnginePrediction };
  /** Distinct candidates considered (those the engine cannot run and those its memory rule drops included). */
  readonly candidates: number;
  /** Of them, those the engine can run and that fit its memory rule. */
  readonly feasible: number;
  /** Engine predictions made (FlexGen: its fewer_batch ranking proxy included). */
  readonly evaluations: number;
  /** Whether the search stopped at the evaluation budget. */
  readonly evaluationLimitReached: boolean;
}

interface Outcome {
  readonly feasible: boolean;
  /** Token/s the descent ranks by: the engine's prediction, or its cheaper ranking proxy. */
  readonly rank: number;
  /** The engine's prediction (absent while only the proxy was made). */
  readonly prediction?: EnginePrediction;
  readonly candidate: EngineCandidate;
}

/** Candidates ranked by the proxy that are predicted in full at the end. */
export const FULL_PREDICTIONS_AFTER_PROXY = 4;

export function searchOnEngine(request: EngineSearchRequest): EngineSearchResult {
  const model = engineModel(request.engine);
  const maxEvaluations = request.maxEvaluations ?? MAX_ENGINE_EVALUATIONS;
  const seen = new Map<string, Outcome>();
  let evaluations = 0;
  let limitReached = false;
  const engineRequest = (candidate: EngineCandidate): EngineRequest => ({
    model: request.model,
    hardware: request.hardware,
    workload: request.workload,
    policy: candidate.policy,
    knobs: candidate.knobs,
    ...(request.routing ? { routing: request.routing } : {}),
  });
  // The budget, the one full prediction a seed may add past it, and the leaders predicted in full at the end.
  const progressTotal = maxEvaluations + 1 + FULL_PREDICTIONS_AFTER_PROXY;
  const progress = (done: number) =>
    request.onProgress?.({
      phase: `${request.engine} search`,
      done: Math.min(done, progressTotal),
      total: progressTotal,
      detail: `${evaluations} predictions`,
    });
  progress(0);
  const predict = (r: EngineRequest): EnginePrediction | undefined => {
    evaluations++;
    progress(evaluations);
    try {
      return model.predict(r);
    } catch (error) {
      if (error instanceof EngineUnsupportedError) return undefined;
      throw error;
    }
  };
  const record = (outcome: Outcome): Outcome => {
    seen.set(candidateKey(outcome.candidate), outcome);
    return outcome;
  };

  /** Ranks a candidate once (in full when `full`); undefined when the budget is spent before it could be. */
  const consider = (candidate: EngineCandidate, full: boolean): Outcome | undefined => {
    const known = seen.get(candidateKey(candidate));
    if (known) return known;
    const r = engineRequest(candidate);
    if (model.unsupported(request.model, candidate.policy) || model.fits?.(r) === false)
      return record({ feasible: false, rank: 0, candidate });
    if (evaluations >= maxEvaluations) {
      limitReached = true;
      return undefined;
    }
    // Every candidate is ranked alike (by the proxy where there is one); `full` ones are predicted in full too.
    const proxyRequest = model.rankingRequest?.(r);
    const ranking = predict(proxyRequest ?? r);
    const prediction = !proxyRequest ? ranking : full && ranking ? predict(r) : undefined;
    return record({
      feasible: (prediction ?? ranking)?.feasible ?? false,
      rank: ranking?.throughputTokensPerSecond ?? 0,
      candidate,
      ...(prediction ? { prediction } : {}),
    });
  };
  const better = (a: Outcome | undefined, b: Outcome | undefined) =>
    a?.feasible === true && (!b?.feasible || a.rank > b.rank);

  /** Coordinate descent from `start`: each knob's fastest feasible variant replaces the current candidate. */
  const descend = (start: EngineCandidate, startOutcome: Outcome | undefined) => {
    let current = start;
    let local = startOutcome;
    let improved = true;
    while (improved && !limitReached) {
      improved = false;
      for (const dimension of request.dimensions) {
        const before = local;
        for (const variant of neighbours([dimension], current)) {
          const o = consider(variant, false);
          if (!o) break;
          if (better(o, local)) local = o;
        }
        if (local !== before) {
          current = local!.candidate;
          improved = true;
        }
        if (limitReached) break;
      }
    }
  };

  let seedLeader: Outcome | undefined;
  for (const seed of request.seeds) {
    const o = consider(seed, seed.full ?? false);
    if (!o) break;
    if (better(o, seedLeader)) seedLeader = o;
  }
  const first = seedLeader?.candidate ?? request.seeds[0];
  if (first) descend(first, seedLeader);
  for (const start of request.starts ?? []) descend(start, consider(start, false));
  // The proxy-ranked leaders, predicted in full (outside the budget: a fixed few), beside those predicted in full already.
  const outcomes = [...seen.values()].filter((o) => o.feasible);
  const ranked = outcomes.filter((o) => !o.prediction).sort((a, b) => b.rank - a.rank);
  for (const o of ranked.slice(0, FULL_PREDICTIONS_AFTER_PROXY)) {
    const prediction = predict(engineRequest(o.candidate));
    seen.set(candidateKey(o.candidate), {
      ...o,
      feasible: prediction?.feasible ?? false,
      ...(prediction ? { prediction } : {}),
    });
  }
  let best: EngineSearchResult["best"];
  let feasible = 0;
  for (const o of seen.values()) {
    if (!o.feasible) continue;
    feasible++;
    const p = o.prediction;
    if (p && (!best || p.throughputTokensPerSecond > best.prediction.throughputTokensPerSecond))
      best = { candidate: o.candidate, prediction: p };
  }
  progress(progressTotal);
  return {
    ...(best ? { best } : {}),
    candidates: seen.size,
    feasible,
    evaluations,
    evaluationLimitReached: limitReached,
  };
}
