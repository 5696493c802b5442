/**
 * `exportPlan()`: turns a Spillway plan into the configuration another engine runs (FlexGen's command
 * line, llama.cpp flags, an Accelerate device_map, a DeepSpeed ZeRO-Inference config, vLLM flags), with
 * a comment header of the assumptions and warnings for what the engine cannot express.
 */
import { InputError } from "../core/input-error.js";
import type { Plan } from "../core/plan.js";
import { exportAccelerate } from "./accelerate.js";
import { exportDeepspeed } from "./deepspeed.js";
import { EXPORT_TARGETS, type ExportResult, type ExportTarget, isExportTarget } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { exportFlexgen } from "./flexgen.js";
import { exportLlamaCpp } from "./llama-cpp.js";
import { exportVllm } from "./vllm.js";

export { EXPORT_TARGETS, type ExportResult, type ExportTarget, isExportTarget } from "./export-result.js";
export type { ExportOptions } from "./export-source.js";

/** Exports a plan (from plan(), or a plan file read with readPlanFile()) for `target`. */
export function exportPlan(plan: Plan, target: ExportTarget, options: ExportOptions = {}): ExportResult {
  if (!isExportTarget(target))
    throw new InputError(
      "--to",
      undefined,
      `unknown export target ${JSON.stringify(target)}; expected one of ${EXPORT_TARGETS.join(", ")}`,
    );
  switch (target) {
    case "flexgen":
      return exportFlexgen(plan);
    case "llama.cpp":
      return exportLlamaCpp(plan, options);
    case "accelerate":
      return exportAccelerate(plan);
    case "deepspeed":
      return exportDeepspeed(plan);
    case "vllm":
      return exportVllm(plan);
  }
}
