/**
 * What an export says when its engine cannot split a stage over several GPUs (tensor parallelism): it
 * runs each stage on the stage's first GPU, which then holds the whole stage, T times the plan's
 * per-GPU weights and KV cache on every tier.
 */
import type { PipelinePlan } from "../core/pipeline-plan.js";

/** The warning for a tensor-parallel plan exported to `engine`, which runs one GPU per stage; undefined for T = 1. */
export function tensorParallelFallbackWarning(pipeline: PipelinePlan, engine: string): string | undefined {
  const T = pipeline.tensorParallelSize ?? 1;
  if (T === 1) return undefined;
  const gpus = pipeline.stages.map((s) => `${s.gpu.node}.${s.gpu.index}`).join(", ");
  return `the plan splits each stage over ${T} GPUs (tensor parallelism), which ${engine} cannot express: each stage runs on its first GPU (${gpus}), the other ${T - 1} of each stage stay idle, and that GPU and its host share hold the whole stage, ${T} times the plan's per-GPU weights and KV cache on each tier, which may not fit; plan with --tensor-parallel 1 for a plan ${engine} runs as planned`;
}
