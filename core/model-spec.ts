/**
 * Model specification: the architecture numbers every cost model needs. One definition for dense
 * decoders (OPT, Llama, Mistral) and MoE decoders (Mixtral, Qwen1.5-MoE, OLMoE, Qwen3-MoE): `moe` is
 * present only for the latter.
 *
 * Families are named after the Hugging Face `model_type` whose checkpoint layout (tensor names, biases,
 * q/k norms) they follow: "qwen2" (dense Qwen2 / Qwen2.5: the Llama layout plus q/k/v biases), "qwen2_moe" (Qwen1.5-MoE / Qwen2-MoE: q/k/v biases, one sigmoid-gated shared
 * expert), "olmoe" (full-width q_norm and k_norm), "qwen3_moe" (per-head q_norm and k_norm, no biases,
 * head_dim independent of hidden_size). Every MoE family here is MoE in every layer; models that mix
 * dense and MoE layers (DeepSeek's first dense layers, decoder_sparse_step > 1) are not modelled.
 */
import { checkName, checkNumber, type FieldContext, fail } from "./fields.js";
import {
  MAX_BYTES_PER_PARAM,
  MAX_EXPERTS,
  MAX_FFN_SIZE,
  MAX_HEADS,
  MAX_HIDDEN_SIZE,
  MAX_LAYERS,
  MAX_POSITIONS,
  MAX_TOTAL_PARAMS,
  MAX_VOCAB_SIZE,
} from "./physical-bounds.js";

export const MODEL_FAMILIES = [
  "opt",
  "llama",
  "mistral",
  "qwen2",
  "mixtral",
  "qwen2_moe",
  "olmoe",
  "qwen3_moe",
] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/** Families whose checkpoints are Mixture-of-Experts in every layer (they need `moe`). */
export const MOE_FAMILIES: readonly ModelFamily[] = ["mixtral", "qwen2_moe", "olmoe", "qwen3_moe"];

export interface MoeSpec {
  /** Routed experts per layer. */
  readonly numExperts: number;
  /** Routed experts each token goes to (top-k). */
  readonly expertsPerToken: number;
  /** Intermediate size of one routed expert's SwiGLU FFN (config `moe_intermediate_size`; Mixtral and OLMoE: `intermediate_size`). */
  readonly expertFfnSize: number;
  /** Always-active shared experts per layer (Qwen1.5-MoE: 1, gated by a sigmoid `shared_expert_gate` of h params). Absent: none. */
  readonly sharedExperts?: number;
  /** Intermediate size of one shared expert's SwiGLU FFN (Qwen1.5-MoE: 5632). Present exactly when sharedExperts is. */
  readonly sharedExpertFfnSize?: number;
}

export interface ModelSpec {
  readonly name: string;
  readonly family: ModelFamily;
  readonly numLayers: number;
  readonly hiddenSize: number;
  /**
   * Intermediate size of the dense FFN (config `intermediate_size`). For MoE models, whose every layer
   * is MoE, it describes no layer of the model: the routed experts' size is moe.expertFfnSize (equal to
   * it for Mixtral and OLMoE; Qwen1.5-MoE 5632 vs 1408; Qwen3-30B-A3B 6144 vs 768).
   */
  readonly ffnSize: number;
  readonly numHeads: number;
  /**
   * Width of one attention head when it is not hiddenSize / numHeads (Qwen3-30B-A3B: 128 with 32 heads
   * and hidden 2048, so q_proj is 2048 x 4096). Absent: hiddenSize / numHeads.
   */
  readonly headDim?: number;
  /** Key/value heads (grouped-query attention); equals numHeads for multi-head attention. */
  readonly numKvHeads: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** "relu" MLP (OPT: fc1, fc2) or "swiglu" gated MLP (Llama family: gate, up, down). */
  readonly ffnKind: "relu" | "swiglu";
  /** Token embedding width when it differs from hiddenSize (OPT-350m projects 512 -> 1024). */
  readonly wordEmbedDim: number;
  readonly tiedEmbeddings: boolean;
  /** Bytes per weight value as stored uncompressed (2 for fp16/bf16). */
  readonly bytesPerParam: number;
  readonly moe?: MoeSpec;
}

export function headDim(model: ModelSpec): number {
  return model.headDim ?? model.hiddenSize / model.numHeads;
}

/** Width of Q and of the attention output per token: numHeads * headDim (hiddenSize unless headDim is decoupled). */
export function qDim(model: ModelSpec): number {
  return model.numHeads * headDim(model);
}

/** Width of K (and of V) per token: numKvHeads * headDim. */
export function kvDim(model: ModelSpec): number {
  return model.numKvHeads * headDim(model);
}

