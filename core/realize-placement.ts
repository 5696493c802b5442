/**
 * Placement at the granularity the runtime allocates: weights as whole tensors, KV cache as whole
 * sequences of a GPU batch, activations all on one tier.
 *
 * Weights follow FlexGen's midpoint rule (a tensor goes to the tier in which the midpoint of its
 * cumulative size falls, disk first, then CPU, then GPU). FlexGen applies it to attention and MLP
 * separately; Spillway's runtime applies it once over the whole layer, in declaration order, so that
 * the realized fractions (which fall on tensor boundaries) realize to themselves: a plan's placement
 * is exactly what will be allocated, and replaying it changes nothing. `flexgenLayerWeightBytes` keeps
 * FlexGen's own per-part rule for exports and comparisons.
 */

import { compressedBytes } from "./compression.js";
import { embeddingParams, layerWeightTensors, type ModelSpec, type WeightTensor } from "./model-spec.js";
import type { Placement, Policy } from "./policy.js";

import type { Tier } from "./tiers.js";

/** An off-GPU token table (LM head) streams through two buffers of this size each token step. */
export const HEAD_CHUNK_BYTES = 8 * 2 ** 20;

export interface TierAmounts {
  readonly gpu: number;
  readonly cpu: number;
  readonly disk: number;
}

export interface RealizedPlacement {
  /** Stored bytes of one decoder layer's weights on each tier. */
  readonly layerWeightBytes: TierAmounts;
  /** Number of weight tensors of one layer on each tier (each off-GPU tensor is one transfer). */
  readonly layerWeightTensors: TierAmounts;
  /** Stored bytes of embeddings, final norm and LM head on each tier. */
  readonly embeddingBytes: TierAmounts;
  /**
   * GPU bytes needed to use the off-GPU embeddings each token step: the off-GPU rest (positions, norms)
   * whole, and an off-GPU token table streamed through two HEAD_CHUNK_BYTES buffers.
   */
  readonly headBufferBytes: number;
  /** Sequences of each GPU batch whose KV cache lives on each tier. */
  readonly cacheSequences: TierAmounts;
  readonly activationTier: Tier;
  /** The fractions that this realization amounts to (what the runtime will really do). */
  readonly weights: Placement;
  readonly cache: Placement;
  readonly activations: Placement;
}

/** Stored bytes of one tensor: 2-D weights are compressed when asked, vectors never are. */
export function storedTensorBytes(
  tensor: { params: number; matrix: boolean },
  model: ModelSpec,
  compress: boolean,
): number {
  return compress && tensor.matrix ? compressedBytes(tensor.params) : tensor.params * model.bytesPerParam;
}

function isMatrix(t: WeightTensor): boolean {
  return t.name.endsWith(".weight") && !t.name.includes("norm");
}

/** FlexGen's get_choice over cumulative percents in the order disk, CPU, GPU. */
export function tierForMidpoint(midFraction: number, placement: Placement): Tier {
  const eps = 1e-9;
  if (midFraction < placement.disk - eps) return "disk";
  if (midFraction < placement.disk + placement.cpu - eps) return "cpu";
  return "gpu";
}

/** Assigns each tensor of a group by the midpoint rule. Exported for the exporters and the runtime. */
export function placeTensors<T extends { params: number }>(
  tensors: readonly T[],
  placement: Placement,
): { tensor: T; tier: Tier }[] {
  const total = tensors.reduce((s, t) => s + t.params, 0);
  let cumulative = 0;
  return tensors.map((tensor) => {
    cumulative += tensor.params;
    const mid = total > 0 ? (cumulative - tensor.params / 2) / total : 0;
    return { tensor, tier: tierForMidpoint(mid, placement) };
  });
}

/** Sequences per tier for one GPU batch (FlexGen rounds down to whole sequences, GPU first). */
export function cacheSequences(gbs: number, cache: Placement): TierAmounts {
  const eps = 1e-9;
  const gpu = Math.min(gbs, Math.floor(gbs * cache.gpu + eps));
  if (cache.disk <= eps) return { gpu, cpu: gbs - gpu, disk: 0 };
  const cpu = Math.min(gbs - gpu, Math.floor(gbs * cache.cpu + eps));
  return { gpu, cpu, disk: gbs - gpu - cpu };
}

export function activationTierOf(activations: Placement): Tier {
  if (activations.gpu >= activations.cpu && activations.gpu >= activations.disk) return "gpu";
  return activations.cpu >= activations.disk ? "cpu" : "disk";
}

