/**
 * Reads a Hugging Face config.json (model_type opt, llama, mistral, mixtral) into a ModelSpec.
 */
import { asObject, type FieldContext, fail, readNumber, readOptionalNumber } from "../core/fields.js";
import { checkModelConsistency, type ModelFamily, type ModelSpec } from "../core/model-spec.js";

const SUPPORTED = ["opt", "llama", "mistral", "mixtral"];

export function modelSpecFromHfConfig(data: unknown, source: string, name?: string): ModelSpec {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  const modelType = o.model_type;
  if (typeof modelType !== "string") fail(ctx, "model_type", `missing; expected one of ${SUPPORTED.join(", ")} (is this a Hugging Face config.json?)`);
  if (!SUPPORTED.includes(modelType)) fail(ctx, "model_type", `unsupported model type ${JSON.stringify(modelType)}; supported: ${SUPPORTED.join(", ")}`);
  const family = modelType as ModelFamily;
  const modelName = name ?? (typeof o._name_or_path === "string" && o._name_or_path ? o._name_or_path.replace(/^.*\//, "") : source.replace(/^.*[\\/]/, "").replace(/\.json$/, ""));
  checkDtype(o, ctx);
  if (family === "opt") {
    const hiddenSize = readNumber(o, "hidden_size", ctx, { min: 1, integer: true });
    const numHeads = readNumber(o, "num_attention_heads", ctx, { min: 1, integer: true });
    const act = o.activation_function ?? "relu";
    if (act !== "relu") fail(ctx, "activation_function", `expected "relu" for OPT, got ${JSON.stringify(act)}`);
    if (o.do_layer_norm_before === false) fail(ctx, "do_layer_norm_before", "post-LayerNorm OPT (opt-350m's original layout) is modelled as pre-LayerNorm; costs are the same, set it to true to proceed");
    return checkModelConsistency({
      name: modelName, family, hiddenSize, numHeads, numKvHeads: numHeads,
      numLayers: readNumber(o, "num_hidden_layers", ctx, { min: 1, integer: true }),
      ffnSize: readNumber(o, "ffn_dim", ctx, { min: 1, integer: true }),
      vocabSize: readNumber(o, "vocab_size", ctx, { min: 1, integer: true }),
      maxPositions: readNumber(o, "max_position_embeddings", ctx, { min: 1, integer: true }),
      ffnKind: "relu",
      wordEmbedDim: readOptionalNumber(o, "word_embed_proj_dim", ctx, { min: 1, integer: true }) ?? hiddenSize,
      tiedEmbeddings: o.tie_word_embeddings === undefined ? true : o.tie_word_embeddings === true,
      bytesPerParam: 2,
    }, ctx);
  }
  const hiddenSize = readNumber(o, "hidden_size", ctx, { min: 1, integer: true });
  const numHeads = readNumber(o, "num_attention_heads", ctx, { min: 1, integer: true });
  const act = o.hidden_act ?? "silu";
  if (act !== "silu") fail(ctx, "hidden_act", `expected "silu" for ${family}, got ${JSON.stringify(act)}`);
  const ffnSize = readNumber(o, "intermediate_size", ctx, { min: 1, integer: true });
  const spec: ModelSpec = {
    name: modelName, family, hiddenSize, numHeads,
    numKvHeads: readOptionalNumber(o, "num_key_value_heads", ctx, { min: 1, integer: true }) ?? numHeads,
    numLayers: readNumber(o, "num_hidden_layers", ctx, { min: 1, integer: true }),
    ffnSize,
    vocabSize: readNumber(o, "vocab_size", ctx, { min: 1, integer: true }),
    maxPositions: readNumber(o, "max_position_embeddings", ctx, { min: 1, integer: true }),
    ffnKind: "swiglu",
    wordEmbedDim: hiddenSize,
    tiedEmbeddings: o.tie_word_embeddings === true,
    bytesPerParam: 2,
    ...(family === "mixtral"
      ? { moe: {
          numExperts: readNumber(o, "num_local_experts", ctx, { min: 1, integer: true }),
          expertsPerToken: readNumber(o, "num_experts_per_tok", ctx, { min: 1, integer: true }),
          expertFfnSize: ffnSize,
        } }
      : {}),
  };
  if (o.head_dim !== undefined && o.head_dim !== null) {
    const hd = readNumber(o, "head_dim", ctx, { min: 1, integer: true });
    if (hd * numHeads !== hiddenSize) fail(ctx, "head_dim", `head_dim ${hd} x ${numHeads} heads != hidden_size ${hiddenSize}; decoupled head sizes are not modelled yet`);
  }
  if (spec.moe && spec.moe.expertsPerToken > spec.moe.numExperts) fail(ctx, "num_experts_per_tok", `must be at most num_local_experts (${spec.moe.numExperts})`);
  return checkModelConsistency(spec, ctx);
}

function checkDtype(o: Record<string, unknown>, ctx: FieldContext): void {
  const dtype = o.torch_dtype ?? o.dtype;
  if (dtype === undefined) return;
  if (!["float16", "bfloat16", "float32"].includes(String(dtype))) fail(ctx, "torch_dtype", `expected float16, bfloat16 or float32, got ${JSON.stringify(dtype)}`);
}
