/**
 * GGUF file types (llama-quantize's `Q4_K_M`, `Q8_0`, `F16`, ...) and the type each tensor gets under
 * one: a file type is a mixture, not one figure per file. Restated from ggml-org/llama.cpp
 * src/llama-quant.cpp (stored version 007dbbf): `llama_ftype_get_default_type` (the base type),
 * `tensor_allows_quantization` (which tensors are quantized at all), `llama_tensor_get_type_impl` (the
 * per-tensor rules) and `tensor_type_fallback` (rows that do not hold whole blocks). Tensors that are not
 * quantized keep the type convert_hf_to_gguf.py wrote: F32 for 1-D tensors, norms, biases and the MoE
 * router (`ffn_gate_inp`), as `prepare_tensors` forces. Only the rules that reach the file types below
 * and the families Spillway models (no Falcon, no i-quants, no importance matrix) are restated.
 */
import type { Policy } from "../../core/policy.js";
import { BLOCK_LAYOUT, type GgmlType, isQuantized } from "./ggml-types.js";

export const GGUF_FILE_TYPES = [
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q2_K",
  "Q2_K_S",
  "Q3_K_S",
  "Q3_K_M",
  "Q3_K_L",
  "Q4_K_S",
  "Q4_K_M",
  "Q5_K_S",
  "Q5_K_M",
  "Q6_K",
] as const;
export type GgufFileType = (typeof GGUF_FILE_TYPES)[number];

/** `llama_ftype_get_default_type`: the type every quantizable tensor starts from. */
const DEFAULT_TYPE: Readonly<Record<GgufFileType, GgmlType>> = {
  F32: "F32",
  F16: "F16",
  BF16: "BF16",
  Q8_0: "Q8_0",
  Q4_0: "Q4_0",
  Q4_1: "Q4_1",
  Q5_0: "Q5_0",
  Q5_1: "Q5_1",
  Q2_K: "Q2_K",
  Q2_K_S: "Q2_K",
  Q3_K_S: "Q3_K",
  Q3_K_M: "Q3_K",
  Q3_K_L: "Q3_K",
  Q4_K_S: "Q4_K",
  Q4_K_M: "Q4_K",
  Q5_K_S: "Q5_K",
  Q5_K_M: "Q5_K",
  Q6_K: "Q6_K",
};

/** Reads a file type name, or says which names are known. */
export function parseGgufFileType(name: string, field = "ggufType"): GgufFileType {
  const found = GGUF_FILE_TYPES.find((t) => t === name.toUpperCase());
  if (!found)
    throw new Error(
      `${field}: unknown GGUF file type "${name}"; the llama.cpp model counts ${GGUF_FILE_TYPES.join(", ")}`,
    );
  return found;
}

/** `tensor_get_category`: the broad role a tensor name plays in the quantization rules. */
export type TensorCategory =
  | "TOKEN_EMBD"
  | "OUTPUT"
  | "ATTENTION_Q"
  | "ATTENTION_K"
  | "ATTENTION_V"
  | "ATTENTION_OUTPUT"
  | "FFN_UP"
  | "FFN_GATE"
  | "FFN_DOWN"
  | "OTHER";

/** What the rules read of a tensor: its GGUF name, first dimension (the row length) and layer. */
export interface QuantizedTensor {
  readonly name: string;
  /** ne[0], the values in one row (the input width of a weight matrix). */
  readonly rowValues: number;
  /** Number of dimensions: 1-D tensors are never quantized. */
  readonly dims: number;
  /** The `blk.N.` index; undefined for token_embd, output_norm and output. */
  readonly layer: number | undefined;
}

/** What the rules read of the model (llama_hparams / llama_model). */
export interface QuantizedModel {
  readonly numLayers: number;
  /** hparams.n_expert (0 for a dense model). */
  readonly numExperts: number;
  /** hparams.n_gqa(): attention heads per key/value head. */
  readonly headsPerKvHead: number;
  /** llama_model.type == LLM_TYPE_70B (llama with 80 layers and grouped-query attention). */
  readonly is70B: boolean;
  /** No output.weight: the token table doubles as the LM head (qs.has_tied_embeddings). */
  readonly tiedEmbeddings: boolean;
}

export function tensorCategory(name: string): TensorCategory {
  if (name === "output.weight") return "OUTPUT";
  if (name === "token_embd.weight") return "TOKEN_EMBD";
  if (name.includes("attn_v.weight")) return "ATTENTION_V";
  if (name.includes("attn_k.weight")) return "ATTENTION_K";
  if (name.includes("attn_q.weight")) return "ATTENTION_Q";
  if (name.includes("attn_output.weight")) return "ATTENTION_OUTPUT";
  if (name.includes("ffn_up")) return "FFN_UP";
  if (name.includes("ffn_gate")) return "FFN_GATE";
  if (name.includes("ffn_down")) return "FFN_DOWN";
  return "OTHER";
}

