/**
 * Accelerate and DeepSpeed ZeRO-Inference keep every sequence's KV cache on the GPU and run a block as one
 * batch, so a Spillway block sized for KV off the GPU can overflow them. `fitExportBatch` finds, by the target
 * engine's model on the hardware given, the largest batch (up to the plan's block) whose memory fits, and the
 * plan at that batch (one GPU batch), which the export then writes and predicts.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Plan } from "../core/plan.js";
import type { EngineName } from "../engines/engine-names.js";
import { EngineUnsupportedError } from "../engines/engine-unsupported-error.js";
import { predictPlanOnEngine } from "../engines/plan-for-engine.js";
import { blockSize } from "./export-source.js";

/** Engines whose export runs the plan's block as one batch with its KV cache on the GPU. */
export const ONE_BATCH_ENGINES: readonly EngineName[] = ["accelerate", "deepspeed"];

export interface FittedBatch {
  /** The plan with its policy at `sequences` sequences in one GPU batch. */
  readonly plan: Plan;
  readonly sequences: number;
  /** Why the plan's own block does not fit (the engine model's reasons). */
  readonly reason: string;
}

/** The plan with `sequences` sequences in one GPU batch. */
function atBatch(plan: Plan, sequences: number): Plan {
  return { ...plan, policy: { ...plan.policy, gpuBatchSize: sequences, numGpuBatches: 1 } };
}

/**
 * The largest batch up to the plan's block that `engine` fits on `hardware`, when the block itself does not;
 * undefined when the block fits, when not even one sequence does, for pipelines, and where the engine cannot
 * run the model.
 */
export function fitExportBatch(plan: Plan, engine: EngineName, hardware: HardwareProfile): FittedBatch | undefined {
  if (plan.pipeline || !ONE_BATCH_ENGINES.includes(engine)) return undefined;
  const predictAt = (sequences: number) => predictPlanOnEngine(atBatch(plan, sequences), engine, hardware);
  const block = blockSize(plan.policy);
  try {
    const asked = predictPlanOnEngine(plan, engine, hardware);
    if (asked.feasible || !predictAt(1).feasible) return undefined;
    let low = 1;
    let high = block;
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (predictAt(mid).feasible) low = mid;
      else high = mid;
    }
    return { plan: atBatch(plan, low), sequences: low, reason: asked.infeasibleReasons.join("; ") };
  } catch (error) {
    if (error instanceof EngineUnsupportedError) return undefined;
    throw error;
  }
}