/** Embeddings, final norm and LM head as the planner groups them: the token table, the rest, an untied head. */
export function embeddingTensors(model: ModelSpec): { name: string; params: number; matrix: boolean }[] {
  const h = model.hiddenSize;
  const tensors = [{ name: "embed_tokens", params: model.vocabSize * model.wordEmbedDim, matrix: true }];
  const rest =
    embeddingParams(model) - model.vocabSize * model.wordEmbedDim - (model.tiedEmbeddings ? 0 : model.vocabSize * h);
  if (rest > 0) tensors.push({ name: "positions_and_norms", params: rest, matrix: false });
  if (!model.tiedEmbeddings) tensors.push({ name: "lm_head", params: model.vocabSize * h, matrix: true });
  return tensors;
}

/** Bytes of one layer per tier under FlexGen's own rule (attention and MLP placed separately). */
export function flexgenLayerWeightBytes(model: ModelSpec, weights: Placement, compress: boolean): TierAmounts {
  const tensors = layerWeightTensors(model);
  const bytes = { gpu: 0, cpu: 0, disk: 0 };
  for (const part of ["attention", "mlp"] as const) {
    for (const { tensor, tier } of placeTensors(
      tensors.filter((t) => t.part === part),
      weights,
    )) {
      bytes[tier] += storedTensorBytes({ params: tensor.params, matrix: isMatrix(tensor) }, model, compress);
    }
  }
  return bytes;
}

export function realizePlacement(model: ModelSpec, policy: Policy): RealizedPlacement {
  const bytes = { gpu: 0, cpu: 0, disk: 0 };
  const counts = { gpu: 0, cpu: 0, disk: 0 };
  const params = { gpu: 0, cpu: 0, disk: 0 };
  for (const { tensor, tier } of placeTensors(layerWeightTensors(model), policy.weights)) {
    bytes[tier] += storedTensorBytes({ params: tensor.params, matrix: isMatrix(tensor) }, model, policy.compressWeight);
    counts[tier] += 1;
    params[tier] += tensor.params;
  }
  const totalParams = params.gpu + params.cpu + params.disk;
  // Fractions by parameter count, the measure the midpoint rule uses, so they realize to themselves.
  const weights = { gpu: params.gpu / totalParams, cpu: params.cpu / totalParams, disk: params.disk / totalParams };
  const embedding = { gpu: 0, cpu: 0, disk: 0 };
  let headBufferBytes = 0;
  for (const { tensor, tier } of placeTensors(embeddingTensors(model), policy.embeddings ?? weights)) {
    const stored = storedTensorBytes(tensor, model, policy.compressWeight);
    embedding[tier] += stored;
    if (tier !== "gpu")
      headBufferBytes +=
        tensor.name === "embed_tokens" || tensor.name === "lm_head" ? Math.min(stored, 2 * HEAD_CHUNK_BYTES) : stored;
  }
  const gbs = policy.gpuBatchSize;
  const seqs = cacheSequences(gbs, policy.cache);
  const activationTier = activationTierOf(policy.activations);
  return {
    layerWeightBytes: bytes,
    layerWeightTensors: counts,
    embeddingBytes: embedding,
    headBufferBytes,
    cacheSequences: seqs,
    activationTier,
    weights,
    cache: { gpu: seqs.gpu / gbs, cpu: seqs.cpu / gbs, disk: seqs.disk / gbs },
    activations: {
      gpu: activationTier === "gpu" ? 1 : 0,
      cpu: activationTier === "cpu" ? 1 : 0,
      disk: activationTier === "disk" ? 1 : 0,
    },
  };
}

/**
 * The policy with its placement replaced by what the runtime will allocate. Layer groups are realized
 * one by one, `weights` becomes their average by parameters, and the embeddings keep the placement they
 * were given (or had under the policy's average).
 */
export function realizedPolicy(model: ModelSpec, policy: Policy): Policy {
  const r = realizePlacement(model, policy);
  const realized = { ...policy, weights: r.weights, cache: r.cache, activations: r.activations };
  if (!policy.layerGroups) return realized;
  const { layerGroups: _groups, ...uniform } = policy;
  const groups = policy.layerGroups.map((g) => ({
    ...g,
    weights: realizePlacement(model, { ...uniform, weights: g.weights }).weights,
  }));
  const layers = groups.reduce((sum, g) => sum + g.layers, 0);
  const average = (tier: Tier) => groups.reduce((sum, g) => sum + g.layers * g.weights[tier], 0) / layers;
  return {
    ...realized,
    layerGroups: groups,
    weights: { gpu: average("gpu"), cpu: average("cpu"), disk: average("disk") },
    embeddings: policy.embeddings ?? policy.weights,
  };
}
