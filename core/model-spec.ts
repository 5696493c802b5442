/**
 * Model specification: the architecture numbers every cost model needs. One definition for dense
 * decoders (OPT, Llama, Mistral) and MoE decoders (Mixtral): `moe` is present only for the latter.
 */
import { asObject, child, type FieldContext, fail, readBoolean, readEnum, readNumber, readObject, readOptionalNumber, readString, rejectUnknownKeys } from "./fields.js";

export const MODEL_FAMILIES = ["opt", "llama", "mistral", "mixtral"] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

export interface MoeSpec {
  readonly numExperts: number;
  /** Experts each token is routed to (top-k). */
  readonly expertsPerToken: number;
  /** Intermediate size of one expert's FFN. */
  readonly expertFfnSize: number;
}

export interface ModelSpec {
  readonly name: string;
  readonly family: ModelFamily;
  readonly numLayers: number;
  readonly hiddenSize: number;
  /** Intermediate size of the dense FFN (for MoE models: of one expert). */
  readonly ffnSize: number;
  readonly numHeads: number;
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
  return model.hiddenSize / model.numHeads;
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
    return [
      { name: "q_proj.weight", params: h * h, part: "attention" },
      { name: "q_proj.bias", params: h, part: "attention" },
      { name: "k_proj.weight", params: h * h, part: "attention" },
      { name: "k_proj.bias", params: h, part: "attention" },
      { name: "v_proj.weight", params: h * h, part: "attention" },
      { name: "v_proj.bias", params: h, part: "attention" },
      { name: "out_proj.weight", params: h * h, part: "attention" },
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
  const attention: WeightTensor[] = [
    { name: "input_layernorm.weight", params: h, part: "attention" },
    { name: "self_attn.q_proj.weight", params: h * h, part: "attention" },
    { name: "self_attn.k_proj.weight", params: h * kv, part: "attention" },
    { name: "self_attn.v_proj.weight", params: h * kv, part: "attention" },
    { name: "self_attn.o_proj.weight", params: h * h, part: "attention" },
  ];
  const mlp: WeightTensor[] = [{ name: "post_attention_layernorm.weight", params: h, part: "mlp" }];
  if (model.moe) {
    mlp.push({ name: "block_sparse_moe.gate.weight", params: h * model.moe.numExperts, part: "mlp" });
    for (let e = 0; e < model.moe.numExperts; e++) {
      mlp.push(
        { name: `block_sparse_moe.experts.${e}.w1.weight`, params: h * f, part: "mlp" },
        { name: `block_sparse_moe.experts.${e}.w2.weight`, params: f * h, part: "mlp" },
        { name: `block_sparse_moe.experts.${e}.w3.weight`, params: h * f, part: "mlp" },
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

/** Parameters used per token (MoE: only the routed experts count). */
export function activeParams(model: ModelSpec): number {
  if (!model.moe) return totalParams(model);
  const expert = 3 * model.hiddenSize * model.ffnSize;
  return totalParams(model) - model.numLayers * (model.moe.numExperts - model.moe.expertsPerToken) * expert;
}

export function totalWeightBytes(model: ModelSpec): number {
  return totalParams(model) * model.bytesPerParam;
}

// ---------------------------------------------------------------------------------------------
// Validation of a model spec given as JSON in Spillway's own format.

const MODEL_FIELDS = ["name", "family", "numLayers", "hiddenSize", "ffnSize", "numHeads", "numKvHeads", "vocabSize", "maxPositions", "ffnKind", "wordEmbedDim", "tiedEmbeddings", "bytesPerParam", "moe"];

export function parseModelSpec(data: unknown, source: string): ModelSpec {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  rejectUnknownKeys(o, ctx, MODEL_FIELDS);
  const hiddenSize = readNumber(o, "hiddenSize", ctx, { min: 1, integer: true });
  const numHeads = readNumber(o, "numHeads", ctx, { min: 1, integer: true });
  const spec: ModelSpec = {
    name: readString(o, "name", ctx),
    family: readEnum(o, "family", ctx, MODEL_FAMILIES),
    numLayers: readNumber(o, "numLayers", ctx, { min: 1, integer: true }),
    hiddenSize,
    ffnSize: readNumber(o, "ffnSize", ctx, { min: 1, integer: true }),
    numHeads,
    numKvHeads: readOptionalNumber(o, "numKvHeads", ctx, { min: 1, integer: true }) ?? numHeads,
    vocabSize: readNumber(o, "vocabSize", ctx, { min: 1, integer: true }),
    maxPositions: readNumber(o, "maxPositions", ctx, { min: 1, integer: true }),
    ffnKind: readEnum(o, "ffnKind", ctx, ["relu", "swiglu"] as const),
    wordEmbedDim: readOptionalNumber(o, "wordEmbedDim", ctx, { min: 1, integer: true }) ?? hiddenSize,
    tiedEmbeddings: readBoolean(o, "tiedEmbeddings", ctx),
    bytesPerParam: readOptionalNumber(o, "bytesPerParam", ctx, { greaterThan: 0 }) ?? 2,
    ...(o.moe !== undefined ? { moe: parseMoe(readObject(o, "moe", ctx), child(ctx, "moe")) } : {}),
  };
  return checkModelConsistency(spec, ctx);
}

function parseMoe(o: Record<string, unknown>, ctx: FieldContext): MoeSpec {
  rejectUnknownKeys(o, ctx, ["numExperts", "expertsPerToken", "expertFfnSize"]);
  const numExperts = readNumber(o, "numExperts", ctx, { min: 1, integer: true });
  return {
    numExperts,
    expertsPerToken: readNumber(o, "expertsPerToken", ctx, { min: 1, max: numExperts, integer: true }),
    expertFfnSize: readNumber(o, "expertFfnSize", ctx, { min: 1, integer: true }),
  };
}

/** Cross-field checks shared by every way a model spec can arrive. */
export function checkModelConsistency(spec: ModelSpec, ctx: FieldContext): ModelSpec {
  if (spec.hiddenSize % spec.numHeads !== 0) fail(ctx, "numHeads", `hidden size ${spec.hiddenSize} is not divisible by ${spec.numHeads} heads`);
  if (spec.numHeads % spec.numKvHeads !== 0) fail(ctx, "numKvHeads", `${spec.numHeads} attention heads are not a multiple of ${spec.numKvHeads} key/value heads`);
  if (spec.family === "opt" && spec.ffnKind !== "relu") fail(ctx, "ffnKind", "OPT models use a ReLU MLP (\"relu\")");
  if (spec.family !== "opt" && spec.ffnKind !== "swiglu") fail(ctx, "ffnKind", `${spec.family} models use a gated SwiGLU MLP ("swiglu")`);
  if (spec.family === "mixtral" && !spec.moe) fail(ctx, "moe", "a mixtral model needs its MoE fields (numExperts, expertsPerToken, expertFfnSize)");
  if (spec.moe && spec.moe.expertFfnSize !== spec.ffnSize) fail(ctx, "moe.expertFfnSize", `must equal ffnSize (${spec.ffnSize})`);
  return spec;
}