/** One weight tensor of a transformer layer, in the order the runtime declares (and places) them. */
export interface WeightTensor {
  readonly name: string;
  readonly params: number;
  /** Which sub-layer it belongs to; FlexGen places attention and MLP weights as separate layers. */
  readonly part: "attention" | "mlp";
}

/** The weight tensors of one decoder layer, in declaration order (FlexGen's order for OPT). */
export function layerWeightTensors(model: ModelSpec): WeightTensor[] {
  const h = model.hiddenSize;
  const kv = kvDim(model);
  const f = model.ffnSize;
  if (model.family === "opt") {
    // An OPT checkpoint has q = kv = h; a tensor-parallel shard's (planner/pipeline/tensor-parallel.ts) are h / T.
    const q = qDim(model);
    return [
      { name: "q_proj.weight", params: h * q, part: "attention" },
      { name: "q_proj.bias", params: q, part: "attention" },
      { name: "k_proj.weight", params: h * kv, part: "attention" },
      { name: "k_proj.bias", params: kv, part: "attention" },
      { name: "v_proj.weight", params: h * kv, part: "attention" },
      { name: "v_proj.bias", params: kv, part: "attention" },
      { name: "out_proj.weight", params: q * h, part: "attention" },
      { name: "out_proj.bias", params: h, part: "attention" },
      { name: "self_attn_layer_norm.weight", params: h, part: "attention" },
      { name: "self_attn_layer_norm.bias", params: h, part: "attention" },
      { name: "fc1.weight", params: h * f, part: "mlp" },
      { name: "fc1.bias", params: f, part: "mlp" },
      { name: "fc2.weight", params: f * h, part: "mlp" },
      { name: "fc2.bias", params: h, part: "mlp" },
      { name: "final_layer_norm.weight", params: h, part: "mlp" },
      { name: "final_layer_norm.bias", params: h, part: "mlp" },
    ];
  }
  const q = qDim(model);
  const qwen2 = hasQkvBiases(model);
  const attention: WeightTensor[] = [
    { name: "input_layernorm.weight", params: h, part: "attention" },
    { name: "self_attn.q_proj.weight", params: h * q, part: "attention" },
    ...(qwen2 ? [{ name: "self_attn.q_proj.bias", params: q, part: "attention" } as const] : []),
    { name: "self_attn.k_proj.weight", params: h * kv, part: "attention" },
    ...(qwen2 ? [{ name: "self_attn.k_proj.bias", params: kv, part: "attention" } as const] : []),
    { name: "self_attn.v_proj.weight", params: h * kv, part: "attention" },
    ...(qwen2 ? [{ name: "self_attn.v_proj.bias", params: kv, part: "attention" } as const] : []),
    { name: "self_attn.o_proj.weight", params: q * h, part: "attention" },
  ];
  // OLMoE normalises the whole q and k projections; Qwen3 normalises each head (one head_dim weight shared by all heads).
  if (model.family === "olmoe")
    attention.push(
      { name: "self_attn.q_norm.weight", params: q, part: "attention" },
      { name: "self_attn.k_norm.weight", params: kv, part: "attention" },
    );
  if (model.family === "qwen3_moe")
    attention.push(
      { name: "self_attn.q_norm.weight", params: headDim(model), part: "attention" },
      { name: "self_attn.k_norm.weight", params: headDim(model), part: "attention" },
    );
  const mlp: WeightTensor[] = [{ name: "post_attention_layernorm.weight", params: h, part: "mlp" }];
  const moe = model.moe;
  if (moe) {
    const fe = moe.expertFfnSize;
    const mixtralNames = model.family !== "qwen2_moe" && model.family !== "olmoe" && model.family !== "qwen3_moe";
    const prefix = mixtralNames ? "block_sparse_moe" : "mlp";
    // Declaration order; every matrix is h x expertFfnSize (Mixtral: w1 gate, w2 down, w3 up).
    const matrices = mixtralNames ? ["w1", "w2", "w3"] : ["gate_proj", "up_proj", "down_proj"];
    mlp.push({ name: `${prefix}.gate.weight`, params: h * moe.numExperts, part: "mlp" });
    for (let e = 0; e < moe.numExperts; e++) {
      for (const m of matrices) mlp.push({ name: `${prefix}.experts.${e}.${m}.weight`, params: h * fe, part: "mlp" });
    }
    if (moe.sharedExperts && moe.sharedExpertFfnSize) {
      // Only qwen2_moe has shared experts (checked): one `shared_expert` MLP and its sigmoid gate.
      const fs = moe.sharedExpertFfnSize;
      mlp.push(
        { name: "mlp.shared_expert.gate_proj.weight", params: h * fs, part: "mlp" },
        { name: "mlp.shared_expert.up_proj.weight", params: h * fs, part: "mlp" },
        { name: "mlp.shared_expert.down_proj.weight", params: fs * h, part: "mlp" },
        { name: "mlp.shared_expert_gate.weight", params: h, part: "mlp" },
      );
    }
  } else {
    mlp.push(
      { name: "mlp.gate_proj.weight", params: h * f, part: "mlp" },
      { name: "mlp.up_proj.weight", params: h * f, part: "mlp" },
      { name: "mlp.down_proj.weight", params: f * h, part: "mlp" },
    );
  }
  return [...attention, ...mlp];
}

