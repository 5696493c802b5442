/**
 * The target engine's predicted throughput for the exported settings: the plan's policy scored on the
 * engine model of the export target (FlexGen, llama.cpp with the exported -ngl and GGUF type,
 * Accelerate, DeepSpeed), on the hardware profile given. vLLM has no engine model.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Plan } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import { formatSeconds } from "../core/units.js";
import type { EngineKnobs } from "../engines/engine-model.js";
import type { EngineName } from "../engines/engine-names.js";
import { EngineUnsupportedError } from "../engines/engine-unsupported-error.js";
import { predictOnEngine } from "../engines/plan-for-engine.js";
import type { ExportPrediction, ExportTarget } from "./export-result.js";

export const EXPORT_ENGINES: Readonly<Record<ExportTarget, EngineName | undefined>> = {
  flexgen: "flexgen",
  "llama.cpp": "llama.cpp",
  accelerate: "accelerate",
  deepspeed: "deepspeed",
  vllm: undefined,
};

/** `knobs`: the engine settings the exporter wrote (llama.cpp), else the plan's own when it was made for that engine. */
export function exportPrediction(
  plan: Plan,
  target: ExportTarget,
  knobs: EngineKnobs | undefined,
  hardware: HardwareProfile | undefined,
  enginePolicy: Policy = plan.policy,
): ExportPrediction {
  const engine = EXPORT_ENGINES[target];
  if (!engine) return { reason: `Spillway has no engine model for ${target}` };
  if (plan.pipeline)
    return { engine, reason: `${engine}'s engine model predicts one GPU; the pipeline's prediction is the plan's own` };
  if (!hardware)
    return {
      engine,
      reason: `no hardware profile given to predict on (the plan's is ${JSON.stringify(plan.hardware)}; spillway export --hardware gives one)`,
    };
  const engineKnobs = knobs ?? (plan.engine === engine ? plan.engineKnobs : undefined);
  try {
    const p = predictOnEngine({
      engine,
      model: plan.modelSpec,
      hardware,
      workload: plan.workload,
      policy: enginePolicy,
      ...(engineKnobs ? { knobs: engineKnobs } : {}),
    });
    return {
      engine,
      hardware: hardware.name,
      throughputTokensPerSecond: p.throughputTokensPerSecond,
      prefillSeconds: p.prefillSeconds,
      decodeSeconds: p.decodeSeconds,
      feasible: p.feasible,
      infeasibleReasons: p.infeasibleReasons,
      bottleneck: p.bottleneck,
    };
  } catch (error) {
    if (error instanceof EngineUnsupportedError) return { engine, reason: error.message };
    throw error;
  }
}

/** The prediction as header lines. */
export function predictionLines(p: ExportPrediction): string[] {
  if (p.throughputTokensPerSecond === undefined) return [`predicted: none (${p.reason})`];
  return [
    `predicted by Spillway's ${p.engine} engine model on ${p.hardware}: ${p.throughputTokensPerSecond.toPrecision(4)} token/s (prefill ${formatSeconds(p.prefillSeconds!)}, decode ${formatSeconds(p.decodeSeconds!)}; bottleneck ${p.bottleneck})${p.feasible ? "" : `; DOES NOT FIT: ${p.infeasibleReasons!.join("; ")}`}`,
  ];
}
