/**
 * Reads a Hugging Face config.json (model_type opt, llama, mistral, qwen2, mixtral, qwen2_moe, olmoe,
 * qwen3_moe) into a ModelSpec. MoE configs must be MoE in every layer: a config that interleaves dense
 * layers (decoder_sparse_step other than 1, or a non-empty mlp_only_layers) is rejected, since a
 * per-layer dense/MoE mix is not modelled.
 */
import { basename, dirname, resolve } from "node:path";
import {
  asObject,
  checkName,
  type FieldContext,
  fail,
  readBoundedNumber,
  readNumber,
  readOptionalNumber,
} from "../core/fields.js";
import { describeValue } from "../core/input-error.js";
import {
  checkModelConsistency,
  MODEL_FAMILIES,
  type ModelFamily,
  type ModelSpec,
  type MoeSpec,
} from "../core/model-spec.js";
import {
  MAX_EXPERTS,
  MAX_FFN_SIZE,
  MAX_HEADS,
  MAX_HIDDEN_SIZE,
  MAX_LAYERS,
  MAX_POSITIONS,
  MAX_VOCAB_SIZE,
} from "../core/physical-bounds.js";

/** Every family is named after the Hugging Face model_type whose layout it follows. */
const SUPPORTED: readonly string[] = MODEL_FAMILIES;

/**
 * A model's name from its config's path: the file's name without `.json`, or for a file called
 * `config.json` (every Hugging Face checkpoint's) the folder it is in; "model" for standard input.
 */
export function nameFromPath(source: string): string {
  if (source === "<stdin>" || source === "-") return "model";
  const base = basename(source).replace(/\.json$/i, "");
  if (base.toLowerCase() !== "config") return base;
  const folder = basename(dirname(resolve(source)));
  return folder && folder !== "/" ? folder : "model";
}

