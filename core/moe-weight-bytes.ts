/**
 * Stored bytes of a Mixture-of-Experts model's weights under an expert policy, split the way the policy
 * places them: everything but the routed experts (attention, norms, routers, shared experts at
 * `attentionBits`, embeddings at fp16) resident on the GPU; `cacheSize` routed experts per layer cached on
 * the GPU; the rest of the routed experts at home on `offloadTier`. Routed experts are stored at `bits`.
 */
import { type ExpertPolicy, storedBytes } from "./expert-policy.js";
import { embeddingParams, expertParams, layerParams, type ModelSpec } from "./model-spec.js";

export interface MoeWeightBytes {
  /** Attention, norms, routers, shared experts and embeddings: always on the GPU. */
  readonly nonExpertBytes: number;
  /** Routed experts held in the GPU cache (cacheSize per layer). */
  readonly cachedExpertBytes: number;
  /** Routed experts outside the GPU cache, on `offloadTier`. */
  readonly offloadedExpertBytes: number;
  readonly offloadTier: "cpu" | "disk";
  /** Stored bytes of one routed expert. */
  readonly bytesPerExpert: number;
}

export function moeWeightBytes(model: ModelSpec, experts: ExpertPolicy): MoeWeightBytes {
  const moe = model.moe;
  if (!moe) throw new Error(`${model.name} has no experts`);
  const L = model.numLayers;
  const bytesPerExpert = storedBytes(expertParams(model), experts.bits);
  const nonExpertLayerParams = layerParams(model) - moe.numExperts * expertParams(model);
  return {
    nonExpertBytes: L * storedBytes(nonExpertLayerParams, experts.attentionBits) + embeddingParams(model) * 2,
    cachedExpertBytes: L * experts.cacheSize * bytesPerExpert,
    offloadedExpertBytes: L * (moe.numExperts - experts.cacheSize) * bytesPerExpert,
    offloadTier: experts.offloadTier,
    bytesPerExpert,
  };
}
