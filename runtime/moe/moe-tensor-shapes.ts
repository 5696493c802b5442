/**
 * The tensors of a Mixture-of-Experts checkpoint in Hugging Face's layout, with the shapes its config
 * implies ([out, in] for every nn.Linear weight), for the families the CPU runtime runs:
 *
 * - Mixtral (modeling_mixtral.py): `block_sparse_moe.gate` (the router, [experts, hidden]) and
 *   `block_sparse_moe.experts.N.w1` (gate), `w3` (up), `w2` (down); no attention biases;
 * - Qwen2-MoE (modeling_qwen2_moe.py): q/k/v projections with biases, `mlp.gate` (the router),
 *   `mlp.experts.N.gate_proj / up_proj / down_proj`, one always-active `mlp.shared_expert` SwiGLU of
 *   shared_expert_intermediate_size and its sigmoid gate `mlp.shared_expert_gate` ([1, hidden]).
 *
 * Names per layer follow core/model-spec.ts's layerWeightTensors, so planner, runtime and checkpoint
 * agree on what a layer holds.
 */
import { kvDim, layerWeightTensors, type ModelSpec, qDim } from "../../core/model-spec.js";
import type { RequiredTensor } from "../checkpoint-files.js";
import { GATE_TENSOR, layerRouterTensors, PRE_GATE_TENSOR } from "./pre-gated.js";

/** The MoE families whose checkpoints the CPU runtime loads and runs. */
export const RUNNABLE_MOE_FAMILIES = ["mixtral", "qwen2_moe"] as const;
export type RunnableMoeFamily = (typeof RUNNABLE_MOE_FAMILIES)[number];

export function isRunnableMoe(model: ModelSpec): model is ModelSpec & { family: RunnableMoeFamily } {
  return model.moe !== undefined && (RUNNABLE_MOE_FAMILIES as readonly string[]).includes(model.family);
}

function checkRunnable(model: ModelSpec): void {
  if (!isRunnableMoe(model))
    throw new Error(
      `${model.name} is a ${model.family} model; the MoE runtime runs ${RUNNABLE_MOE_FAMILIES.join(" and ")} checkpoints`,
    );
}

/** The module holding a layer's router and experts: Mixtral's `block_sparse_moe`, Qwen2-MoE's `mlp`. */
function moePrefix(model: ModelSpec): string {
  return model.family === "mixtral" ? "block_sparse_moe" : "mlp";
}

/** Layer `layer`'s router weight ([experts, hidden]). */
export function routerTensorName(model: ModelSpec, layer: number): string {
  return `model.layers.${layer}.${moePrefix(model)}.gate.weight`;
}

/**
 * One routed expert's three matrices in the order the runtime packs them: gate [ffn, hidden], up
 * [ffn, hidden], down [hidden, ffn] (Mixtral's w1, w3, w2).
 */
export function expertTensorNames(model: ModelSpec, layer: number, expert: number): [string, string, string] {
  const p = `model.layers.${layer}.${moePrefix(model)}.experts.${expert}.`;
  return model.family === "mixtral"
    ? [`${p}w1.weight`, `${p}w3.weight`, `${p}w2.weight`]
    : [`${p}gate_proj.weight`, `${p}up_proj.weight`, `${p}down_proj.weight`];
}

/** The shape of a layer tensor (its name relative to the layer, as layerWeightTensors gives it). */
function layerTensorShape(model: ModelSpec, name: string): number[] {
  const h = model.hiddenSize;
  const moe = model.moe!;
  const fe = moe.expertFfnSize;
  const fs = moe.sharedExpertFfnSize ?? 0;
  if (name.endsWith("layernorm.weight")) return [h];
  if (name === "self_attn.q_proj.weight") return [qDim(model), h];
  if (name === "self_attn.q_proj.bias") return [qDim(model)];
  if (name === "self_attn.k_proj.weight" || name === "self_attn.v_proj.weight") return [kvDim(model), h];
  if (name === "self_attn.k_proj.bias" || name === "self_attn.v_proj.bias") return [kvDim(model)];
  if (name === "self_attn.o_proj.weight") return [h, qDim(model)];
  if (name === `${moePrefix(model)}.gate.weight` || name === PRE_GATE_TENSOR) return [moe.numExperts, h];
  if (name === "mlp.shared_expert_gate.weight") return [1, h];
  if (/^mlp\.shared_expert\.(gate|up)_proj\.weight$/.test(name)) return [fs, h];
  if (name === "mlp.shared_expert.down_proj.weight") return [h, fs];
  if (/\.experts\.\d+\.(w1|w3|gate_proj|up_proj)\.weight$/.test(name)) return [fe, h];
  if (/\.experts\.\d+\.(w2|down_proj)\.weight$/.test(name)) return [h, fe];
  throw new Error(`no ${model.family} shape for layer tensor ${name}`);
}

/**
 * Every tensor the checkpoint must hold, in file order: embeddings, each layer (layerWeightTensors
 * order; a pre-gated Mixtral's routers as pre-gated.ts lays them out), final norm, and the LM head
 * unless it is tied to the embeddings.
 */
export function moeTensorShapes(model: ModelSpec, preGated = false): RequiredTensor[] {
  checkRunnable(model);
  if (preGated && model.family !== "mixtral")
    throw new Error(`${model.name}: pre-gated checkpoints are Mixtral-family`);
  const shapes: RequiredTensor[] = [{ name: "model.embed_tokens.weight", shape: [model.vocabSize, model.hiddenSize] }];
  for (let l = 0; l < model.numLayers; l++) {
    for (const t of layerWeightTensors(model)) {
      const names = t.name === GATE_TENSOR ? layerRouterTensors(l, model.numLayers, preGated) : [t.name];
      for (const name of names)
        shapes.push({ name: `model.layers.${l}.${name}`, shape: layerTensorShape(model, name) });
    }
  }
  shapes.push({ name: "model.norm.weight", shape: [model.hiddenSize] });
  if (!model.tiedEmbeddings) shapes.push({ name: "lm_head.weight", shape: [model.vocabSize, model.hiddenSize] });
  return shapes;
}
