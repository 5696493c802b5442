/**
 * What FlexGen allocates for one policy: each sub-layer's tensors by its own midpoint rule, the KV
 * cache home (one device when a tier holds 100%, else FlexGen's mixed device split on whole sequences),
 * the activations' home, and the flags that pick its code paths.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { activationTierOf, cacheSequences, type TierAmounts } from "../../core/realize-placement.js";
import type { Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import type { KernelRates } from "../kernel-rates.js";
import { placeSubLayer, SUB_LAYER_KINDS, type SubLayer, type SubLayerKind } from "./sub-layers.js";

export interface FlexgenSetup {
  readonly model: ModelSpec;
  readonly rates: KernelRates;
  /** GPU batch size, number of GPU batches, prompt and generation lengths. */
  readonly b: number;
  readonly nb: number;
  readonly s: number;
  readonly n: number;
  readonly subLayers: Readonly<Record<SubLayerKind, SubLayer>>;
  /** Sequences of each GPU batch whose KV lives on each tier. */
  readonly cacheSequences: TierAmounts;
  readonly activationHome: Tier;
  readonly compressCache: boolean;
  readonly cpuAttention: boolean;
  readonly overlap: boolean;
  /** Sub-layers FlexGen runs per token: InputEmbed, (SelfAttention, MLP) per decoder layer, OutputEmbed. */
  readonly numSubLayers: number;
}

export function flexgenSetup(model: ModelSpec, policy: Policy, workload: Workload, rates: KernelRates): FlexgenSetup {
  const maxSeqLen = Math.max(model.maxPositions, workload.promptLen + workload.genLen);
  const settings = { compressWeight: policy.compressWeight, pinWeight: policy.pinWeight };
  const subLayers = Object.fromEntries(
    SUB_LAYER_KINDS.map((kind) => [kind, placeSubLayer(model, kind, policy.weights, settings, maxSeqLen)]),
  ) as Record<SubLayerKind, SubLayer>;
  return {
    model,
    rates,
    b: policy.gpuBatchSize,
    nb: policy.numGpuBatches,
    s: workload.promptLen,
    n: workload.genLen,
    subLayers,
    cacheSequences: cacheSequences(policy.gpuBatchSize, policy.cache),
    activationHome: activationTierOf(policy.activations),
    compressCache: policy.compressCache,
    cpuAttention: policy.cpuAttention,
    overlap: policy.overlap,
    numSubLayers: 2 * model.numLayers + 2,
  };
}

/** Which sub-layer runs at position j of FlexGen's layer list. */
export function subLayerKindAt(setup: FlexgenSetup, j: number): SubLayerKind {
  if (j === 0) return "inputEmbed";
  if (j === setup.numSubLayers - 1) return "outputEmbed";
  return j % 2 === 1 ? "attention" : "mlp";
}