/** `tensor_allows_quantization` for the tensors these families have. */
function allowsQuantization(t: QuantizedTensor): boolean {
  return (
    t.dims >= 2 &&
    t.name.endsWith("weight") &&
    !t.name.includes("_norm.weight") &&
    !t.name.includes("ffn_gate_inp.weight")
  );
}

/** `use_more_bits` (C integer division): the first and last eighth of the layers and every third between. */
export function useMoreBits(layer: number, numLayers: number): boolean {
  const eighth = Math.trunc(numLayers / 8);
  return layer < eighth || layer >= Math.trunc((7 * numLayers) / 8) || (layer - eighth) % 3 === 2;
}

/** `tensor_type_fallback`: rows that do not hold whole blocks of the chosen type. */
function fallback(type: GgmlType, rowValues: number): GgmlType {
  if (rowValues % BLOCK_LAYOUT[type].values === 0) return type;
  const next: GgmlType =
    type === "Q2_K" || type === "Q3_K"
      ? "Q4_0"
      : type === "Q4_K"
        ? "Q5_0"
        : type === "Q5_K"
          ? "Q5_1"
          : type === "Q6_K"
            ? "Q8_0"
            : type;
  return rowValues % BLOCK_LAYOUT[next].values === 0 ? next : "F16";
}

/** The type llama-quantize writes for `tensor` in a `fileType` file (the converter's F32 where it does not quantize). */
export function tensorType(fileType: GgufFileType, tensor: QuantizedTensor, model: QuantizedModel): GgmlType {
  if (!allowsQuantization(tensor)) return "F32";
  let type = DEFAULT_TYPE[fileType];
  if (!isQuantized(type)) return type;
  const category = tensorCategory(tensor.name);
  const layer = tensor.layer ?? 0;
  const n = model.numLayers;
  const moreBits = useMoreBits(layer, n);
  const eightExperts = model.numExperts === 8;
  const ft = fileType;
  if (category === "OUTPUT" || (model.tiedEmbeddings && category === "TOKEN_EMBD")) {
    if (tensor.rowValues % 256 !== 0) type = "Q8_0";
    else if (type !== "Q8_0") type = "Q6_K";
  } else if (category === "ATTENTION_V") {
    if (ft === "Q2_K") type = model.headsPerKvHead >= 4 ? "Q4_K" : "Q3_K";
    else if (ft === "Q2_K_S" && model.headsPerKvHead >= 4) type = "Q4_K";
    else if (ft === "Q3_K_M") type = layer < 2 ? "Q5_K" : "Q4_K";
    else if (ft === "Q3_K_L") type = "Q5_K";
    else if ((ft === "Q4_K_M" || ft === "Q5_K_M") && moreBits) type = "Q6_K";
    else if (ft === "Q4_K_S" && layer < 4) type = "Q5_K";
    if (model.is70B && (type === "Q3_K" || type === "Q4_K")) type = "Q5_K";
    if (eightExperts) type = "Q8_0";
  } else if (category === "ATTENTION_K") {
    if (eightExperts) type = "Q8_0";
  } else if (category === "FFN_DOWN") {
    if (ft === "Q2_K") type = "Q3_K";
    else if (ft === "Q2_K_S") {
      if (layer < Math.trunc(n / 8)) type = "Q4_K";
    } else if (ft === "Q3_K_M") type = layer < Math.trunc(n / 16) ? "Q5_K" : "Q4_K";
    else if (ft === "Q3_K_L") type = "Q5_K";
    else if (ft === "Q4_K_M") {
      if (moreBits) type = "Q6_K";
    } else if (ft === "Q5_K_M" && moreBits) type = "Q6_K";
    else if (ft === "Q4_K_S" && layer < Math.trunc(n / 8)) type = "Q5_K";
  } else if (category === "ATTENTION_OUTPUT") {
    if (eightExperts) {
      if (ft === "Q2_K" || ft === "Q3_K_S" || ft === "Q3_K_M" || ft === "Q4_K_S" || ft === "Q4_K_M") type = "Q5_K";
    } else if (ft === "Q2_K") type = "Q3_K";
    else if (ft === "Q3_K_M") type = "Q4_K";
    else if (ft === "Q3_K_L") type = "Q5_K";
  }
  return fallback(type, tensor.rowValues);
}

/**
 * The GGUF type a Spillway policy's precision stands for: 4-bit weights (or experts) as Q4_K_M, the 4-bit
 * file most models are published in; 8-bit experts as Q8_0; otherwise a 16-bit conversion. Used wherever a
 * plan made for another engine meets llama.cpp (export, `simulate --engine llama.cpp`, the engines chart).
 */
export function ggufQuantisation(plan: { readonly policy: Policy }): "Q4_K_M" | "Q8_0" | "F16" {
  const x = plan.policy.experts;
  if (x) return x.bits <= 4 ? "Q4_K_M" : x.bits === 8 ? "Q8_0" : "F16";
  return plan.policy.compressWeight ? "Q4_K_M" : "F16";
}
