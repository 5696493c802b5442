/**
 * `plan --compare`: each baseline scored on the engine it stands for (Accelerate's device_map on the
 * Accelerate model, ZeRO-Inference on the DeepSpeed model, `-ngl` on the llama.cpp model, FlexGen's
 * choice on the FlexGen model), beside the Spillway model's score of the same policy.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Baseline, BaselineName } from "../planner/baselines.js";
import type { EngineKnobs, PlanEnginePrediction } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { EngineUnsupportedError, planEnginePrediction, predictOnEngine } from "./plan-for-engine.js";

export const BASELINE_ENGINES: Readonly<Record<BaselineName, EngineName>> = {
  accelerate: "accelerate",
  "deepspeed-zero": "deepspeed",
  "llama.cpp": "llama.cpp",
  flexgen: "flexgen",
};

export interface BaselineOnEngine {
  readonly engine: EngineName;
  readonly prediction?: PlanEnginePrediction;
  /** Why the engine cannot run the baseline (its model, or its policy). */
  readonly reason?: string;
}

/**
 * The baseline on its own engine. llama.cpp's baseline is a GGUF file: F16, or Q4_0 where the baseline
 * chose 4-bit weights, and the engine fits `-ngl` by its own memory rule.
 */
export function baselineOnEngine(baseline: Baseline, hardware: HardwareProfile): BaselineOnEngine {
  const engine = BASELINE_ENGINES[baseline.name];
  if (!baseline.plan) return { engine, ...(baseline.reason ? { reason: baseline.reason } : {}) };
  const knobs: EngineKnobs =
    engine === "llama.cpp" ? { ggufType: baseline.plan.policy.compressWeight ? "Q4_0" : "F16" } : {};
  try {
    const prediction = predictOnEngine({
      engine,
      model: baseline.plan.modelSpec,
      hardware,
      workload: baseline.plan.workload,
      policy: baseline.plan.policy,
      knobs,
    });
    return { engine, prediction: planEnginePrediction(prediction) };
  } catch (error) {
    if (error instanceof EngineUnsupportedError) return { engine, reason: error.message };
    throw error;
  }
}
