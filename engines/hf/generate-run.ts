/**
 * The forwards of one `model.generate(max_new_tokens = genLen)` call over one batch: a prefill forward
 * over the whole prompt (which also yields the first token), then genLen - 1 forwards of one token each
 * over a KV cache that grows by one position per step (transformers GenerationMixin greedy search).
 */
import type { Workload } from "../../core/workload.js";
import type { ForwardShape } from "./segment.js";

export interface GenerateForward {
  readonly phase: "prefill" | "decode";
  readonly label: string;
  readonly shape: ForwardShape;
}

export function generateForwards(batch: number, workload: Workload): GenerateForward[] {
  const { promptLen: s, genLen: n } = workload;
  if (!Number.isInteger(batch) || batch < 1)
    throw new Error(`generate() batch (policy gpuBatchSize x numGpuBatches): expected an integer >= 1, got ${batch}`);
  if (!Number.isInteger(s) || s < 1) throw new Error(`workload promptLen: expected an integer >= 1, got ${s}`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`workload genLen: expected an integer >= 1, got ${n}`);
  const forwards: GenerateForward[] = [
    { phase: "prefill", label: `prefill (${s} prompt tokens)`, shape: { batch, queryLen: s, contextLen: s } },
  ];
  for (let i = 1; i < n; i++)
    forwards.push({
      phase: "decode",
      label: `decode token ${i + 1} (context ${s + i})`,
      shape: { batch, queryLen: 1, contextLen: s + i },
    });
  return forwards;
}
