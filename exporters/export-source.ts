/**
 * What every exporter reads off a Plan: the model's Hugging Face id, the plan's weight bytes per tier
 * as the runtime really allocates them (whole tensors), the shared comment header, and the llama.cpp
 * MoE advice (the plan's, or recomputed on a hardware profile the caller passes).
 */

import { storedBytes } from "../core/expert-policy.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { expertParams, isExpertTensor, layerParams, layerWeightTensors, type ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import { layerGroupsOf, type Placement, type Policy } from "../core/policy.js";
import { embeddingTensors, placeTensors, realizePlacement, type TierAmounts } from "../core/realize-placement.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { formatBytes, GIB } from "../core/units.js";
import { llamaCppEngineMoeAdvice } from "../engines/llama-cpp/moe-advice.js";
import type { LlamaCppMoeAdvice } from "../planner/moe/llama-cpp-moe.js";

export interface ExportOptions {
  /**
   * The hardware profile to predict on (the plan's, or `export --hardware`'s), and to recompute llama.cpp MoE
   * advice with when the plan lacks it (an MoE model placed densely) or the profile is not the plan's.
   * Exporters read no files: without it a plan lacking advice exports with a warning.
   */
  readonly hardware?: HardwareProfile;
  /** Lines the header adds after the common ones: the target engine's predicted throughput (exporters/export-prediction.ts). */
  readonly predictionLines?: readonly string[];
}

export const blockSize = (p: Policy): number => p.gpuBatchSize * p.numGpuBatches;

/** The model's Hugging Face repository (catalogue models), else its name. */
export function hfModelId(model: ModelSpec): string {
  const known: Record<string, string> = {
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-v0.1",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-v0.1",
    "qwen1.5-moe-a2.7b": "Qwen/Qwen1.5-MoE-A2.7B",
    "olmoe-1b-7b": "allenai/OLMoE-1B-7B-0924",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
  };
  if (model.family === "opt") return `facebook/${model.name}`;
  return known[model.name] ?? model.name;
}

/** Which tier holds the most of a placement (GPU first on ties). */
export function majorTier(a: TierAmounts): Tier {
  return TIERS.reduce((best, t) => (a[t] > a[best] + 1e-9 ? t : best), "gpu" as Tier);
}

export interface PlanWeightBytes {
  /** Stored bytes of each decoder layer on each tier (index = layer). */
  readonly layers: readonly TierAmounts[];
  /** Stored bytes of embeddings, final norm and LM head on each tier. */
  readonly embeddings: TierAmounts;
  /** The tier of each embedding tensor (embed_tokens, positions_and_norms, lm_head), by the plan's rule. */
  readonly embeddingTiers: Readonly<Record<string, Tier>>;
  readonly total: TierAmounts;
}

const add = (a: TierAmounts, b: TierAmounts, times = 1): TierAmounts => ({
  gpu: a.gpu + times * b.gpu,
  cpu: a.cpu + times * b.cpu,
  disk: a.disk + times * b.disk,
});
export const ZERO: TierAmounts = { gpu: 0, cpu: 0, disk: 0 };
export const sumTiers = (a: TierAmounts): number => a.gpu + a.cpu + a.disk;

/**
 * The plan's weight bytes per tier, as stored: whole tensors by the runtime's whole-layer midpoint rule
 * (per layer group), or for MoE plans attention/routers/embeddings at attentionBits on the GPU and
 * cacheSize of the routed experts on the GPU, the rest on the offload tier, at `bits`.
 */
export function planWeightBytes(model: ModelSpec, policy: Policy): PlanWeightBytes {
  const x = policy.experts;
  const embeddingTiers: Record<string, Tier> = {};
  if (x && model.moe) {
    const nonExpert = layerWeightTensors(model)
      .filter((t) => !isExpertTensor(t.name))
      .reduce((s, t) => s + t.params, 0);
    const expert = storedBytes(expertParams(model), x.bits);
    const layer: TierAmounts = {
      gpu: storedBytes(nonExpert, x.attentionBits) + x.cacheSize * expert,
      cpu: x.offloadTier === "cpu" ? (model.moe.numExperts - x.cacheSize) * expert : 0,
      disk: x.offloadTier === "disk" ? (model.moe.numExperts - x.cacheSize) * expert : 0,
    };
    let embedGpu = 0;
    for (const t of embeddingTensors(model)) {
      embeddingTiers[t.name] = "gpu";
      embedGpu += storedBytes(t.params, x.attentionBits);
    }
    const embeddings = { gpu: embedGpu, cpu: 0, disk: 0 };
    const layers = Array.from({ length: model.numLayers }, () => layer);
    return { layers, embeddings, embeddingTiers, total: add(embeddings, layer, model.numLayers) };
  }
  const { layerGroups: _groups, ...uniform } = policy;
  const layers: TierAmounts[] = [];
  for (const g of layerGroupsOf(policy, model.numLayers)) {
    const bytes = realizePlacement(model, { ...uniform, weights: g.weights }).layerWeightBytes;
    for (let i = 0; i < g.layers; i++) layers.push(bytes);
  }
  const realized = realizePlacement(model, policy);
  const embeddingPlacement: Placement = policy.embeddings ?? (policy.layerGroups ? policy.weights : realized.weights);
  for (const { tensor, tier } of placeTensors(embeddingTensors(model), embeddingPlacement))
    embeddingTiers[tensor.name] = tier;
  const embeddings = realizePlacement(model, { ...uniform, embeddings: embeddingPlacement }).embeddingBytes;
  const total = layers.reduce((s, l) => add(s, l), embeddings);
  return { layers, embeddings, embeddingTiers, total };
}

