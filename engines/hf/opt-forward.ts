/**
 * OPT's forward as transformers v4.24.0 runs it (the version FlexGen's Accelerate/DeepSpeed harness
 * pins: FlexGen benchmark/third_party/README.md), counted from FlexGen's copy of
 * src/transformers/models/opt/modeling_opt.py: eager attention, a tuple KV cache grown by torch.cat
 * every step, logits for every position of the forward. Values are in the model's dtype
 * (`torch_dtype=float16` in benchmark/hf_ds/hf_opt.py), softmax in fp32.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { generateStep } from "./generate-step.js";
import {
  elementwise,
  type ForwardShape,
  gemm,
  type HfForward,
  type HfSegment,
  type HfTensor,
  layerSegments,
  matmul,
  segment,
  tensor,
} from "./segment.js";

const FILE = "transformers v4.24 models/opt/modeling_opt.py";

/** One OPT decoder layer (OPTDecoderLayer.forward with do_layer_norm_before, OPTAttention.forward). */
function optLayer(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const { batch: b, queryLen: q, contextLen: c } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const f = model.ffnSize;
  const nh = model.numHeads;
  const rows = b * q;
  const past = c - q;
  const scores = b * nh * q * c;
  const w = (name: string, numel: number): HfTensor => tensor(name, numel, a);
  const norm = (name: string) => [w(`${name}.weight`, h), w(`${name}.bias`, h)];
  // past_key_value is not None from the second forward on: torch.cat([past, new], dim=2) for K and for V.
  const cache = past > 0 ? [elementwise("torch.cat K", (b * past * h + rows * h + b * c * h) * a)] : [];
  const cacheV = past > 0 ? [elementwise("torch.cat V", (b * past * h + rows * h + b * c * h) * a)] : [];
  const { layer, linear } = layerSegments(FILE, rows, (name, k, n) => [
    w(`${name}.weight`, k * n),
    w(`${name}.bias`, n),
  ]);
  const layerNorm = elementwise("layer_norm", rows * h * a * 2);
  const residual = elementwise("residual add", rows * h * a * 3);
  return [
    layer("self_attn_layer_norm", norm("self_attn_layer_norm"), [layerNorm], 1, "OPTDecoderLayer.forward"),
    // q_proj(hidden_states) * self.scaling
    linear("self_attn.q_proj", h, h, [elementwise("q * scaling", rows * h * a * 2)], 2, "OPTAttention.forward"),
    // _shape: view, transpose(1, 2), contiguous() (a copy)
    linear(
      "self_attn.k_proj",
      h,
      h,
      [elementwise("_shape contiguous K", rows * h * a * 2)],
      4,
      "OPTAttention.forward, OPTAttention._shape",
    ),
    // linear, view, transpose, contiguous; [cat K, cat V]; Q _shape (4) + view; K, V view; transpose, bmm;
    // mask view, add, torch.tensor, torch.max, view; softmax, to; dropout; bmm; view, transpose, reshape.
    linear(
      "self_attn.v_proj",
      h,
      h,
      [
        elementwise("_shape contiguous V", rows * h * a * 2),
        ...cache,
        ...cacheV,
        elementwise("_shape contiguous Q", rows * h * a * 2),
        matmul("bmm Q K^T", 2 * rows * c * h, (rows * h + b * c * h + scores) * a),
        elementwise("scores + attention_mask", (2 * scores + b * q * c) * a),
        elementwise("torch.max(scores, finfo.min)", 2 * scores * a),
        elementwise("softmax (dtype=float32)", scores * (a + 4)),
        elementwise("softmax .to(float16)", scores * (4 + a)),
        matmul("bmm P V", 2 * rows * c * h, (scores + b * c * h + rows * h) * a),
        elementwise("transpose + reshape (copy)", rows * h * a * 2),
      ],
      4 + (past > 0 ? 2 : 0) + 4 + 2 + 2 + 5 + 2 + 1 + 1 + 3,
      "OPTAttention.forward",
    ),
    // linear; dropout (eval: identity), residual add, reshape
    linear("self_attn.out_proj", h, h, [residual], 4, "OPTAttention.forward, OPTDecoderLayer.forward"),
    layer("final_layer_norm", norm("final_layer_norm"), [layerNorm], 1, "OPTDecoderLayer.forward"),
    linear("fc1", h, f, [elementwise("relu", rows * f * a * 2)], 2, "OPTDecoderLayer.forward"),
    // linear; dropout (identity), residual add, view
    linear("fc2", f, h, [residual], 4, "OPTDecoderLayer.forward"),
  ];
}

/** Embeddings, learned positions and the attention mask (OPTDecoder.forward before the layers). */
function optBefore(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const { batch: b, queryLen: q, contextLen: c } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const rows = b * q;
  const mask = b * q * c;
  const int64 = 8;
  return [
    segment(
      "embed_tokens",
      "embeddings",
      [tensor("embed_tokens.weight", model.vocabSize * model.wordEmbedDim, a)],
      [elementwise("embedding gather", rows * h * a * 2)],
      2,
      `${FILE} OPTDecoder.forward`,
    ),
    // positions: 8 operations; embedding: 1; _make_causal_mask on the host and .to(device) when q > 1: 10;
    // _expand_mask: 6; embeds + positions: 1
    segment(
      "embed_positions",
      "embeddings",
      [tensor("embed_positions.weight", (model.maxPositions + 2) * h, a)],
      [
        // long, cumsum, type_as, * mask, long, - 1 over [b, c] int64; slice; + offset
        elementwise("positions from attention_mask", 6 * b * c * int64 * 2),
        elementwise("embedding gather", rows * h * a * 2),
        // _expand_mask: expand + to(dtype), 1 - mask, to(bool), masked_fill; then + causal mask (q > 1)
        elementwise("expand attention_mask", mask * a * (2 + 2 + 1 + 2) + (q > 1 ? 3 * mask * a : 0)),
        elementwise("inputs_embeds + pos_embeds", rows * h * a * 3),
      ],
      8 + 1 + (q > 1 ? 10 : 0) + 6 + 1,
      `${FILE} OPTLearnedPositionalEmbedding.forward, OPTDecoder._prepare_decoder_attention_mask`,
    ),
  ];
}

/** Final layer norm, LM head over every position, and the generate loop's own step. */
function optAfter(model: ModelSpec, shape: ForwardShape): HfSegment[] {
  const { batch: b, queryLen: q } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const rows = b * q;
  return [
    segment(
      "final_layer_norm",
      "head",
      [tensor("final_layer_norm.weight", h, a), tensor("final_layer_norm.bias", h, a)],
      [elementwise("layer_norm", rows * h * a * 2)],
      1,
      `${FILE} OPTDecoder.forward`,
    ),
    // Tied to embed_tokens: the same tensor, fetched again where it is offloaded.
    segment(
      "lm_head",
      "head",
      [tensor("lm_head.weight", model.vocabSize * h, a)],
      [gemm("lm_head (every position)", rows, h, model.vocabSize)],
      2,
      `${FILE} OPTForCausalLM.forward`,
    ),
    generateStep(model, shape, "transformers v4.24 generation_utils.py GenerationMixin.greedy_search"),
  ];
}

export function optForward(model: ModelSpec, shape: ForwardShape): HfForward {
  return { before: optBefore(model, shape), layer: optLayer(model, shape), after: optAfter(model, shape) };
}
