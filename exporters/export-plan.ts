/**
 * `exportPlan()`: turns a Spillway plan into the configuration another engine runs (FlexGen's command
 * line, llama.cpp flags, an Accelerate device_map, a DeepSpeed ZeRO-Inference config, vLLM flags), with
 * a comment header of the assumptions and warnings for what the engine cannot express.
 */
import { InputError } from "../core/input-error.js";
import type { Plan } from "../core/plan.js";
import { exportAccelerate } from "./accelerate.js";
import { exportAcceleratePipeline } from "./accelerate-pipeline.js";
import { exportDeepspeed } from "./deepspeed.js";
import { exportDeepspeedPipeline } from "./deepspeed-pipeline.js";
import { EXPORT_ENGINES, exportPrediction, predictionLines } from "./export-prediction.js";
import { EXPORT_TARGETS, type ExportResult, type ExportTarget, isExportTarget } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { fitExportBatch } from "./fit-export-batch.js";
import { exportFlexgen } from "./flexgen.js";
import { exportFlexgenPipeline } from "./flexgen-pipeline.js";
import { exportLlamaCpp } from "./llama-cpp.js";
import { exportLlamaCppRpc } from "./llama-cpp-rpc.js";
import { exportVllm } from "./vllm.js";
import { exportVllmPipeline } from "./vllm-pipeline.js";

export { EXPORT_TARGETS, type ExportResult, type ExportTarget, isExportTarget } from "./export-result.js";
export type { ExportOptions } from "./export-source.js";

/**
 * Exports a plan (from plan(), or a plan file read with readPlanFile()) for `target`. With
 * `options.hardware`, the header and `predicted` carry the target engine's predicted throughput for
 * the exported settings.
 */
export function exportPlan(plan: Plan, target: ExportTarget, options: ExportOptions = {}): ExportResult {
  if (!isExportTarget(target))
    throw new InputError(
      "--to",
      undefined,
      `unknown export target ${JSON.stringify(target)}; expected one of ${EXPORT_TARGETS.join(", ")}`,
    );
  // Accelerate and DeepSpeed run the block as one batch with its KV on the GPU, FlexGen by its own placement:
  // at most the batch their memory fits (exporters/fit-export-batch.ts).
  const engine = EXPORT_ENGINES[target];
  const enginePolicyOf = (p: Plan) => exportTo(p, target, options).enginePolicy ?? p.policy;
  const fitted =
    engine && options.hardware ? fitExportBatch(plan, engine, options.hardware, enginePolicyOf) : undefined;
  const exported = fitted?.plan ?? plan;
  const batchWarning = fitted ? [fitted.warning] : [];
  // The settings first (llama.cpp's -ngl and GGUF type are the exporter's), then the header with their prediction.
  const settings = exportTo(exported, target, options);
  const predicted = exportPrediction(
    exported,
    target,
    settings.engineKnobs,
    options.hardware,
    settings.enginePolicy ?? exported.policy,
  );
  const result = exportTo(exported, target, {
    ...options,
    predictionLines: [...predictionLines(predicted), ...batchWarning.map((w) => `warning: ${w}`)],
  });
  return { ...result, warnings: [...batchWarning, ...result.warnings], predicted };
}

function exportTo(plan: Plan, target: ExportTarget, options: ExportOptions): ExportResult {
  if (plan.pipeline) {
    switch (target) {
      case "flexgen":
        return exportFlexgenPipeline(plan, plan.pipeline, options);
      case "llama.cpp":
        return exportLlamaCppRpc(plan, plan.pipeline, options);
      case "accelerate":
        return exportAcceleratePipeline(plan, plan.pipeline, options);
      case "deepspeed":
        return exportDeepspeedPipeline(plan, plan.pipeline, options);
      case "vllm":
        return exportVllmPipeline(plan, plan.pipeline, options);
    }
  }
  switch (target) {
    case "flexgen":
      return exportFlexgen(plan, options);
    case "llama.cpp":
      return exportLlamaCpp(plan, options);
    case "accelerate":
      return exportAccelerate(plan, options);
    case "deepspeed":
      return exportDeepspeed(plan, options);
    case "vllm":
      return exportVllm(plan, options);
  }
}
