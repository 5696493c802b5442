/**
 * Replays a routing trace through a Mixture-of-Experts plan's expert caches and prefetcher, decode step
 * by decode step and layer by layer, and times every layer with the planner's own per-layer MoE step
 * model given what really happened: which experts were resident, fetched on demand, prefetched in time
 * (or for nothing), or computed on the CPU. The planner's figures come from expected hit rates; this
 * checks them against the trace.
 *
 * - A step's batch runs the trace's requests side by side (request b mod the trace's requests), one
 *   decode token each; a layer's needed experts are the union over the batch. Traces shorter than the
 *   plan's generation wrap around.
 * - Caches start warm with each layer's most popular experts in the trace (`static` keeps them).
 *   Lookups are classified against the cache as it was when the layer started; then the hits are
 *   marked used and the experts brought in enter in ascending index order (Mixtral-offloading's
 *   order, as routing/expert-lru.ts counts it).
 * - Speculative prefetch, at layer l, fetches the batch's guess for layer l + a (`batchGuesses`). When
 *   the trace recorded guesses (a run's gate lookahead, RoutingTrace.guesses) at that distance and at
 *   least m per token, those are the guesses, so the replay makes the run's prefetches exactly;
 *   otherwise, with no hidden state to apply a gate to, the statistical predictor guesses (the m
 *   experts most often routed together with layer l's in the trace: expert-predictor.ts). Pre-gated
 *   prefetch knows layer l + 1's experts at layer l (not layer 0's). Prefetched experts wait in
 *   buffers; those used enter the cache, the rest are wasted. Every guess made for a decode layer is
 *   scored against what it used (guessRecall, guessPrecision), whether or not it was fetched.
 * - Missed experts computed on the CPU (by the policy's rule) are not brought to the GPU.
 * - Prefill is the planner's (every expert of every layer is touched by a prompt batch anyway).
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { LINKS, type Link } from "../core/links.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import { RESOURCES, type Resource } from "../core/resources.js";
import type { Workload } from "../core/workload.js";
import {
  type ExpertStepCounts,
  evaluateMoePolicy,
  expertCounts,
  moeStepModel,
} from "../planner/moe/evaluate-moe-policy.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import type { DecodeRouting } from "./decode-routing.js";
import { ExpertCache } from "./expert-cache.js";
import {
  batchExperts,
  batchGuesses,
  countGuesses,
  statisticalCoOccurrence,
  statisticalGuesses,
} from "./expert-predictor.js";

/** Where a replay's prefetch guesses came from. */
export type ReplayPredictor = "none" | "pre-gated" | "recorded" | "statistical";

export interface ExpertReplayFigures {
  /** Lookups that found the expert resident in the cache (prefetches not counted). */
  readonly hitRate: number;
  /** Of the lookups the cache missed, the share a prefetch had brought in time. */
  readonly prefetchRecall: number;
  /** Of the experts prefetched, the share their layer used. */
  readonly prefetchPrecision: number;
  /** Where the guesses came from: the trace's recorded guesses, or the statistical predictor. */
  readonly predictor: ReplayPredictor;
  /** Experts guessed for decode layers (fetched or not), those the layer used, and the used experts of guessed layers. */
  readonly guesses: number;
  readonly guessesUsed: number;
  readonly guessedLayerLookups: number;
  /** guessesUsed / guessedLayerLookups (0 without guesses). */
  readonly guessRecall: number;
  /** guessesUsed / guesses (0 without guesses). */
  readonly guessPrecision: number;
  /** Seconds the GPU waited for demand fetches over the decode steps replayed. */
  readonly stallSeconds: number;
  readonly lookups: number;
  readonly demandFetches: number;
  readonly prefetches: number;
  readonly wastedPrefetches: number;
  readonly cpuComputed: number;
  /** Evicted experts copied back to host memory: none, every expert keeps its home copy there. */
  readonly writeBacks: number;
  readonly decodeStepsReplayed: number;
  /** The planner's expected hit rate for the same policy, for comparison. */
  readonly plannedHitRate: number;
}

export interface MoeReplayResult {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly bytes: Readonly<Record<Link, number>>;
  readonly busySeconds: Readonly<Record<Resource, number>>;
  readonly experts: ExpertReplayFigures;
  readonly planned: { readonly throughputTokensPerSecond: number; readonly decodeSeconds: number };
  /** (replayed - planned) / planned throughput. */
  readonly relativeError: number;
  readonly routingSource: string;
}