/** Uncompressed (fp16) bytes of one decoder layer. */
export const layerBytesFp16 = (model: ModelSpec): number => layerParams(model) * model.bytesPerParam;

/** KV cache bytes of one sequence at full length (fp16, or 4-bit group-wise when compressed). */
export function kvBytesPerSequence(
  model: ModelSpec,
  workload: { promptLen: number; genLen: number },
  compressed: boolean,
): number {
  const headDim = model.headDim ?? model.hiddenSize / model.numHeads;
  const values = 2 * model.numLayers * model.numKvHeads * headDim * (workload.promptLen + workload.genLen);
  return compressed ? (values * 4.5) / 8 : values * model.bytesPerParam;
}

export const gib = (bytes: number, digits = 2): string => (bytes / GIB).toFixed(digits);
/** Bytes in GiB rounded up to `digits` decimals. */
export const gibUp = (bytes: number, digits = 2): number =>
  Math.ceil((bytes / GIB) * 10 ** digits - 1e-9) / 10 ** digits;

export const describeTiers = (a: TierAmounts): string =>
  `GPU ${formatBytes(a.gpu)}, CPU ${formatBytes(a.cpu)}, disk ${formatBytes(a.disk)}`;

/** The first header lines every export shares: model, hardware, workload, block. */
export function commonHeader(plan: Plan, target: string, options: ExportOptions = {}): string[] {
  const { modelSpec: model, policy: p } = plan;
  return [
    `Spillway plan exported for ${target}`,
    `model: ${model.name} (${hfModelId(model)}, ${model.family}, ${model.numLayers} layers)`,
    `hardware: ${plan.hardware} (capacities: ${describeTiers(plan.predicted.capacityBytes)})`,
    `workload: prompt ${plan.workload.promptLen} + ${plan.workload.genLen} generated tokens; block of ${blockSize(p)} sequences (GPU batch ${p.gpuBatchSize} x ${p.numGpuBatches})`,
    ...(options.predictionLines ?? []),
  ];
}

/**
 * The llama.cpp MoE advice: the plan's, else (no advice in the plan, or a hardware profile given other than
 * the plan's) recomputed on the hardware profile given, so that the flags and their prediction are for one
 * machine.
 */
export function moeAdvice(
  plan: Plan,
  options: ExportOptions,
): { advice: LlamaCppMoeAdvice | undefined; note: string | undefined } {
  const profile = options.hardware;
  if (plan.llamaCpp && (!profile || profile.name === plan.hardware)) return { advice: plan.llamaCpp, note: undefined };
  if (!profile)
    return {
      advice: undefined,
      note: `cannot recompute llama.cpp MoE advice: the plan does not carry it and no hardware profile was given (${JSON.stringify(plan.hardwareSource ?? plan.hardware)})`,
    };
  const model = plan.modelSpec;
  return {
    advice: llamaCppEngineMoeAdvice(model, profile, plan.workload),
    note: `--n-cpu-moe recomputed on the ${profile.name} profile (${plan.llamaCpp ? `the plan's advice is for ${plan.hardware}` : "the plan does not carry llama.cpp advice"})`,
  };
}

/** Prefixes each line with `prefix` (comment headers). */
export const commentLines = (lines: readonly string[], prefix = "# "): string =>
  lines.map((l) => `${prefix}${l}`).join("\n");

/** An export's text: its comment header, its warnings, then what to run. */
export function exportText(header: readonly string[], warnings: readonly string[], body: string): string {
  return (
    [commentLines(header), ...(warnings.length ? [commentLines(warnings, "# warning: ")] : []), body].join("\n") + "\n"
  );
}
