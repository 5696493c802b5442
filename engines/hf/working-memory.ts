/**
 * GPU memory a transformers generate call needs besides the weights: the KV cache (tuples or
 * DynamicCache on the execution device, grown by torch.cat) and the live activations of one forward,
 * estimated from the tensors the modelling code holds at once (engines/hf/opt-forward.ts,
 * llama-forward.ts): the residual stream and its normalised copy, q/k/v, and the largest of the
 * attention scratch, the MLP intermediate and the logits (which cover every position of the forward).
 */
import { kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import type { ForwardShape } from "./segment.js";

/** Bytes of the whole KV cache of `batch` sequences of `tokens` tokens (K and V, every layer). */
export function kvCacheBytes(model: ModelSpec, batch: number, tokens: number): number {
  return 2 * batch * tokens * kvDim(model) * model.bytesPerParam * model.numLayers;
}

/** Live activation bytes of one forward of `shape`, including the torch.cat copy of one layer's K and V. */
export function forwardWorkspaceBytes(model: ModelSpec, shape: ForwardShape): number {
  const { batch: b, queryLen: q, contextLen: c } = shape;
  const a = model.bytesPerParam;
  const h = model.hiddenSize;
  const rows = b * q;
  const kd = kvDim(model);
  const qd = qDim(model);
  const hidden = rows * (4 * h + qd + 2 * kd) * a;
  const mask = b * q * c * a;
  const llama = model.family !== "opt";
  // OPT's eager softmax holds the fp16 scores and their fp32 softmax at once; SDPA keeps no score matrix
  // but repeat_kv materialises K and V for every query head under grouped-query attention.
  const attention = llama
    ? mask + (model.numKvHeads < model.numHeads ? 2 * b * c * qd * a : 0)
    : mask + b * model.numHeads * q * c * (a + 4);
  const mlp = rows * model.ffnSize * a * (llama ? 3 : 2);
  const logits = rows * model.vocabSize * (llama ? a + 4 : a);
  const catCopy = c > q ? 2 * b * c * kd * a : 0;
  return hidden + Math.max(attention, mlp, logits) + catCopy;
}