/** Each layer's experts by how often the trace routes to them, most popular first. */
export function popularity(routing: DecodeRouting): number[][] {
  const E = routing.numExperts;
  const counts = Array.from({ length: routing.numLayers }, () => new Float64Array(E));
  for (let r = 0; r < routing.requests; r++) {
    for (let t = 0; t < routing.decodeTokens(r); t++) {
      for (let l = 0; l < routing.numLayers; l++) for (const e of routing.experts(r, t, l)) counts[l]![e]! += 1;
    }
  }
  return counts.map((c) => Array.from({ length: E }, (_, e) => e).sort((a, b) => c[b]! - c[a]! || a - b));
}

export function replayMoePlan(
  model: ModelSpec,
  profile: HardwareProfile,
  workload: Workload,
  policy: Policy,
  routing: DecodeRouting,
  routingSource: string,
  plannedProfile: RoutingProfile,
): MoeReplayResult {
  const moe = model.moe;
  const x = policy.experts;
  if (!moe || !x) throw new Error("replayMoePlan needs an MoE model and policy.experts");
  if (
    routing.numLayers !== model.numLayers ||
    routing.numExperts !== moe.numExperts ||
    routing.expertsPerToken !== moe.expertsPerToken
  ) {
    throw new Error(
      `the routing trace has ${routing.numLayers} layers of ${routing.numExperts} experts (top-${routing.expertsPerToken}); ${model.name} has ${model.numLayers} of ${moe.numExperts} (top-${moe.expertsPerToken})`,
    );
  }
  const rates = hardwareRates(profile);
  const stepModel = moeStepModel(model, rates, workload, policy);
  const planned = evaluateMoePolicy(model, rates, workload, policy, plannedProfile);
  const L = model.numLayers;
  const B = policy.gpuBatchSize * policy.numGpuBatches;
  const { promptLen: s, genLen: n } = workload;
  const popular = popularity(routing);
  const caches = Array.from({ length: L }, (_, l) => new ExpertCache(x.cacheSize, x.eviction, popular[l]!));
  const distance = x.pregated ? 1 : x.prefetchLayers;
  const m = x.prefetchExperts;
  const recorded = routing.guesses;
  const predictor: ReplayPredictor = x.pregated
    ? "pre-gated"
    : m === 0
      ? "none"
      : recorded && recorded.distance === distance && recorded.perLayer >= m
        ? "recorded"
        : "statistical";
  const table = predictor === "statistical" ? statisticalCoOccurrence(routing, distance) : undefined;
  const E = moe.numExperts;
  /** The batch's guess, at decode step t and layer l, for layer l + distance. */
  const guess = (t: number, l: number, need: ReadonlySet<number>, needed: readonly Set<number>[]): number[] => {
    const target = l + distance;
    if (predictor === "pre-gated") return [...needed[target]!];
    if (predictor === "statistical") return statisticalGuesses(table![l]!, E, need, m);
    const perToken = Array.from({ length: B }, (_, b) => {
      const r = b % routing.requests;
      return recorded!.experts(r, t % routing.decodeTokens(r), target).slice(0, m);
    });
    return batchGuesses(perToken, m);
  };

  const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  let lookups = 0,
    hits = 0,
    demandFetches = 0,
    prefetchUsed = 0,
    prefetches = 0,
    wasted = 0,
    guesses = 0,
    guessesUsed = 0,
    guessedLayerLookups = 0,
    cpuComputed = 0,
    stallSeconds = 0,
    decodeSeconds = 0;
  const steps = Math.max(0, n - 1);
  for (let t = 0; t < steps; t++) {
    const needed: Set<number>[] = [];
    for (let l = 0; l < L; l++) needed.push(new Set(batchExperts(routing, B, t, l)));
    // Prefetches arriving for each layer of this step, issued `distance` layers earlier, and the guesses behind them.
    const incoming: Set<number>[] = Array.from({ length: L }, () => new Set<number>());
    const guessed: (number[] | undefined)[] = new Array(L).fill(undefined);
    for (let l = 0; l < L; l++) {
      const cache = caches[l]!;
      const need = needed[l]!;
      const arrived = incoming[l]!;
      if (guessed[l]) {
        const quality = countGuesses(guessed[l]!, need);
        guesses += quality.guesses;
        guessesUsed += quality.used;
        guessedLayerLookups += quality.lookups;
      }
      let stepHits = 0,
        stepPrefetched = 0,
        stepDemand = 0,
        stepCpu = 0;
      const tokensPerExpert = (B * moe.expertsPerToken) / need.size;
      const missesOnCpu = x.compute === "cpu" || (x.compute === "auto" && tokensPerExpert <= x.cpuThresholdTokens);
      for (const e of need) {
        if (cache.has(e)) stepHits++;
        else if (arrived.has(e)) stepPrefetched++;
        else if (missesOnCpu) stepCpu++;
        else stepDemand++;
      }
      let stepWasted = 0;
      for (const e of arrived) if (!need.has(e)) stepWasted++;
      // As Mixtral-offloading's cache does: the hits become most recent first, then the brought-in
      // experts enter in ascending index order (routing/expert-lru.ts).
      const brought: number[] = [];
      for (const e of need) {
        if (cache.has(e)) cache.use(e);
        else if (arrived.has(e) || !missesOnCpu) brought.push(e);
      }
      for (const e of brought.sort((a, b) => a - b)) cache.use(e);
      // Issue this layer's prefetch for layer l + distance.
      const target = l + distance;
      if (target < L && predictor !== "none") guessed[target] = guess(t, l, need, needed);
      if (target < L && !missesOnCpu && guessed[target]) {
        const targetCache = caches[target]!;
        for (const e of guessed[target]!) {
          if (targetCache.has(e)) continue;
          incoming[target]!.add(e);
          prefetches++;
        }
      }
      lookups += need.size;
      hits += stepHits;
      prefetchUsed += stepPrefetched;
      demandFetches += stepDemand;
      cpuComputed += stepCpu;
      wasted += stepWasted;
      const counts: ExpertStepCounts = {
        touched: need.size,
        hits: stepHits,
        fetched: stepDemand + stepPrefetched,
        onCpu: stepCpu,
        prefetched: stepPrefetched,
        wasted: stepWasted,
        tokensPerExpert,
      };
      const figures = stepModel.step("decode", s + 1 + t, counts);
      decodeSeconds += figures.wallSeconds;
      stallSeconds += figures.stallSeconds;
      for (const r of RESOURCES) busy[r] += figures.busy[r];
      for (const k of LINKS) bytes[k] += figures.bytes[k];
    }
    decodeSeconds += stepModel.headSeconds;
    busy.gpu += stepModel.headGpuSeconds;
  }
  // Prefill as the planner costs it (a prompt batch touches every expert of every layer anyway).
  const prefill = stepModel.step("prefill", s, expertCounts(model, moe, x, plannedProfile, B * s, "prefill"));
  const prefillSeconds = L * prefill.wallSeconds + stepModel.headSeconds;
  for (const r of RESOURCES) busy[r] += L * prefill.busy[r];
  for (const k of LINKS) bytes[k] += L * prefill.bytes[k];
  busy.gpu += stepModel.headGpuSeconds;
  const throughput = (B * n) / (prefillSeconds + decodeSeconds);
  const missed = lookups - hits;
  return {
    throughputTokensPerSecond: throughput,
    prefillSeconds,
    decodeSeconds,
    bytes,
    busySeconds: busy,
    experts: {
      hitRate: lookups > 0 ? hits / lookups : 1,
      prefetchRecall: missed > 0 ? prefetchUsed / missed : 0,
      prefetchPrecision: prefetches > 0 ? prefetchUsed / prefetches : 0,
      predictor,
      guesses,
      guessesUsed,
      guessedLayerLookups,
      guessRecall: guessedLayerLookups > 0 ? guessesUsed / guessedLayerLookups : 0,
      guessPrecision: guesses > 0 ? guessesUsed / guesses : 0,
      stallSeconds,
      lookups,
      demandFetches,
      prefetches,
      wastedPrefetches: wasted,
      cpuComputed,
      writeBacks: 0,
      decodeStepsReplayed: steps,
      plannedHitRate: planned.experts.expectedHitRate,
    },
    planned: { throughputTokensPerSecond: planned.throughputTokensPerSecond, decodeSeconds: planned.decodeSeconds },
    relativeError: (throughput - planned.throughputTokensPerSecond) / planned.throughputTokensPerSecond,
    routingSource,
  };
}
