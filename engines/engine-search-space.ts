/**
 * The knobs `plan --engine E` searches for engine E: one dimension per knob of E's own (FlexGen's
 * --percent, --gpu-batch-size, --num-gpu-batches, compression and --cpu-cache-compute; DeepSpeed's and
 * Accelerate's offload target and batch; llama.cpp's -ngl, GGUF type, --n-cpu-moe and -np;
 * mixtral-offloading's expert cache size and HQQ bits). A dimension maps a candidate to its variants
 * along that knob, the others held; knobs the user fixed with flags have no dimension. Every list is
 * finite and in a fixed order, so the search over them is deterministic and bounded.
 */
import { EXPERT_BITS, type ExpertPolicy } from "../core/expert-policy.js";
import { MOE_FAMILIES, type ModelSpec } from "../core/model-spec.js";
import type { Placement, Policy } from "../core/policy.js";
import type { FixedPolicy } from "../planner/plan.js";
import type { EngineKnobs } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import type { GgufFileType } from "./llama-cpp/gguf-file-types.js";
import { isHqqBits } from "./mixtral-offloading/hqq.js";

/** One configuration of an engine: a policy (as the engine reads it) and the engine's own settings. */
export interface EngineCandidate {
  readonly policy: Policy;
  readonly knobs: EngineKnobs;
}

/** One knob: the candidate's variants along it (the candidate itself may be among them). */
export interface SearchDimension {
  readonly name: string;
  readonly variants: (candidate: EngineCandidate) => readonly EngineCandidate[];
}

/** What the user fixed: these knobs are not searched. */
export interface FixedEngineSettings {
  readonly policy?: FixedPolicy;
  readonly gbs?: number;
  readonly nb?: number;
  /** MoE flags given (--expert-cache, --expert-bits, --attention-bits). */
  readonly expertCacheSize?: boolean;
  readonly expertBits?: boolean;
  readonly attentionBits?: boolean;
}

/** GPU batch sizes tried: powers of two up to 4096 (what `plan --engine` tried before it searched placements). */
export const MAX_CANDIDATE_BATCH = 4096;
export const BATCH_SIZES: readonly number[] = Array.from({ length: 13 }, (_, i) => 2 ** i);
/** GPU batches per block tried (FlexGen's --num-gpu-batches). */
export const GPU_BATCH_COUNTS: readonly number[] = [1, 2, 4, 8, 16, 32];
/** Placement percents are searched in steps of this many percent (FlexGen's flags take integers; 10 found ~2% faster OPT-6.7B policies for ~1.4x the time). */
export const PERCENT_STEP = 20;
/**
 * llama.cpp file types searched: 16-bit, 8-bit and the K-quants down to Q4_K_M, the common default
 * quantization and the nearest to Spillway's own 4-bit weights; lower-bit types lose more accuracy than
 * any placement the planner otherwise proposes, so they are scored only when asked for (--gguf-type).
 */
export const SEARCHED_GGUF_TYPES: readonly GgufFileType[] = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"];
/** llama.cpp -ngl values tried besides its own fit: this many evenly spaced layer counts. */
const NGL_STEPS = 8;

