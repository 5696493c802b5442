/**
 * How many sequences of a GPU batch one layer computes at a time, on every backend: as many as the
 * planner's working-space allowance holds (its working set, core/layer-working-set.ts, computed in
 * fp32), but never fewer than the whole batch at one token per sequence, because every chunk
 * re-streams the layer's weights through the GEMMs (splitting a decode batch would multiply the
 * weight traffic the plan costs once).
 */
import { layerWorkingValues } from "../core/layer-working-set.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { PolicyCostContext } from "../planner/spillway/evaluate-policy.js";

export function chunkSequences(
  model: ModelSpec,
  context: PolicyCostContext,
  gpuBatchSize: number,
  tokensPerSequence: number,
  contextTokens: number,
): number {
  if (tokensPerSequence === 1) return gpuBatchSize;
  const budget = context.costModel.workingBytes(tokensPerSequence, contextTokens) - gpuBatchSize * model.vocabSize * 4;
  let chunk = gpuBatchSize;
  while (chunk > 1 && 4 * layerWorkingValues(model, chunk, tokensPerSequence, contextTokens) > budget) chunk--;
  return chunk;
}