export function modelSpecFromHfConfig(data: unknown, source: string, name?: string): ModelSpec {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  const modelType = o.model_type;
  if (typeof modelType !== "string")
    fail(ctx, "model_type", `missing; expected one of ${SUPPORTED.join(", ")} (is this a Hugging Face config.json?)`);
  if (!SUPPORTED.includes(modelType))
    fail(ctx, "model_type", `unsupported model type ${JSON.stringify(modelType)}; supported: ${SUPPORTED.join(", ")}`);
  const family = modelType as ModelFamily;
  const modelName =
    name ??
    (typeof o._name_or_path === "string" && o._name_or_path
      ? o._name_or_path.replace(/^.*\//, "")
      : nameFromPath(source));
  checkName(
    modelName,
    ctx,
    name !== undefined
      ? "name"
      : typeof o._name_or_path === "string" && o._name_or_path
        ? "_name_or_path"
        : "name (from the file's path)",
  );
  checkDtype(o, ctx);
  const hiddenSize = readBoundedNumber(
    o,
    "hidden_size",
    ctx,
    { min: 1, integer: true },
    { min: 1, max: MAX_HIDDEN_SIZE },
  );
  const numHeads = readBoundedNumber(
    o,
    "num_attention_heads",
    ctx,
    { min: 1, integer: true },
    { min: 1, max: MAX_HEADS },
  );
  if (family === "opt") {
    const act = o.activation_function ?? "relu";
    if (act !== "relu") fail(ctx, "activation_function", `expected "relu" for OPT, got ${JSON.stringify(act)}`);
    if (o.do_layer_norm_before === false)
      fail(
        ctx,
        "do_layer_norm_before",
        "post-LayerNorm OPT (opt-350m's original layout) is modelled as pre-LayerNorm; costs are the same, set it to true to proceed",
      );
    return checkModelConsistency(
      {
        name: modelName,
        family,
        hiddenSize,
        numHeads,
        numKvHeads: numHeads,
        numLayers: readBoundedNumber(
          o,
          "num_hidden_layers",
          ctx,
          { min: 1, integer: true },
          { min: 1, max: MAX_LAYERS },
        ),
        ffnSize: readBoundedNumber(o, "ffn_dim", ctx, { min: 1, integer: true }, { min: 1, max: MAX_FFN_SIZE }),
        vocabSize: readBoundedNumber(o, "vocab_size", ctx, { min: 1, integer: true }, { min: 1, max: MAX_VOCAB_SIZE }),
        maxPositions: readBoundedNumber(
          o,
          "max_position_embeddings",
          ctx,
          { min: 1, integer: true },
          { min: 1, max: MAX_POSITIONS },
        ),
        ffnKind: "relu",
        wordEmbedDim: readOptionalNumber(o, "word_embed_proj_dim", ctx, { min: 1, integer: true }) ?? hiddenSize,
        tiedEmbeddings: o.tie_word_embeddings === undefined ? true : o.tie_word_embeddings === true,
        bytesPerParam: 2,
      },
      ctx,
    );
  }
  const act = o.hidden_act ?? "silu";
  if (act !== "silu") fail(ctx, "hidden_act", `expected "silu" for ${family}, got ${JSON.stringify(act)}`);
  const ffnSize = readBoundedNumber(
    o,
    "intermediate_size",
    ctx,
    { min: 1, integer: true },
    { min: 1, max: MAX_FFN_SIZE },
  );
  // head_dim: kept only when heads are not hidden_size / num_attention_heads wide (Qwen3-30B-A3B).
  let headDim: number | undefined;
  if (o.head_dim !== undefined && o.head_dim !== null) {
    const hd = readBoundedNumber(o, "head_dim", ctx, { min: 1, integer: true }, { min: 1, max: MAX_HIDDEN_SIZE });
    if (hd * numHeads !== hiddenSize) headDim = hd;
  }
  if (family === "qwen2") checkDenseQwen2(o, ctx);
  const moe = readMoe(o, family, ffnSize, ctx);
  const spec: ModelSpec = {
    name: modelName,
    family,
    hiddenSize,
    numHeads,
    ...(headDim !== undefined ? { headDim } : {}),
    numKvHeads: readOptionalNumber(o, "num_key_value_heads", ctx, { min: 1, integer: true }) ?? numHeads,
    numLayers: readBoundedNumber(o, "num_hidden_layers", ctx, { min: 1, integer: true }, { min: 1, max: MAX_LAYERS }),
    ffnSize,
    vocabSize: readBoundedNumber(o, "vocab_size", ctx, { min: 1, integer: true }, { min: 1, max: MAX_VOCAB_SIZE }),
    maxPositions: readBoundedNumber(
      o,
      "max_position_embeddings",
      ctx,
      { min: 1, integer: true },
      { min: 1, max: MAX_POSITIONS },
    ),
    ffnKind: "swiglu",
    wordEmbedDim: hiddenSize,
    tiedEmbeddings: o.tie_word_embeddings === true,
    bytesPerParam: 2,
    ...(moe ? { moe } : {}),
  };
  return checkModelConsistency(spec, ctx);
}

/** The MoE fields of a mixtral, qwen2_moe, olmoe or qwen3_moe config; undefined for dense types. */
function readMoe(
  o: Record<string, unknown>,
  family: ModelFamily,
  ffnSize: number,
  ctx: FieldContext,
): MoeSpec | undefined {
  if (family !== "mixtral" && family !== "qwen2_moe" && family !== "olmoe" && family !== "qwen3_moe") return undefined;
  const expertsKey = family === "mixtral" ? "num_local_experts" : "num_experts";
  const numExperts = readBoundedNumber(o, expertsKey, ctx, { min: 1, integer: true }, { min: 1, max: MAX_EXPERTS });
  const expertsPerToken = readBoundedNumber(
    o,
    "num_experts_per_tok",
    ctx,
    { min: 1, integer: true },
    { min: 1, max: MAX_EXPERTS },
  );
  if (expertsPerToken > numExperts) fail(ctx, "num_experts_per_tok", `must be at most ${expertsKey} (${numExperts})`);
  if (family === "qwen2_moe" || family === "qwen3_moe") rejectDenseLayers(o, ctx);
  // Biases the tensor layout does not carry: Qwen2-MoE always has q/k/v biases, OLMoE and Qwen3-MoE none.
  if (family === "qwen2_moe" && o.qkv_bias === false)
    fail(ctx, "qkv_bias", "false is not modelled: Qwen2-MoE checkpoints have q/k/v biases");
  if ((family === "olmoe" || family === "qwen3_moe") && o.attention_bias === true)
    fail(ctx, "attention_bias", `true is not modelled: ${family} checkpoints have no attention biases`);
  // Mixtral and OLMoE experts are intermediate_size wide; the Qwen families have a separate moe_intermediate_size.
  const expertFfnSize =
    family === "mixtral" || family === "olmoe"
      ? ffnSize
      : readBoundedNumber(o, "moe_intermediate_size", ctx, { min: 1, integer: true }, { min: 1, max: MAX_FFN_SIZE });
  if (family !== "qwen2_moe") return { numExperts, expertsPerToken, expertFfnSize };
  const shared = readNumber(o, "shared_expert_intermediate_size", ctx, { min: 1, integer: true });
  return { numExperts, expertsPerToken, expertFfnSize, sharedExperts: 1, sharedExpertFfnSize: shared };
}

/**
 * Dense Qwen2 / Qwen2.5: the Llama layout with q/k/v biases. Sliding-window attention in some layers
 * (use_sliding_window true, off in every released checkpoint) would change the KV cache per layer, which
 * is not modelled, so it is refused.
 */
function checkDenseQwen2(o: Record<string, unknown>, ctx: FieldContext): void {
  if (o.use_sliding_window === true)
    fail(
      ctx,
      "use_sliding_window",
      "true is not modelled (a per-layer sliding-window KV cache); released Qwen2 checkpoints set it to false",
    );
}

/** Qwen MoE configs can make some layers dense; only every-layer MoE is modelled. */
function rejectDenseLayers(o: Record<string, unknown>, ctx: FieldContext): void {
  const step = readOptionalNumber(o, "decoder_sparse_step", ctx, { min: 1, integer: true });
  if (step !== undefined && step !== 1)
    fail(
      ctx,
      "decoder_sparse_step",
      `${step} makes only every ${step}th layer MoE; only configs whose every layer is MoE (1) are modelled, not a per-layer dense/MoE mix`,
    );
  const only = o.mlp_only_layers;
  if (only === undefined || only === null) return;
  if (!Array.isArray(only))
    fail(ctx, "mlp_only_layers", `expected a list of layer indices, got ${describeValue(only)}`);
  if (only.length > 0)
    fail(
      ctx,
      "mlp_only_layers",
      `layers ${JSON.stringify(only)} are dense; only configs whose every layer is MoE (an empty list) are modelled, not a per-layer dense/MoE mix`,
    );
}

function checkDtype(o: Record<string, unknown>, ctx: FieldContext): void {
  const dtype = o.torch_dtype ?? o.dtype;
  if (dtype === undefined) return;
  if (!["float16", "bfloat16", "float32"].includes(String(dtype)))
    fail(ctx, "torch_dtype", `expected float16, bfloat16 or float32, got ${JSON.stringify(dtype)}`);
}
