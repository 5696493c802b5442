/**
 * What an MoE pass places in device memory, block by block.
 *
 * `deviceBudget`: the CPU backend's arena, and so the exact capacity it needs: the non-expert weights (one block per tensor, decoder-layer tensors stored at attentionBits,
 * embeddings, final norm and LM head fp16: quantized-weights.ts), the KV cache (fp32, per layer and
 * sequence), `cacheSize` expert slots per layer (each exactly one expert stored at `bits`), one staging block (for an expert fetched but not cached:
 * a miss with a 0-slot or static cache, or any miss in prefill, which streams experts without touching
 * the caches) and the prefetch buffers. The arena rounds every block up to 64 bytes; so does this.
 * The CPU backend's activations live in ordinary memory and are not counted there.
 *
 * `cudaMoeDeviceBytes`: the CUDA backend's device pool (runtime/cuda/device-pool.ts, 256-byte blocks),
 * which is the plan's GPU memory, and so what the planner counts as an MoE plan's GPU peak
 * (planner/moe/evaluate-moe-policy.ts): the same weights, KV cache, expert slots, staging block and
 * prefetch buffers, plus every activation block the CUDA decoder (cuda-mixtral-decoder.ts:
 * `decoderActivationFloats`) and the experts' memory (cuda-expert-memory.ts: `expertActivationFloats`)
 * allocate, which they allocate from these very functions. Nothing in the pool is freed during a pass,
 * so its peak is the sum of its blocks.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { isExpertTensor, kvDim, layerWeightTensors, type ModelSpec, qDim } from "../../core/model-spec.js";
import { DEVICE_POOL_ALIGN_BYTES } from "../cuda/device-pool.js";
import { quantizedByteLength } from "./expert-quantization.js";
import { moeTensorShapes } from "./moe-tensor-shapes.js";
import { expertStoredBytes, nonExpertTensorBits } from "./quantized-weights.js";

const ALIGN = 64;
const aligned = (bytes: number) => Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);

export interface DeviceBudget {
  /** Non-expert weights: embeddings, attention, norms, routers, LM head. */
  readonly nonExpertBytes: number;
  /** cacheSize x layers x one expert. */
  readonly expertCacheBytes: number;
  /** KV cache + staging expert + prefetch buffers. */
  readonly workingBytes: number;
  readonly kvCacheBytes: number;
  readonly stagingBytes: number;
  readonly prefetchBytes: number;
  readonly totalBytes: number;
  /** One expert's stored bytes at the policy's bits (the planner's bytesPerExpert). */
  readonly expertBytes: number;
  /** Prefetch buffers (each one expert). */
  readonly prefetchBuffers: number;
}

/** Prefetch buffers a policy needs: pre-gated, a layer's whole batch union; speculative, m guesses for each of the `prefetchLayers` layers in flight. */
export function prefetchBufferCount(model: ModelSpec, policy: ExpertPolicy, batch: number): number {
  const moe = model.moe!;
  if (policy.pregated) return Math.min(moe.numExperts, batch * moe.expertsPerToken);
  return policy.prefetchExperts > 0 ? policy.prefetchLayers * policy.prefetchExperts : 0;
}

export function deviceBudget(
  model: ModelSpec,
  policy: ExpertPolicy,
  batch: number,
  maxSequenceLength: number,
): DeviceBudget {
  const moe = model.moe;
  if (!moe) throw new Error(`${model.name} has no experts`);
  const nonExpertBytes = moeTensorShapes(model)
    .filter((t) => !isExpertTensor(t.name))
    .reduce(
      (sum, t) =>
        sum +
        aligned(
          quantizedByteLength(
            t.shape.reduce((a, b) => a * b, 1),
            nonExpertTensorBits(t.name, policy.attentionBits),
          ),
        ),
      0,
    );
  const expertBytes = expertStoredBytes(model, policy.bits);
  const slotBytes = aligned(expertBytes);
  const expertCacheBytes = model.numLayers * policy.cacheSize * slotBytes;
  const kvCacheBytes = 2 * model.numLayers * batch * aligned(maxSequenceLength * kvDim(model) * 4);
  const stagingBytes = policy.cacheSize < moe.numExperts ? slotBytes : 0;
  const prefetchBuffers = prefetchBufferCount(model, policy, batch);
  const prefetchBytes = prefetchBuffers * slotBytes;
  const workingBytes = kvCacheBytes + stagingBytes + prefetchBytes;
  return {
    nonExpertBytes,
    expertCacheBytes,
    workingBytes,
    kvCacheBytes,
    stagingBytes,
    prefetchBytes,
    totalBytes: nonExpertBytes + expertCacheBytes + workingBytes,
    expertBytes,
    prefetchBuffers,
  };
}

