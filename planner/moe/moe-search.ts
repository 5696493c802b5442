/**
 * The MoE policy search: every combination of batch size, expert and attention precision, expert
 * slots per layer, eviction, prefetch, where misses compute and where the KV cache lives, scored by the
 * closed-form MoE model; the fastest feasible one wins (ties: the smaller batch, then more precision).
 * Any field the user fixed is not searched. Pre-gated prefetch needs a model trained with pre-gates,
 * and 3- and 2-bit experts cost quality, so they are scored only when asked for.
 */
import type { ExpertBits, ExpertCompute, ExpertEviction, ExpertPolicy } from "../../core/expert-policy.js";
import { storedBytes } from "../../core/expert-policy.js";
import type { ModelSpec, MoeSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { OnProgress } from "../../core/progress.js";
import type { Workload } from "../../core/workload.js";
import { cudaMoeDeviceBytes, moePassShape } from "../../runtime/moe/device-budget.js";
import type { HardwareRates } from "../spillway/hardware-rates.js";
import { evaluateMoePolicy, type MoePrediction, moeWeightShares, routedExpertParams } from "./evaluate-moe-policy.js";
import type { RoutingProfile } from "./routing-profile.js";

/** Parts of the MoE policy the user fixed (the CLI's --batch-size, --expert-cache, ... flags). */
export interface FixedExperts {
  readonly batchSize?: number;
  readonly cacheSize?: number;
  readonly bits?: ExpertBits;
  readonly attentionBits?: ExpertBits;
  readonly prefetchExperts?: number;
  readonly prefetchLayers?: number;
  readonly compute?: ExpertCompute;
  readonly eviction?: ExpertEviction;
  readonly pregated?: boolean;
  readonly offloadTier?: "cpu" | "disk";
  readonly cpuThresholdTokens?: number;
  /** KV cache on the CPU (with attention there) rather than on the GPU. */
  readonly cacheOnCpu?: boolean;
}

export interface MoeSearchResult {
  readonly best: { readonly policy: Policy; readonly prediction: MoePrediction } | undefined;
  readonly evaluations: number;
}

/** Batch sizes tried first (4x apart); the best one's neighbours at 2x are tried next. */
export const MOE_BATCH_CANDIDATES = [1, 4, 16, 64, 256];
/** Decode steps the search's estimates cost (evenly spaced), and how many estimates are re-scored exactly. */
const ESTIMATE_DECODE_SAMPLES = 4;
const SHORTLIST = 12;

export function moePolicy(model: ModelSpec, batch: number, experts: ExpertPolicy, cacheOnCpu: boolean): Policy {
  return {
    gpuBatchSize: batch,
    numGpuBatches: 1,
    weights: moeWeightShares(model, experts),
    cache: cacheOnCpu ? { gpu: 0, cpu: 1, disk: 0 } : { gpu: 1, cpu: 0, disk: 0 },
    activations: { gpu: 1, cpu: 0, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: cacheOnCpu,
    overlap: true,
    pinWeight: true,
    experts,
  };
}

/**
 * The least GPU memory any candidate of the search needs (cudaMoeDeviceBytes, which grows with the
 * batch, the stored bits, the cached experts, the prefetch buffers and the KV cache's GPU share): the
 * fixed settings, else the smallest batch, 4-bit experts and attention, no expert cached, no prefetch
 * and the KV cache on the CPU.
 */
export function smallestMoeGpuBytes(model: ModelSpec, workload: Workload, fixed: FixedExperts): number {
  const k = model.moe!.expertsPerToken;
  const speculative = !fixed.pregated && (fixed.prefetchExperts !== undefined || fixed.prefetchLayers !== undefined);
  const experts: ExpertPolicy = {
    cacheSize: fixed.cacheSize ?? 0,
    eviction: fixed.eviction ?? "lru",
    offloadTier: fixed.offloadTier ?? "cpu",
    bits: fixed.bits ?? 4,
    attentionBits: fixed.attentionBits ?? 4,
    prefetchExperts: speculative ? (fixed.prefetchExperts ?? k) : 0,
    prefetchLayers: speculative ? (fixed.prefetchLayers ?? 1) : 1,
    pregated: fixed.pregated ?? false,
    compute: fixed.compute ?? "gpu",
    cpuThresholdTokens: fixed.cpuThresholdTokens ?? 0,
  };
  const batch = fixed.batchSize ?? MOE_BATCH_CANDIDATES[0]!;
  const pass = moePassShape(batch, workload.promptLen, workload.genLen);
  return cudaMoeDeviceBytes(model, experts, pass, fixed.cacheOnCpu === false ? 1 : 0).totalBytes;
}

/**
 * llama.cpp computes host-resident experts on the CPU in decode and copies them to the GPU for prompt
 * batches of 32 tokens or more: per expert, fewer than 32 * top-k / experts tokens stay on the CPU.
 */
export function llamaCppThresholdTokens(moe: MoeSpec): number {
  return Math.max(1, Math.ceil((32 * moe.expertsPerToken) / moe.numExperts) - 1);
}

export function searchMoe(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  profile: RoutingProfile,
  fixed: FixedExperts = {},
  onProgress?: OnProgress,
): MoeSearchResult {
  const moe = model.moe!;
  const E = moe.numExperts;
  const k = moe.expertsPerToken;
  const pick = <T>(value: T | undefined, options: readonly T[]): readonly T[] =>
    value === undefined ? options : [value];

  const bitsList = pick(fixed.bits, [16, 8, 4] as ExpertBits[]);
  const attentionBitsList = pick(fixed.attentionBits, [16, 8, 4] as ExpertBits[]);
  // Every slot count for up to 16 experts; beyond, 17 evenly spaced counts, refined around the best.
  const slotStep = E <= 16 ? 1 : Math.ceil(E / 16);
  const slotsList =
    fixed.cacheSize !== undefined
      ? [fixed.cacheSize]
      : [...new Set([...Array.from({ length: Math.floor(E / slotStep) + 1 }, (_, i) => i * slotStep), E])]
          .filter((x) => x <= E)
          .sort((a, b) => a - b);
  const evictions = pick(fixed.eviction, ["lru", "lfu", "static"] as ExpertEviction[]);
  // Experts' home copies go to disk only when host memory cannot hold them.
  const homeFitsCpu = (bits: ExpertBits) =>
    model.numLayers * E * storedBytes(routedExpertParams(model, moe), bits) < rates.capacityBytes.cpu;
  const tiersFor = (bits: ExpertBits) =>
    pick(fixed.offloadTier, [homeFitsCpu(bits) ? ("cpu" as const) : ("disk" as const)]);
  const kvOnCpu = pick(fixed.cacheOnCpu, [false, true]);
  const computes: { compute: ExpertCompute; cpuThresholdTokens: number }[] =
    fixed.compute !== undefined
      ? [
          {
            compute: fixed.compute,
            cpuThresholdTokens:
              fixed.cpuThresholdTokens ?? (fixed.compute === "auto" ? llamaCppThresholdTokens(moe) : 0),
          },
        ]
      : [
          { compute: "gpu", cpuThresholdTokens: 0 },
          { compute: "cpu", cpuThresholdTokens: 0 },
          { compute: "auto", cpuThresholdTokens: fixed.cpuThresholdTokens ?? llamaCppThresholdTokens(moe) },
        ];
  const prefetches: { prefetchExperts: number; prefetchLayers: number; pregated: boolean }[] = [];
  if (fixed.pregated) prefetches.push({ prefetchExperts: 0, prefetchLayers: 1, pregated: true });
  else if (fixed.prefetchExperts !== undefined || fixed.prefetchLayers !== undefined) {
    prefetches.push({
      prefetchExperts: fixed.prefetchExperts ?? k,
      prefetchLayers: fixed.prefetchLayers ?? 1,
      pregated: false,
    });
  } else {
    prefetches.push({ prefetchExperts: 0, prefetchLayers: 1, pregated: false });
    for (const m of [k, 2 * k])
      for (const a of [1, 2]) if (m <= E) prefetches.push({ prefetchExperts: m, prefetchLayers: a, pregated: false });
  }

  let best: MoeSearchResult["best"];
  let evaluations = 0;
  const better = (a: MoePrediction, b: MoePrediction) =>
    a.throughputTokensPerSecond > b.throughputTokensPerSecond * (1 + 1e-9);
  // Candidates are estimated from a few decode steps; the best few are then scored exactly.
  const shortlist: { policy: Policy; estimate: number }[] = [];
  const consider = (batch: number, experts: ExpertPolicy, cacheOnCpu: boolean): boolean => {
    const policy = moePolicy(model, batch, experts, cacheOnCpu);
    const prediction = evaluateMoePolicy(model, rates, workload, policy, profile, ESTIMATE_DECODE_SAMPLES);
    evaluations++;
    if (prediction.feasible) {
      if (!best || better(prediction, best.prediction)) best = { policy, prediction };
      shortlist.push({ policy, estimate: prediction.throughputTokensPerSecond });
      if (shortlist.length > 4 * SHORTLIST) {
        shortlist.sort((a, b) => b.estimate - a.estimate);
        shortlist.length = SHORTLIST;
      }
    }
    return prediction.peakBytes.gpu <= prediction.capacityBytes.gpu;
  };
  // Progress: one unit per (batch, expert bits, attention bits) of the grid, one for the exact scoring.
  const precisions = bitsList.length * attentionBitsList.length;
  const progressTotal = (fixed.batchSize !== undefined ? 1 : MOE_BATCH_CANDIDATES.length + 2) * precisions + 1;
  let progressDone = 0;
  const progress = (units: number, detail: string) => {
    progressDone += units;
    onProgress?.({ phase: "search", done: progressDone, total: progressTotal, detail });
  };
  progress(0, "starting");
  const tried = new Set<number>();
  const tryBatch = (batch: number) => {
    if (tried.has(batch) || batch < 1) {
      progress(precisions, `batch ${batch} skipped`);
      return;
    }
    tried.add(batch);
    for (const bits of bitsList)
      for (const attentionBits of attentionBitsList) {
        for (const offloadTier of tiersFor(bits))
          for (const cacheOnCpu of kvOnCpu) {
            for (const cacheSize of slotsList) {
              const resident = cacheSize >= E;
              let anyFits = false;
              for (const eviction of resident ? evictions.slice(0, 1) : evictions) {
                for (const prefetch of resident ? prefetches.slice(0, 1) : prefetches) {
                  for (const compute of resident ? computes.slice(0, 1) : computes) {
                    if (
                      consider(
                        batch,
                        { cacheSize, eviction, offloadTier, bits, attentionBits, ...prefetch, ...compute },
                        cacheOnCpu,
                      )
                    )
                      anyFits = true;
                  }
                }
              }
              // GPU memory only grows with the slots: once nothing fits, more slots will not either.
              if (!anyFits) break;
            }
          }
        progress(1, `batch ${batch}, ${bits}-bit experts, ${attentionBits}-bit attention, ${evaluations} estimates`);
      }
  };
  if (fixed.batchSize !== undefined) tryBatch(fixed.batchSize);
  else {
    for (const batch of MOE_BATCH_CANDIDATES) tryBatch(batch);
    const chosen = best?.policy.gpuBatchSize;
    if (chosen !== undefined) for (const batch of [chosen / 2, chosen * 2]) tryBatch(batch);
  }
  // Between grid points: every slot count within one step of the best, other choices kept.
  const found = best as MoeSearchResult["best"];
  if (found && slotStep > 1) {
    const x = found.policy.experts!;
    for (
      let cacheSize = Math.max(0, x.cacheSize - slotStep + 1);
      cacheSize <= Math.min(E, x.cacheSize + slotStep - 1);
      cacheSize++
    ) {
      if (cacheSize !== x.cacheSize)
        consider(found.policy.gpuBatchSize, { ...x, cacheSize }, found.policy.cache.cpu > 0);
    }
  }
  shortlist.sort((a, b) => b.estimate - a.estimate);
  progress(0, `scoring the best ${Math.min(SHORTLIST, shortlist.length)} exactly`);
  best = undefined;
  for (const { policy } of shortlist.slice(0, SHORTLIST)) {
    const prediction = evaluateMoePolicy(model, rates, workload, policy, profile);
    evaluations++;
    if (prediction.feasible && (!best || better(prediction, best.prediction))) best = { policy, prediction };
  }
  progress(1, `${evaluations} evaluations`);
  return { best, evaluations };
}
