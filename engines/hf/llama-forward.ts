/**
 * Llama's (and Mistral's) forward as transformers runs it with its default SDPA attention, counted from
 * src/transformers/models/llama/modeling_llama.py (the stored revision 0022728, v4.39 era):
 * LlamaRMSNorm in fp32, rotary embeddings recomputed in every layer, DynamicCache grown by torch.cat,
 * repeat_kv copying K and V up to every query head under grouped-query attention, one
 * scaled_dot_product_attention call, logits (upcast to fp32) for every position of the forward.
 */
import { headDim, kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import { generateStep } from "./generate-step.js";
import {
  elementwise,
  type ForwardShape,
  gemm,
  type HfForward,
  type HfKernel,
  type HfSegment,
  layerSegments,
  matmul,
  segment,
  tensor,
} from "./segment.js";

const FILE = "transformers models/llama/modeling_llama.py";

/** LlamaRMSNorm.forward: to(fp32), pow, mean, + eps, rsqrt, *, to(dtype), weight * (8 operations). */
function rmsNorm(rows: number, h: number, a: number): { kernels: HfKernel[]; dispatchOps: number } {
  return {
    kernels: [
      elementwise("RMSNorm to(float32)", rows * h * (a + 4)),
      elementwise("RMSNorm pow(2)", rows * h * 8),
      elementwise("RMSNorm mean", rows * h * 4),
      elementwise("RMSNorm * rsqrt", rows * h * 12),
      elementwise("RMSNorm to(dtype)", rows * h * (4 + a)),
      elementwise("RMSNorm weight *", rows * h * a * 3),
    ],
    dispatchOps: 8,
  };
}

function llamaLayer(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const { batch: b, queryLen: q, contextLen: c } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const f = model.ffnSize;
  const nh = model.numHeads;
  const hd = headDim(model);
  const qd = qDim(model);
  const kd = kvDim(model);
  const rows = b * q;
  const past = c - q;
  const groups = nh / model.numKvHeads;
  const norm = rmsNorm(rows, h, a);
  const cat = (what: string) =>
    elementwise(`DynamicCache torch.cat ${what}`, (b * past * kd + rows * kd + b * c * kd) * a);
  const repeat = (what: string) => elementwise(`repeat_kv ${what} (expand + reshape copy)`, b * c * (kd + qd) * a);
  // In a prefill the rotary outputs and V keep the transposed layout of view().transpose(1, 2), so the
  // .contiguous() calls before SDPA copy them; with one query token the layouts coincide and nothing is copied.
  const contiguous =
    q > 1 ? [elementwise("q, k, v .contiguous() before SDPA", (rows * qd + 2 * rows * kd) * a * 2)] : [];
  const { layer, linear } = layerSegments(FILE, rows, (name, k, n) => [tensor(`${name}.weight`, k * n, a)]);
  const normLayer = (module: string) =>
    layer(module, [tensor(`${module}.weight`, h, a)], norm.kernels, norm.dispatchOps, "LlamaRMSNorm.forward");
  const residual = elementwise("residual add", rows * h * a * 3);
  return [
    normLayer("input_layernorm"),
    linear("self_attn.q_proj", h, qd, [], 3, "LlamaSdpaAttention.forward"),
    linear("self_attn.k_proj", h, kd, [], 3, "LlamaSdpaAttention.forward"),
    // linear, view, transpose; rotary_emb (12); apply_rotary_pos_emb (16); cache update (2);
    // repeat_kv (3 each under GQA); mask slice (2); contiguous x3; SDPA; transpose, contiguous, view
    linear(
      "self_attn.v_proj",
      h,
      kd,
      [
        elementwise("rotary cos/sin", b * q * hd * 4 * 6),
        // q * cos + rotate_half(q) * sin (neg, cat, two muls, add), and the same for k
        elementwise("apply_rotary_pos_emb q", rows * qd * a * 12),
        elementwise("apply_rotary_pos_emb k", rows * kd * a * 12),
        ...(past > 0 ? [cat("K"), cat("V")] : []),
        ...(groups > 1 ? [repeat("K"), repeat("V")] : []),
        ...contiguous,
        matmul(
          "scaled_dot_product_attention",
          4 * b * nh * q * c * hd,
          (2 * rows * qd + 2 * b * c * (groups > 1 ? qd : kd) + b * q * c) * a,
        ),
        elementwise("transpose + contiguous", rows * qd * a * 2),
      ],
      3 + 12 + 16 + (past > 0 ? 2 : 0) + (groups > 1 ? 6 : 0) + 2 + 3 + 1 + 3,
      "LlamaSdpaAttention.forward, apply_rotary_pos_emb, repeat_kv; cache_utils.py DynamicCache.update",
    ),
    linear("self_attn.o_proj", qd, h, [residual], 2, "LlamaSdpaAttention.forward, LlamaDecoderLayer.forward"),
    normLayer("post_attention_layernorm"),
    linear("mlp.gate_proj", h, f, [elementwise("act_fn (SiLU)", rows * f * a * 2)], 2, "LlamaMLP.forward"),
    linear("mlp.up_proj", h, f, [elementwise("act * up", rows * f * a * 3)], 2, "LlamaMLP.forward"),
    linear("mlp.down_proj", f, h, [residual], 2, "LlamaMLP.forward, LlamaDecoderLayer.forward"),
  ];
}

function llamaBefore(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const { batch: b, queryLen: q, contextLen: c } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  // embedding; cache_position arange; position_ids unsqueeze; _update_causal_mask (12)
  return [
    segment(
      "embed_tokens",
      "embeddings",
      [tensor("embed_tokens.weight", model.vocabSize * h, a)],
      [
        elementwise("embedding gather", b * q * h * a * 2),
        // _update_causal_mask: the [b, 1, q, c] additive mask (several passes over it)
        elementwise("causal mask", 4 * b * q * c * a),
      ],
      1 + 1 + 1 + 12,
      `${FILE} LlamaModel.forward, LlamaModel._update_causal_mask`,
    ),
  ];
}

function llamaAfter(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const rows = shape.batch * shape.queryLen;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const V = model.vocabSize;
  const norm = rmsNorm(rows, h, a);
  return [
    segment(
      "norm",
      "head",
      [tensor("norm.weight", h, a)],
      norm.kernels,
      norm.dispatchOps,
      `${FILE} LlamaModel.forward`,
    ),
    segment(
      "lm_head",
      "head",
      [tensor("lm_head.weight", V * h, a)],
      [gemm("lm_head (every position)", rows, h, V), elementwise("logits.float()", rows * V * (a + 4))],
      2,
      `${FILE} LlamaForCausalLM.forward`,
    ),
    generateStep(model, shape, "transformers generation/utils.py GenerationMixin._greedy_search"),
  ];
}

export function llamaForward(model: ModelSpec, shape: ForwardShape): HfForward {
  return { before: llamaBefore(model, shape), layer: llamaLayer(model, shape), after: llamaAfter(model, shape) };
}