/** Whether a layer tensor (a name from layerWeightTensors) belongs to a routed expert; shared experts, routers and attention do not. */
export function isExpertTensor(name: string): boolean {
  return /(^|\.)experts\.\d+\./.test(name);
}

/** Params of one routed expert (SwiGLU: gate, up and down, h x expertFfnSize each); 0 for a dense model. */
export function expertParams(model: ModelSpec): number {
  return model.moe ? 3 * model.hiddenSize * model.moe.expertFfnSize : 0;
}

/** Params of one layer's shared experts (always active); 0 when it has none. */
export function sharedExpertParams(model: ModelSpec): number {
  const moe = model.moe;
  return moe?.sharedExperts && moe.sharedExpertFfnSize
    ? moe.sharedExperts * 3 * model.hiddenSize * moe.sharedExpertFfnSize
    : 0;
}

export function layerParams(model: ModelSpec): number {
  return layerWeightTensors(model).reduce((sum, t) => sum + t.params, 0);
}

/** Parameters outside the decoder layers: embeddings, positions, final norm, LM head if untied. */
export function embeddingParams(model: ModelSpec): number {
  const h = model.hiddenSize;
  let params = model.vocabSize * model.wordEmbedDim;
  if (model.family === "opt") {
    params += (model.maxPositions + 2) * h; // learned positions, offset 2
    params += 2 * h; // final layer norm
    if (model.wordEmbedDim !== h) params += 2 * model.wordEmbedDim * h; // project_in and project_out
  } else {
    params += h; // final RMSNorm
  }
  if (!model.tiedEmbeddings) params += model.vocabSize * h;
  return params;
}

export function totalParams(model: ModelSpec): number {
  return model.numLayers * layerParams(model) + embeddingParams(model);
}

/** Parameters used per token: everything but the routed experts a token is not sent to (shared experts, routers and attention all count). */
export function activeParams(model: ModelSpec): number {
  if (!model.moe) return totalParams(model);
  return (
    totalParams(model) - model.numLayers * (model.moe.numExperts - model.moe.expertsPerToken) * expertParams(model)
  );
}

export function totalWeightBytes(model: ModelSpec): number {
  return totalParams(model) * model.bytesPerParam;
}

/** The physically meaningful range of each shape field (core/physical-bounds.ts), for every way a spec can arrive. */
const SHAPE_MAXIMA: readonly (readonly [keyof ModelSpec & string, number])[] = [
  ["numLayers", MAX_LAYERS],
  ["hiddenSize", MAX_HIDDEN_SIZE],
  ["ffnSize", MAX_FFN_SIZE],
  ["numHeads", MAX_HEADS],
  ["headDim", MAX_HIDDEN_SIZE],
  ["numKvHeads", MAX_HEADS],
  ["vocabSize", MAX_VOCAB_SIZE],
  ["maxPositions", MAX_POSITIONS],
  ["wordEmbedDim", MAX_HIDDEN_SIZE],
];
const MOE_MAXIMA: readonly (readonly [keyof MoeSpec & string, number])[] = [
  ["numExperts", MAX_EXPERTS],
  ["expertsPerToken", MAX_EXPERTS],
  ["expertFfnSize", MAX_FFN_SIZE],
  ["sharedExperts", MAX_EXPERTS],
  ["sharedExpertFfnSize", MAX_FFN_SIZE],
];

function checkModelRanges(spec: ModelSpec, ctx: FieldContext): void {
  for (const [key, max] of SHAPE_MAXIMA) {
    const value = spec[key] as number | undefined;
    if (value !== undefined) checkNumber(value, ctx, key, { min: 1, max, integer: true });
  }
  checkNumber(spec.bytesPerParam, ctx, "bytesPerParam", { greaterThan: 0, max: MAX_BYTES_PER_PARAM });
  const moe = spec.moe;
  if (moe)
    for (const [key, max] of MOE_MAXIMA) {
      const value = moe[key];
      if (value !== undefined) checkNumber(value, ctx, `moe.${key}`, { min: 1, max, integer: true });
    }
  const params = totalParams(spec);
  if (!(params <= MAX_TOTAL_PARAMS))
    fail(
      ctx,
      "numLayers",
      `the model would have ${params.toExponential(2)} parameters; expected at most ${MAX_TOTAL_PARAMS.toExponential(0)} (check numLayers, hiddenSize, ffnSize, vocabSize)`,
    );
}