/** A pass's shape on the device: sequences, the most tokens a step takes per sequence (the prompt), positions each sequence holds. */
export interface MoePassShape {
  readonly batch: number;
  readonly maxTokensPerStep: number;
  /** Prompt + generated - 1 (the last generated token is never fed back). */
  readonly maxLength: number;
}

/** The pass of a plan: `batch` sequences, `promptLen` prompt tokens, `genLen` generated. */
export function moePassShape(batch: number, promptLen: number, genLen: number): MoePassShape {
  return { batch, maxTokensPerStep: promptLen, maxLength: promptLen + genLen - 1 };
}

/** The CUDA MoE decoder's activation blocks and what each is called in an out-of-memory message. */
export const DECODER_ACTIVATIONS = {
  ids: "token ids",
  x: "hidden states",
  xn: "normed hidden states",
  q: "queries",
  kNew: "new keys",
  vNew: "new values",
  attn: "attention output",
  proj: "attention projection",
  logits: "router logits",
  nextLogits: "pre-gate logits",
  normWeight: "norm weight",
  bias: "projection bias",
  attentionScratch: "attention scratch",
  outputs: "expert outputs by rank",
  gateWeights: "expert gate weights",
  expertRowIndices: "expert row indices",
  lookaheadLogits: "lookahead router logits",
  lookaheadExperts: "lookahead guesses",
  sharedScratch: "shared expert scratch",
  sharedOut: "shared expert output",
  sharedGateLogit: "shared expert gate",
  last: "last hidden states",
  vocab: "vocabulary logits",
  nextIds: "next tokens",
} as const;
export type DecoderActivation = keyof typeof DECODER_ACTIVATIONS;

/** The speculative lookahead's guesses per token on the device: its experts and weights (0 without a lookahead). */
export function lookaheadGuessWidth(policy: ExpertPolicy): number {
  return !policy.pregated && policy.prefetchExperts > 0 ? policy.prefetchExperts : 0;
}

/**
 * Four-byte elements (fp32 or int32) of each activation block of the CUDA MoE decoder: m = batch x
 * maxTokensPerStep token rows; attention's scores, heads x t x (past + t) per sequence (kernels.cu's
 * spw_attention_scratch_floats at the prefill, the largest step); the experts' outputs by rank and gate
 * weights (m x k) and the routed rows' indices (two per routed row); a speculative lookahead's router
 * logits and guesses (m x experts, m x 2 x guesses); Qwen2-MoE's shared expert's SwiGLU scratch; the
 * LM head's rows and logits per sequence.
 */
export function decoderActivationFloats(
  model: ModelSpec,
  policy: ExpertPolicy,
  pass: MoePassShape,
): Record<DecoderActivation, number> {
  const moe = model.moe;
  if (!moe) throw new Error(`${model.name} has no experts`);
  const { batch: B, maxTokensPerStep: t, maxLength } = pass;
  const m = B * t;
  const h = model.hiddenSize;
  const E = moe.numExperts;
  const k = moe.expertsPerToken;
  const qw = qDim(model);
  const kvw = kvDim(model);
  const fs = moe.sharedExperts && moe.sharedExpertFfnSize ? moe.sharedExpertFfnSize : 0;
  const guesses = lookaheadGuessWidth(policy);
  return {
    ids: m,
    x: m * h,
    xn: m * h,
    q: m * qw,
    kNew: m * kvw,
    vNew: m * kvw,
    attn: m * qw,
    proj: m * h,
    logits: m * E,
    nextLogits: m * E,
    normWeight: h,
    bias: Math.max(qw, kvw),
    attentionScratch: model.numHeads * t * maxLength,
    outputs: m * k * h,
    gateWeights: m * k,
    expertRowIndices: 2 * m * k,
    lookaheadLogits: guesses > 0 ? m * E : 0,
    lookaheadExperts: 2 * m * guesses,
    sharedScratch: 2 * m * fs,
    sharedOut: fs > 0 ? m * h : 0,
    sharedGateLogit: fs > 0 ? m : 0,
    last: B * h,
    vocab: B * model.vocabSize,
    nextIds: B,
  };
}

/** The experts' activation blocks (cuda-expert-memory.ts): a layer's routed rows in and out, and the SwiGLU scratch. */
export function expertActivationFloats(
  model: ModelSpec,
  maxRows: number,
): { readonly inputs: number; readonly outputs: number; readonly scratch: number } {
  const h = model.hiddenSize;
  return { inputs: maxRows * h, outputs: maxRows * h, scratch: 2 * maxRows * model.moe!.expertFfnSize };
}

