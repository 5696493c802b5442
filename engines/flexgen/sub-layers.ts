/**
 * FlexGen's OPT model as its runtime sees it (flexgen/flex_opt.py `OptLM.__init__` with sep_layer=True,
 * the default): InputEmbed, then SelfAttention and MLP of every decoder layer as separate "layers", then
 * OutputEmbed; each places its own weight tensors by the midpoint rule (`init_weight_list`), vectors
 * always pinned and never compressed, matrices pinned per --pin-weight and compressed per
 * --compress-weight.
 */
import { compressedBytes } from "../../core/compression.js";
import { layerWeightTensors, type ModelSpec } from "../../core/model-spec.js";
import type { Placement } from "../../core/policy.js";
import { placeTensors } from "../../core/realize-placement.js";
import type { Tier } from "../../core/tiers.js";

export const SUB_LAYER_KINDS = ["inputEmbed", "attention", "mlp", "outputEmbed"] as const;
export type SubLayerKind = (typeof SUB_LAYER_KINDS)[number];

/** One weight tensor where FlexGen's init_weight_list puts it. */
export interface PlacedTensor {
  readonly name: string;
  readonly values: number;
  readonly matrix: boolean;
  readonly tier: Tier;
  /** Bytes as stored (4-bit group-64 data plus fp16 scale and min for compressed matrices). */
  readonly storedBytes: number;
  /** Allocated in page-locked memory (vectors always; matrices per --pin-weight). */
  readonly pinned: boolean;
  readonly compressed: boolean;
}

export interface SubLayer {
  readonly kind: SubLayerKind;
  readonly tensors: readonly PlacedTensor[];
}

interface TensorSpec {
  readonly name: string;
  readonly values: number;
}

/** Declaration order of each sub-layer's weight_specs (flex_opt.py InputEmbed/SelfAttention/MLP/OutputEmbed.init_weight). */
function tensorSpecs(model: ModelSpec, kind: SubLayerKind, maxSeqLen: number): TensorSpec[] {
  const h = model.hiddenSize;
  const v = model.vocabSize;
  switch (kind) {
    case "inputEmbed":
      // w_token (vocab, h), w_pos (max_seq_len + 2, h): OPT's learned positions are offset by 2.
      return [
        { name: "embed_tokens.weight", values: v * h },
        { name: "embed_positions.weight", values: (maxSeqLen + 2) * h },
      ];
    case "outputEmbed":
      return [
        { name: "final_layer_norm.weight", values: h },
        { name: "final_layer_norm.bias", values: h },
        { name: "embed_tokens.weight", values: v * h },
      ];
    case "attention":
    case "mlp":
      return layerWeightTensors(model)
        .filter((t) => t.part === (kind === "attention" ? "attention" : "mlp"))
        .map((t) => ({ name: t.name, values: t.params }));
  }
}

const isMatrixName = (name: string, values: number, h: number) => name.endsWith(".weight") && values > h;

export interface WeightSettings {
  readonly compressWeight: boolean;
  readonly pinWeight: boolean;
}

/** The sub-layer's tensors placed by FlexGen's midpoint rule against `weights`. */
export function placeSubLayer(
  model: ModelSpec,
  kind: SubLayerKind,
  weights: Placement,
  settings: WeightSettings,
  maxSeqLen: number,
): SubLayer {
  const specs = tensorSpecs(model, kind, maxSeqLen).map((t) => ({ ...t, params: t.values }));
  const tensors = placeTensors(specs, weights).map(({ tensor, tier }): PlacedTensor => {
    const matrix = isMatrixName(tensor.name, tensor.values, model.hiddenSize);
    const compressed = matrix && settings.compressWeight;
    return {
      name: tensor.name,
      values: tensor.values,
      matrix,
      tier,
      storedBytes: compressed ? compressedBytes(tensor.values) : tensor.values * model.bytesPerParam,
      pinned: matrix ? settings.pinWeight : true,
      compressed,
    };
  });
  return { kind, tensors };
}

export function bytesOnTier(subLayer: SubLayer, tier: Tier): number {
  return subLayer.tensors.filter((t) => t.tier === tier).reduce((a, t) => a + t.storedBytes, 0);
}
