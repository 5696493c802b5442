/**
 * The tensors of a model's GGUF file, with the type and bytes each gets under a file type. Names and
 * shapes are llama.cpp's (ggml-org/llama.cpp src/models/llama.cpp `load_arch_tensors` for llama,
 * mistral and mixtral, which convert to the `llama` architecture; src/models/qwen2moe.cpp, olmoe.cpp,
 * qwen3moe.cpp for the others): ne[0] is a matrix's input width, ne[1] its output width, ne[2] the
 * experts of a merged `ffn_*_exps` tensor. Bytes are rows x ggml_row_size (engines/llama-cpp/ggml-types.ts).
 */
import { hasQkvBiases, headDim, kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import { type GgmlType, rowBytes } from "./ggml-types.js";
import { type GgufFileType, type QuantizedModel, tensorType } from "./gguf-file-types.js";

/** What a tensor does, for placement and costing. */
export type TensorRole = "embedding" | "output" | "norm" | "attention" | "router" | "ffn" | "experts" | "shared";

export interface GgufTensor {
  readonly name: string;
  readonly layer: number | undefined;
  readonly role: TensorRole;
  /** ne[0], ne[1], ne[2] (1 where absent). */
  readonly shape: readonly [number, number, number];
  readonly dims: number;
  readonly type: GgmlType;
  readonly bytes: number;
  /** A weight some mat-mul multiplies through (ne[0] x ne[1], per expert for merged experts). */
  readonly matmul: boolean;
}

export interface GgufFile {
  readonly fileType: GgufFileType;
  readonly tokenEmbedding: GgufTensor;
  /** output_norm and the LM head (the token table's copy when the model ties them). */
  readonly output: readonly GgufTensor[];
  /** Each decoder layer's tensors, layer 0 first. */
  readonly layers: readonly (readonly GgufTensor[])[];
  readonly totalBytes: number;
}

interface Shape {
  readonly name: string;
  readonly role: TensorRole;
  readonly shape: readonly number[];
  readonly matmul: boolean;
}

function layerShapes(model: ModelSpec): Shape[] {
  const h = model.hiddenSize;
  const q = qDim(model);
  const kv = kvDim(model);
  const vector = (name: string, role: TensorRole, n: number): Shape => ({ name, role, shape: [n], matmul: false });
  const matrix = (name: string, role: TensorRole, ...shape: number[]): Shape => ({ name, role, shape, matmul: true });
  const qwen2 = hasQkvBiases(model);
  const shapes: Shape[] = [
    vector("attn_norm.weight", "norm", h),
    matrix("attn_q.weight", "attention", h, q),
    ...(qwen2 ? [vector("attn_q.bias", "attention", q)] : []),
    matrix("attn_k.weight", "attention", h, kv),
    ...(qwen2 ? [vector("attn_k.bias", "attention", kv)] : []),
    matrix("attn_v.weight", "attention", h, kv),
    ...(qwen2 ? [vector("attn_v.bias", "attention", kv)] : []),
    matrix("attn_output.weight", "attention", q, h),
  ];
  // OLMoE normalises the whole q and k projections; Qwen3 each head (one head_dim weight).
  if (model.family === "olmoe")
    shapes.push(vector("attn_q_norm.weight", "norm", q), vector("attn_k_norm.weight", "norm", kv));
  if (model.family === "qwen3_moe")
    shapes.push(
      vector("attn_q_norm.weight", "norm", headDim(model)),
      vector("attn_k_norm.weight", "norm", headDim(model)),
    );
  shapes.push(vector("ffn_norm.weight", "norm", h));
  const moe = model.moe;
  if (!moe) {
    const f = model.ffnSize;
    shapes.push(
      matrix("ffn_gate.weight", "ffn", h, f),
      matrix("ffn_down.weight", "ffn", f, h),
      matrix("ffn_up.weight", "ffn", h, f),
    );
    return shapes;
  }
  const E = moe.numExperts;
  const fe = moe.expertFfnSize;
  shapes.push(
    matrix("ffn_gate_inp.weight", "router", h, E),
    matrix("ffn_gate_exps.weight", "experts", h, fe, E),
    matrix("ffn_down_exps.weight", "experts", fe, h, E),
    matrix("ffn_up_exps.weight", "experts", h, fe, E),
  );
  if (moe.sharedExpertFfnSize) {
    const fs = moe.sharedExpertFfnSize;
    shapes.push(
      vector("ffn_gate_inp_shexp.weight", "router", h),
      matrix("ffn_gate_shexp.weight", "shared", h, fs),
      matrix("ffn_down_shexp.weight", "shared", fs, h),
      matrix("ffn_up_shexp.weight", "shared", h, fs),
    );
  }
  return shapes;
}

/** What llama-quant.cpp reads of the model (hparams, model type). */
export function quantizedModel(model: ModelSpec): QuantizedModel {
  const numExperts = model.moe?.numExperts ?? 0;
  const llamaArch = model.family === "llama" || model.family === "mistral" || model.family === "mixtral";
  return {
    numLayers: model.numLayers,
    numExperts,
    headsPerKvHead: model.numHeads / model.numKvHeads,
    // src/models/llama.cpp load_arch_hparams: 80 layers with n_head != n_head_kv is LLM_TYPE_70B (not for 8 experts).
    is70B: llamaArch && numExperts !== 8 && model.numLayers === 80 && model.numHeads !== model.numKvHeads,
    tiedEmbeddings: model.tiedEmbeddings,
  };
}

function tensor(s: Shape, layer: number | undefined, fileType: GgufFileType, q: QuantizedModel): GgufTensor {
  const name = layer === undefined ? s.name : `blk.${layer}.${s.name}`;
  const [ne0, ne1 = 1, ne2 = 1] = s.shape;
  const type = tensorType(fileType, { name, rowValues: ne0!, dims: s.shape.length, layer }, q);
  return {
    name,
    layer,
    role: s.role,
    shape: [ne0!, ne1, ne2],
    dims: s.shape.length,
    type,
    bytes: rowBytes(type, ne0!) * ne1 * ne2,
    matmul: s.matmul,
  };
}

/** The model's GGUF file under `fileType`. */
export function ggufFile(model: ModelSpec, fileType: GgufFileType): GgufFile {
  const q = quantizedModel(model);
  const h = model.hiddenSize;
  const V = model.vocabSize;
  const tokenEmbedding = tensor(
    { name: "token_embd.weight", role: "embedding", shape: [h, V], matmul: false },
    undefined,
    fileType,
    q,
  );
  const outputNorm = tensor(
    { name: "output_norm.weight", role: "norm", shape: [h], matmul: false },
    undefined,
    fileType,
    q,
  );
  // Tied embeddings: no output.weight; llama.cpp loads the token table a second time into the output layer's buffer.
  const head = model.tiedEmbeddings
    ? { ...tokenEmbedding, role: "output" as const, matmul: true }
    : tensor({ name: "output.weight", role: "output", shape: [h, V], matmul: true }, undefined, fileType, q);
  const shapes = layerShapes(model);
  const layers = Array.from({ length: model.numLayers }, (_, l) => shapes.map((s) => tensor(s, l, fileType, q)));
  const fileTensors = [tokenEmbedding, outputNorm, ...(model.tiedEmbeddings ? [] : [head]), ...layers.flat()];
  return {
    fileType,
    tokenEmbedding,
    output: [outputNorm, head],
    layers,
    totalBytes: fileTensors.reduce((a, t) => a + t.bytes, 0),
  };
}

/** Bytes of one routed expert in a layer (its slice of each merged `ffn_*_exps` tensor). */
export function expertBytes(layer: readonly GgufTensor[]): number {
  return layer.filter((t) => t.role === "experts").reduce((a, t) => a + t.bytes / t.shape[2], 0);
}