/** A block of the device pool: at least one alignment unit, rounded up to it. */
export const poolBlockBytes = (bytes: number) =>
  Math.max(DEVICE_POOL_ALIGN_BYTES, Math.ceil(bytes / DEVICE_POOL_ALIGN_BYTES) * DEVICE_POOL_ALIGN_BYTES);

/** Per model and attention precision: one layer's non-expert blocks (the planner's search asks often). */
const layerBytesCache = new WeakMap<ModelSpec, Map<ExpertPolicy["attentionBits"], number>>();

/** One decoder layer's non-expert tensors as pool blocks (Qwen2-MoE's shared expert's three matrices one block). */
function layerNonExpertPoolBytes(model: ModelSpec, attentionBits: ExpertPolicy["attentionBits"]): number {
  let byBits = layerBytesCache.get(model);
  if (!byBits) layerBytesCache.set(model, (byBits = new Map()));
  const cached = byBits.get(attentionBits);
  if (cached !== undefined) return cached;
  let layerBytes = 0;
  let shared = 0;
  for (const t of layerWeightTensors(model)) {
    if (isExpertTensor(t.name)) continue;
    const stored = quantizedByteLength(t.params, attentionBits);
    if (t.name.startsWith("mlp.shared_expert.")) shared += stored;
    else layerBytes += poolBlockBytes(stored);
  }
  if (shared > 0) layerBytes += poolBlockBytes(shared);
  byBits.set(attentionBits, layerBytes);
  return layerBytes;
}

export interface CudaMoeDeviceBytes {
  /** Non-expert weights, one block per tensor (Qwen2-MoE's shared expert one block of its three matrices). */
  readonly weightBytes: number;
  /** fp32 keys and values per layer and sequence, maxLength rows (times `kvOnGpu`). */
  readonly kvCacheBytes: number;
  readonly expertCacheBytes: number;
  readonly stagingBytes: number;
  readonly prefetchBytes: number;
  /** The decoder's activation blocks (decoderActivationFloats). */
  readonly decoderActivationBytes: number;
  /** The experts' inputs, outputs and SwiGLU scratch (expertActivationFloats). */
  readonly expertActivationBytes: number;
  readonly totalBytes: number;
}

/**
 * The CUDA backend's device pool for an MoE pass, block by block as it allocates them. `kvOnGpu`: the
 * share of the KV cache on the GPU (1 for every plan the runtime runs; below 1 the planner's estimate).
 * Families the runtime does not load are counted the same way from their tensor list.
 */
export function cudaMoeDeviceBytes(
  model: ModelSpec,
  policy: ExpertPolicy,
  pass: MoePassShape,
  kvOnGpu = 1,
): CudaMoeDeviceBytes {
  const moe = model.moe;
  if (!moe) throw new Error(`${model.name} has no experts`);
  const layerBytes = layerNonExpertPoolBytes(model, policy.attentionBits);
  const h = model.hiddenSize;
  const fp16 = (params: number) => poolBlockBytes(params * 2);
  const weightBytes =
    model.numLayers * layerBytes +
    fp16(model.vocabSize * model.wordEmbedDim) +
    fp16(h) +
    (model.tiedEmbeddings ? 0 : fp16(model.vocabSize * h));
  const kvCacheBytes = kvOnGpu * 2 * model.numLayers * pass.batch * poolBlockBytes(pass.maxLength * kvDim(model) * 4);
  const slotBytes = poolBlockBytes(expertStoredBytes(model, policy.bits));
  const cacheSize = Math.min(policy.cacheSize, moe.numExperts);
  const expertCacheBytes = model.numLayers * cacheSize * slotBytes;
  const stagingBytes = cacheSize < moe.numExperts ? slotBytes : 0;
  const prefetchBytes = prefetchBufferCount(model, policy, pass.batch) * slotBytes;
  const sumBlocks = (floats: Record<string, number>) =>
    Object.values(floats).reduce((sum, n) => sum + poolBlockBytes(n * 4), 0);
  const decoderActivationBytes = sumBlocks(decoderActivationFloats(model, policy, pass));
  const maxRows = pass.batch * pass.maxTokensPerStep * moe.expertsPerToken;
  const expertActivationBytes = sumBlocks(expertActivationFloats(model, maxRows));
  return {
    weightBytes,
    kvCacheBytes,
    expertCacheBytes,
    stagingBytes,
    prefetchBytes,
    decoderActivationBytes,
    expertActivationBytes,
    totalBytes:
      weightBytes +
      kvCacheBytes +
      expertCacheBytes +
      stagingBytes +
      prefetchBytes +
      decoderActivationBytes +
      expertActivationBytes,
  };
}
