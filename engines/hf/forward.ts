/**
 * The transformers forward an offloading engine wraps, by model family, and the families whose
 * modelling code these counts do not describe.
 */
import { MOE_FAMILIES, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { llamaForward } from "./llama-forward.js";
import { optForward } from "./opt-forward.js";
import type { ForwardShape, HfForward } from "./segment.js";

/** Why the counted transformers forward does not describe `model` (undefined when it does). */
export function hfForwardUnsupported(model: ModelSpec): string | undefined {
  if (MOE_FAMILIES.includes(model.family) || model.moe)
    return `${model.family} is a Mixture-of-Experts model: its transformers block routes tokens through a per-expert loop (modeling_${model.family}.py) whose hooks fire only for the experts a batch selects; only dense decoders (opt, llama, mistral, qwen2) are counted`;
  if (model.family === "opt" && model.wordEmbedDim !== model.hiddenSize)
    return `${model.name} projects its ${model.wordEmbedDim}-wide embeddings in and out (project_in/project_out, post-layer-norm OPT-350m layout), which the counted OPT forward does not include`;
  if (model.headDim !== undefined && model.headDim * model.numHeads !== model.hiddenSize)
    return `${model.name} has heads ${model.headDim} wide over hidden size ${model.hiddenSize}; the counted Llama attention assumes head_dim = hidden_size / num_heads`;
  return undefined;
}

/** Why an engine running the counted forward cannot run `model` under `policy` (undefined when it can). */
export function hfEngineUnsupported(model: ModelSpec, policy?: Policy): string | undefined {
  const reason = hfForwardUnsupported(model);
  if (reason) return reason;
  if (policy?.experts && !model.moe)
    return "the policy carries an expert cache policy but the model has no routed experts";
  return undefined;
}

export function hfForward(model: ModelSpec, shape: ForwardShape): HfForward {
  const reason = hfForwardUnsupported(model);
  if (reason) throw new Error(reason);
  return model.family === "opt" ? optForward(model, shape) : llamaForward(model, shape);
}
