/**
 * What the MoE runner places in device memory, block by block, and so the exact arena capacity it
 * needs: the non-expert weights (one block per tensor, decoder-layer tensors stored at attentionBits,
 * embeddings, final norm and LM head fp16: quantized-weights.ts), the KV cache (fp32, per layer and
 * sequence), `cacheSize` expert slots per layer (each exactly one expert stored at `bits`), one staging block (for an expert fetched but not cached:
 * a miss with a 0-slot or static cache, or any miss in prefill, which streams experts without touching
 * the caches) and the prefetch buffers. The arena rounds every block up to 64 bytes; so does this.
 * Activations (a few KiB at these sizes) live in ordinary memory and are not counted.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { isExpertTensor, kvDim, type ModelSpec } from "../../core/model-spec.js";
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
