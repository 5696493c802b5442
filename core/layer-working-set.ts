/**
 * The working set of one layer's compute, in values: what an implementation holds while a batch goes
 * through a layer. The planner costs it (times the device's bytes per value) as GPU working space, and
 * the CPU runtime lays out exactly this much per chunk of sequences, so its working memory is what the
 * plan counts.
 *
 * - activations: per token, the residual stream and the normalised input (2h), and the wider of
 *   q, k, v and the attention output (4h) or the FFN intermediate (f; 3f for SwiGLU's gate, up and
 *   product; top-k experts' worth for MoE);
 * - attention over one sequence at a time: its K and V in compute precision (2 x context x kv) and the
 *   larger of the scores/partials scratch of a prefill (2t x headDim x 2 + t x context) or a decode
 *   step (heads x context + 2h + heads);
 * - kernel scratch: KERNEL_TILE_ROWS weight rows decoded at a time, and their output tile.
 */
import { headDim, kvDim, type ModelSpec, qDim } from "./model-spec.js";

/** Weight rows a GEMM decodes into compute precision at a time (the CPU backend's linear kernel). */
export const KERNEL_TILE_ROWS = 16;

export function ffnWorkingWidth(model: ModelSpec): number {
  const moe = model.moe;
  const width = moe
    ? moe.expertsPerToken * moe.expertFfnSize + (moe.sharedExperts ?? 0) * (moe.sharedExpertFfnSize ?? 0)
    : model.ffnSize;
  return width * (model.ffnKind === "swiglu" ? 3 : 1);
}

export function layerWorkingValues(
  model: ModelSpec,
  sequences: number,
  tokensPerSequence: number,
  context: number,
): number {
  const h = model.hiddenSize;
  const nh = model.numHeads;
  const hd = headDim(model);
  const q = qDim(model);
  const f = ffnWorkingWidth(model);
  const rows = sequences * tokensPerSequence;
  const t = tokensPerSequence;
  const attentionScratch = Math.max(2 * t * hd + 2 * context * hd + t * context, nh * context + 2 * q + nh);
  return (
    rows * (2 * h + Math.max(2 * h + 2 * q, f) + KERNEL_TILE_ROWS) +
    KERNEL_TILE_ROWS * Math.max(h, q, f) +
    2 * context * kvDim(model) +
    attentionScratch
  );
}
