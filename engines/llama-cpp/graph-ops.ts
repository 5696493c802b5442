/**
 * Kernels per layer of llama.cpp's graph, counted from the graph builders (ggml-org/llama.cpp
 * src/models/llama.cpp `graph` for llama, mistral and mixtral; src/llama-graph.cpp `build_norm`,
 * `build_qkv`, `build_attn` (flash attention: `flash_attn_type` defaults to auto, on where the backend
 * supports it), `build_ffn`, `build_moe_ffn`). Views, reshapes and permutes launch nothing and are not
 * counted. The CUDA backend fuses some pairs (rms_norm + mul, top-k MoE) and replays decode graphs as
 * CUDA graphs, so these counts are an upper bound on launches.
 */
import { hasQkvBiases, type ModelSpec } from "../../core/model-spec.js";

export interface LayerOps {
  /** Every kernel of one layer. */
  readonly kernels: number;
  /** Of those, the weight mat-muls (mul_mat, mul_mat_id), priced by their own operations. */
  readonly matmuls: number;
  /** Of those, flash attention (ggml_flash_attn_ext), priced by its own operation. */
  readonly attention: number;
  /** RMS_NORM + MUL pairs (build_norm), one node each on the CPU (ggml-cpu.c `ggml_cpu_try_fuse_ops`). */
  readonly normPairs: number;
}

/** Whether build_moe_ffn renormalises the top-k weights (norm_w: sum_rows, clamp, div). */
function normalisesTopK(model: ModelSpec): boolean {
  // src/models/llama.cpp passes norm_w = true for mixtral; the others follow the checkpoints' norm_topk_prob
  // (Qwen1.5-MoE false, OLMoE false, Qwen3-MoE true).
  return model.family === "mixtral" || model.family === "qwen3_moe";
}

export function layerOps(model: ModelSpec): LayerOps {
  const norm = 2; // build_norm(LLM_NORM_RMS): ggml_rms_norm, ggml_mul by the weight
  const qkvBiases = hasQkvBiases(model) ? 3 : 0; // build_qkv adds bq, bk, bv
  const qkNormPairs = model.family === "olmoe" || model.family === "qwen3_moe" ? 2 : 0;
  const qkNorms = qkNormPairs * norm;
  const normPairs = 2 + qkNormPairs; // attention norm, FFN norm, q and k norms
  // norm, q k v mat-muls (+ biases, q/k norms), rope q and k, K and V stores (set_rows), flash attention, wo, residual add
  const attention = norm + 3 + qkvBiases + qkNorms + 2 + 2 + 1 + 1 + 1;
  const moe = model.moe;
  if (!moe) {
    // ffn norm, gate and up mat-muls, swiglu, down mat-mul, residual add
    return { kernels: attention + norm + 4 + 1, matmuls: 4 + 3, attention: 1, normPairs };
  }
  // router mat-mul, softmax, top-k (argsort), get_rows of the weights, [sum_rows, clamp, div],
  // up, gate and down mul_mat_id, swiglu, mul by the weights, k - 1 adds aggregating the experts
  const routed = 1 + 1 + 1 + 1 + (normalisesTopK(model) ? 3 : 0) + 3 + 1 + 1 + (moe.expertsPerToken - 1);
  // qwen2moe: shared expert (gate, up, down mat-muls, swiglu), its sigmoid gate (mat-mul, sigmoid, mul), add
  const shared = moe.sharedExpertFfnSize ? 4 + 3 + 1 : 0;
  const sharedMatmuls = moe.sharedExpertFfnSize ? 4 : 0;
  return {
    kernels: attention + norm + routed + shared + 1,
    matmuls: 4 + 1 + 3 + sharedMatmuls,
    attention: 1,
    normPairs,
  };
}

/** Kernels outside the layers per graph: output norm (2) and LM head (1), and the last layer's two get_rows of the output rows. */
export const OUTPUT_KERNELS = 2 + 1 + 2;
