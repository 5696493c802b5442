/**
 * One MoE run's expert figures over its decode steps, in the same terms whoever produced them: the plan's
 * prediction (expected counts per layer and step, times layers and steps), the simulator's replay of a
 * routing trace, and the run's own counts. `spillway run` and `compare` print them side by side.
 */
import type { Plan } from "../../core/plan.js";
import type { MoeSimulationResult } from "../../simulator/simulate-moe.js";
import type { MoeRunResult } from "./moe-runner.js";

export interface ExpertSummary {
  /** Lookups (a layer's distinct experts per decode step) found resident in the cache. */
  readonly hitRate: number;
  /** Of the lookups the cache missed, the share a prefetch had brought. */
  readonly prefetchRecall: number;
  /** Of the experts prefetched, the share their layer used. */
  readonly prefetchPrecision: number;
  /** Bytes of experts copied host -> device in decode: demand fetches and prefetches, used or not. */
  readonly expertBytes: number;
  /** Seconds the decode steps' experts waited for their weights. */
  readonly stallSeconds: number;
  /** Missed experts computed on the CPU from their host copies. */
  readonly cpuComputed: number;
  readonly lookups: number;
  readonly demandFetches: number;
  /** Prefetches issued (used or wasted). */
  readonly prefetches: number;
  readonly wastedPrefetches: number;
  readonly decodeSteps: number;
}

const share = (part: number, whole: number) => (whole > 0 ? part / whole : 0);

/** The plan's expected figures over its decode steps (genLen - 1), undefined for a dense plan. */
export function predictedExpertSummary(plan: Plan): ExpertSummary | undefined {
  const x = plan.predicted.experts;
  if (!x) return undefined;
  const steps = Math.max(0, plan.workload.genLen - 1);
  const perStep = plan.modelSpec.numLayers * steps;
  const misses = x.touchedPerLayer * (1 - x.expectedHitRate);
  const prefetches = x.prefetchedPerLayer + x.wastedPrefetchesPerLayer;
  return {
    hitRate: x.expectedHitRate,
    prefetchRecall: share(x.prefetchedPerLayer, misses),
    prefetchPrecision: share(x.prefetchedPerLayer, prefetches),
    expertBytes: (x.demandFetchesPerLayer + prefetches) * x.expertBytes * perStep,
    stallSeconds: x.stallSecondsPerToken * steps,
    cpuComputed: x.cpuComputedPerLayer * perStep,
    lookups: x.touchedPerLayer * perStep,
    demandFetches: x.demandFetchesPerLayer * perStep,
    prefetches: prefetches * perStep,
    wastedPrefetches: x.wastedPrefetchesPerLayer * perStep,
    decodeSteps: steps,
  };
}

/** The simulator's replay; `expertBytes` is one expert's stored bytes. */
export function simulatedExpertSummary(simulated: MoeSimulationResult, expertBytes: number): ExpertSummary {
  const x = simulated.experts;
  return {
    hitRate: x.hitRate,
    prefetchRecall: x.prefetchRecall,
    prefetchPrecision: x.prefetchPrecision,
    expertBytes: (x.demandFetches + x.prefetches) * expertBytes,
    stallSeconds: x.stallSeconds,
    cpuComputed: x.cpuComputed,
    lookups: x.lookups,
    demandFetches: x.demandFetches,
    prefetches: x.prefetches,
    wastedPrefetches: x.wastedPrefetches,
    decodeSteps: x.decodeStepsReplayed,
  };
}

/** What the run counted and timed. */
export function measuredExpertSummary(run: MoeRunResult, decodeSteps: number): ExpertSummary {
  const x = run.experts;
  return {
    hitRate: x.hitRate,
    prefetchRecall: share(x.prefetchUsed, x.lookups - x.hits),
    prefetchPrecision: share(x.prefetchUsed, x.prefetches),
    expertBytes: x.fetchedBytes,
    stallSeconds: run.timing.stallSeconds,
    cpuComputed: x.cpuComputed,
    lookups: x.lookups,
    demandFetches: x.demandFetches,
    prefetches: x.prefetches,
    wastedPrefetches: x.wastedPrefetches,
    decodeSteps,
  };
}