const dedupe = (candidates: readonly EngineCandidate[]): EngineCandidate[] => {
  const seen = new Set<string>();
  return candidates.filter((c) => {
    const key = candidateKey(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
};

/** A candidate's identity (field order fixed by construction). */
export function candidateKey(c: EngineCandidate): string {
  return JSON.stringify([c.policy, c.knobs]);
}

const withPolicy = (c: EngineCandidate, patch: Partial<Policy>): EngineCandidate => ({
  policy: { ...c.policy, ...patch },
  knobs: c.knobs,
});
const withKnobs = (c: EngineCandidate, patch: EngineKnobs): EngineCandidate => ({
  policy: c.policy,
  knobs: { ...c.knobs, ...patch },
});

const percentOf = (x: number) => Math.round(x * 100);
const placement = (gpuPercent: number, cpuPercent: number): Placement => ({
  gpu: gpuPercent / 100,
  cpu: cpuPercent / 100,
  disk: Math.max(0, 100 - gpuPercent - cpuPercent) / 100,
});
const PERCENTS = Array.from({ length: 100 / PERCENT_STEP + 1 }, (_, i) => i * PERCENT_STEP);

/**
 * A placement's three moves on the percent grid: the GPU share (CPU share kept, clipped), the CPU share
 * (GPU share kept) and GPU against CPU with the disk share kept.
 */
function placementDimensions(name: string, field: "weights" | "cache"): SearchDimension[] {
  const get = (c: EngineCandidate) => ({ g: percentOf(c.policy[field].gpu), c: percentOf(c.policy[field].cpu) });
  return [
    {
      name: `${name} GPU %`,
      variants: (c) => PERCENTS.map((g) => withPolicy(c, { [field]: placement(g, Math.min(get(c).c, 100 - g)) })),
    },
    {
      name: `${name} CPU %`,
      variants: (c) =>
        PERCENTS.filter((p) => p + get(c).g <= 100).map((p) => withPolicy(c, { [field]: placement(get(c).g, p) })),
    },
    {
      name: `${name} GPU % against CPU %`,
      variants: (c) => {
        const { g, c: p } = get(c);
        return PERCENTS.filter((x) => x <= g + p).map((x) => withPolicy(c, { [field]: placement(x, g + p - x) }));
      },
    },
  ];
}

const ONE_TIER: readonly Placement[] = [placement(100, 0), placement(0, 100), placement(0, 0)];

function batchDimensions(fixed: FixedEngineSettings, nbToo: boolean): SearchDimension[] {
  const dims: SearchDimension[] = [];
  if (fixed.gbs === undefined)
    dims.push({
      name: "GPU batch size",
      variants: (c) => BATCH_SIZES.map((gbs) => withPolicy(c, { gpuBatchSize: gbs })),
    });
  if (nbToo && fixed.nb === undefined)
    dims.push({
      name: "GPU batches",
      variants: (c) => GPU_BATCH_COUNTS.map((nb) => withPolicy(c, { numGpuBatches: nb })),
    });
  return dims;
}

function booleanDimension(name: string, field: "compressWeight" | "compressCache" | "cpuAttention" | "pinWeight") {
  return { name, variants: (c: EngineCandidate) => [false, true].map((v) => withPolicy(c, { [field]: v })) };
}

function flexgenDimensions(fixed: FixedEngineSettings): SearchDimension[] {
  const f = fixed.policy ?? {};
  const dims = batchDimensions(fixed, true);
  if (!f.percent)
    dims.push(...placementDimensions("weights", "weights"), ...placementDimensions("KV cache", "cache"), {
      name: "activations tier",
      variants: (c) => ONE_TIER.map((a) => withPolicy(c, { activations: a })),
    });
  if (f.compressWeight === undefined) dims.push(booleanDimension("weight compression", "compressWeight"));
  // FlexGen compresses a KV cache on one tier only: turning compression on moves a split cache whole to
  // the tier that holds most of it (unless --percent fixed the split), else the move could never be made.
  if (f.compressCache === undefined)
    dims.push({
      name: "KV compression",
      variants: (c) => [
        withPolicy(c, { compressCache: false }),
        withPolicy(c, { compressCache: true, ...(f.percent ? {} : { cache: largestTier(c.policy.cache) }) }),
      ],
    });
  if (f.cpuAttention === undefined) dims.push(booleanDimension("CPU attention", "cpuAttention"));
  return dims;
}

/** ZeRO-Inference and Accelerate: where the weights are offloaded to, pinning, and the one batch generate() runs. */
function hfDimensions(engine: "accelerate" | "deepspeed", fixed: FixedEngineSettings): SearchDimension[] {
  const f = fixed.policy ?? {};
  const dims = batchDimensions(fixed, false);
  if (!f.percent)
    dims.push(
      ...(engine === "deepspeed"
        ? [
            {
              name: "offload target",
              variants: (c: EngineCandidate) => ONE_TIER.map((w) => withPolicy(c, { weights: w })),
            },
          ]
        : placementDimensions("weights (device_map)", "weights")),
    );
  if (f.pinWeight === undefined && engine === "deepspeed") dims.push(booleanDimension("pin_memory", "pinWeight"));
  return dims;
}

function llamaCppDimensions(model: ModelSpec, fixed: FixedEngineSettings, knobs: EngineKnobs): SearchDimension[] {
  const dims = batchDimensions(fixed, false);
  const L = model.numLayers;
  if (knobs.nGpuLayers === undefined) {
    const counts = [...new Set(Array.from({ length: NGL_STEPS + 1 }, (_, i) => Math.round((i * (L + 1)) / NGL_STEPS)))];
    dims.push({
      name: "-ngl",
      variants: (c) => [
        { policy: c.policy, knobs: Object.fromEntries(Object.entries(c.knobs).filter(([k]) => k !== "nGpuLayers")) },
        ...counts.map((n) => withKnobs(c, { nGpuLayers: n })),
      ],
    });
  }
  // --no-compress-weight keeps the weights at 16 bits: no quantized file type is searched then.
  if (knobs.ggufType === undefined && fixed.policy?.compressWeight !== false)
    dims.push({ name: "GGUF type", variants: (c) => SEARCHED_GGUF_TYPES.map((t) => withKnobs(c, { ggufType: t })) });
  if (knobs.nCpuMoe === undefined && MOE_FAMILIES.includes(model.family)) {
    const counts = [...new Set(Array.from({ length: NGL_STEPS + 1 }, (_, i) => Math.round((i * L) / NGL_STEPS)))];
    dims.push({ name: "--n-cpu-moe", variants: (c) => counts.map((n) => withKnobs(c, { nCpuMoe: n })) });
  }
  return dims;
}

const HQQ_EXPERT_BITS = EXPERT_BITS.filter(isHqqBits);

function mixtralOffloadingDimensions(model: ModelSpec, fixed: FixedEngineSettings): SearchDimension[] {
  const dims = batchDimensions(fixed, false);
  const E = model.moe?.numExperts ?? 0;
  // A policy without an expert policy (--dense-experts) runs the notebook's configuration: nothing to vary.
  const vary = (c: EngineCandidate, patch: Partial<ExpertPolicy>): EngineCandidate[] =>
    c.policy.experts ? [withPolicy(c, { experts: { ...c.policy.experts, ...patch } })] : [];
  if (!fixed.expertCacheSize)
    dims.push({
      name: "expert cache size",
      variants: (c) => Array.from({ length: E }, (_, i) => vary(c, { cacheSize: i + 1 })).flat(),
    });
  if (!fixed.expertBits)
    dims.push({
      name: "expert bits",
      variants: (c) => HQQ_EXPERT_BITS.flatMap((bits) => vary(c, { bits })),
    });
  if (!fixed.attentionBits)
    dims.push({
      name: "attention bits",
      variants: (c) => HQQ_EXPERT_BITS.flatMap((bits) => vary(c, { attentionBits: bits })),
    });
  return dims;
}

/** The tier of a placement that holds the most (GPU, then CPU, then disk on ties), as a one-tier placement. */
function largestTier(p: Placement): Placement {
  const tier = p.gpu >= p.cpu && p.gpu >= p.disk ? 0 : p.cpu >= p.disk ? 1 : 2;
  return ONE_TIER[tier]!;
}

/**
 * Spillway's policy made expressible in `engine`, when the engine cannot run it as it is and an
 * obvious nearest policy exists: FlexGen keeps activations on one tier and a compressed KV cache on one
 * tier (each moved whole to the tier that holds most of it), unless the user fixed the split.
 */
export function expressiblePolicy(engine: EngineName, policy: Policy, fixed: FixedEngineSettings): Policy | undefined {
  if (engine !== "flexgen" || fixed.policy?.percent) return undefined;
  const oneTier = (p: Placement) => p.gpu === 1 || p.cpu === 1 || p.disk === 1;
  const activations = oneTier(policy.activations) ? policy.activations : largestTier(policy.activations);
  const cache = !policy.compressCache || oneTier(policy.cache) ? policy.cache : largestTier(policy.cache);
  if (activations === policy.activations && cache === policy.cache) return undefined;
  return { ...policy, activations, cache };
}

/**
 * Further starting points for `engine`'s descent: FlexGen's placement everything-on-the-CPU (weights,
 * KV cache, activations) without compression, with the KV cache compressed, and with both compressed,
 * at the policy's batch; flags the user fixed are kept. A coordinate descent moves one knob at a time,
 * and these corners lie several moves away from Spillway's placement.
 */
export function engineStarts(engine: EngineName, policy: Policy, fixed: FixedEngineSettings, knobs: EngineKnobs) {
  if (engine !== "flexgen") return [];
  const f = fixed.policy ?? {};
  const onCpu = ONE_TIER[1]!;
  const placed: Policy = f.percent ? policy : { ...policy, weights: onCpu, cache: onCpu, activations: onCpu };
  const starts = [
    [false, false],
    [false, true],
    [true, true],
  ].map(([compressWeight, compressCache]) => ({
    policy: {
      ...placed,
      compressWeight: f.compressWeight ?? compressWeight!,
      compressCache: f.compressCache ?? compressCache!,
      cpuAttention: f.cpuAttention ?? false,
    },
    knobs,
  }));
  return dedupe(starts);
}

/** The knobs searched for `engine` (none for Spillway's own runtime, whose search is the planner's). */
export function engineSearchDimensions(
  engine: EngineName,
  model: ModelSpec,
  fixed: FixedEngineSettings,
  knobs: EngineKnobs,
): SearchDimension[] {
  switch (engine) {
    case "spillway":
      return [];
    case "flexgen":
      return flexgenDimensions(fixed);
    case "accelerate":
    case "deepspeed":
      return hfDimensions(engine, fixed);
    case "llama.cpp":
      return llamaCppDimensions(model, fixed, knobs);
    case "mixtral-offloading":
      return model.moe ? mixtralOffloadingDimensions(model, fixed) : batchDimensions(fixed, false);
  }
}

/** The variants of `candidate` along every dimension, each once, in dimension order. */
export function neighbours(dimensions: readonly SearchDimension[], candidate: EngineCandidate): EngineCandidate[] {
  return dedupe(dimensions.flatMap((d) => d.variants(candidate)));
}