/** Cross-field checks shared by every way a model spec can arrive. */
export function checkModelConsistency(spec: ModelSpec, ctx: FieldContext): ModelSpec {
  checkName(spec.name, ctx, "name");
  checkModelRanges(spec, ctx);
  if (spec.headDim === undefined && spec.hiddenSize % spec.numHeads !== 0)
    fail(
      ctx,
      "numHeads",
      `hidden size ${spec.hiddenSize} is not divisible by ${spec.numHeads} heads (give headDim if heads are not hiddenSize / numHeads wide)`,
    );
  if (spec.headDim !== undefined && (!Number.isInteger(spec.headDim) || spec.headDim < 1))
    fail(ctx, "headDim", `expected an integer >= 1, got ${spec.headDim}`);
  if (spec.family === "opt" && spec.headDim !== undefined && spec.headDim * spec.numHeads !== spec.hiddenSize)
    fail(
      ctx,
      "headDim",
      `OPT heads are hiddenSize / numHeads = ${spec.hiddenSize / spec.numHeads} wide, got ${spec.headDim}`,
    );
  if (spec.numHeads % spec.numKvHeads !== 0)
    fail(
      ctx,
      "numKvHeads",
      `${spec.numHeads} attention heads are not a multiple of ${spec.numKvHeads} key/value heads`,
    );
  if (spec.family === "opt" && spec.ffnKind !== "relu") fail(ctx, "ffnKind", 'OPT models use a ReLU MLP ("relu")');
  if (spec.family !== "opt" && spec.ffnKind !== "swiglu")
    fail(ctx, "ffnKind", `${spec.family} models use a gated SwiGLU MLP ("swiglu")`);
  if (MOE_FAMILIES.includes(spec.family) && !spec.moe)
    fail(ctx, "moe", `a ${spec.family} model needs its MoE fields (numExperts, expertsPerToken, expertFfnSize)`);
  if (spec.family === "opt" && spec.moe)
    fail(ctx, "moe", "OPT models have no experts; use a MoE family (mixtral, qwen2_moe, olmoe, qwen3_moe)");
  const moe = spec.moe;
  if (moe) {
    for (const key of ["numExperts", "expertsPerToken", "expertFfnSize"] as const) {
      if (!Number.isInteger(moe[key]) || moe[key] < 1)
        fail(ctx, `moe.${key}`, `expected an integer >= 1, got ${moe[key]}`);
    }
    if (moe.expertsPerToken > moe.numExperts)
      fail(
        ctx,
        "moe.expertsPerToken",
        `top-${moe.expertsPerToken} routing needs at least that many experts; the model has ${moe.numExperts}`,
      );
    if (moe.sharedExperts !== undefined && moe.sharedExpertFfnSize === undefined)
      fail(
        ctx,
        "moe.sharedExpertFfnSize",
        `missing; ${moe.sharedExperts} shared expert(s) need their intermediate size`,
      );
    if (moe.sharedExperts === undefined && moe.sharedExpertFfnSize !== undefined)
      fail(
        ctx,
        "moe.sharedExperts",
        "missing; sharedExpertFfnSize is given, so say how many shared experts each layer has",
      );
    if (moe.sharedExperts !== undefined && (!Number.isInteger(moe.sharedExperts) || moe.sharedExperts < 1))
      fail(ctx, "moe.sharedExperts", `expected an integer >= 1, got ${moe.sharedExperts}`);
    if (
      moe.sharedExpertFfnSize !== undefined &&
      (!Number.isInteger(moe.sharedExpertFfnSize) || moe.sharedExpertFfnSize < 1)
    )
      fail(ctx, "moe.sharedExpertFfnSize", `expected an integer >= 1, got ${moe.sharedExpertFfnSize}`);
    if (spec.family === "qwen2_moe" && moe.sharedExperts !== 1)
      fail(
        ctx,
        "moe.sharedExperts",
        `a qwen2_moe layer has exactly one shared expert (with its sigmoid gate), got ${moe.sharedExperts ?? "none"}`,
      );
    if (spec.family !== "qwen2_moe" && moe.sharedExperts !== undefined)
      fail(
        ctx,
        "moe.sharedExperts",
        `${spec.family} checkpoints have no shared experts; of the families here only qwen2_moe does`,
      );
  }
  return spec;
}

/** Families whose attention projections q, k and v carry biases (Qwen2 and Qwen2-MoE; modeling_qwen2.py's Linear(bias=True)). */
export function hasQkvBiases(model: Pick<ModelSpec, "family">): boolean {
  return model.family === "qwen2" || model.family === "qwen2_moe";
}
