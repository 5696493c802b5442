/** The engines a plan exports to, and what an export is. */
import type { Policy } from "../core/policy.js";
import type { EngineKnobs } from "../engines/engine-model.js";
import type { EngineName } from "../engines/engine-names.js";
export const EXPORT_TARGETS = ["flexgen", "llama.cpp", "accelerate", "deepspeed", "vllm"] as const;
export type ExportTarget = (typeof EXPORT_TARGETS)[number];

export interface ExportResult {
  readonly target: ExportTarget;
  /** What to run or load: a command line (flexgen, llama.cpp, vllm) or JSON (accelerate, deepspeed), with its comment header. */
  readonly text: string;
  /** What the engine cannot express of the plan (also in the text's header). */
  readonly warnings: string[];
  /** The target engine's own settings as exported (llama.cpp: -ngl, the GGUF type, --n-cpu-moe). */
  readonly engineKnobs?: EngineKnobs;
  /**
   * The exported settings as a policy the target engine's model realizes into them, where the export places
   * weights by its own rule (Accelerate's device_map of whole fp16 layers); the prediction is made for it.
   */
  readonly enginePolicy?: Policy;
  /** What the target engine's model predicts for the exported settings (exporters/export-prediction.ts). */
  readonly predicted?: ExportPrediction;
}

/** The target engine's predicted throughput for the exported settings, or why there is none. */
export interface ExportPrediction {
  /** The engine model used; absent when the target has none (vLLM). */
  readonly engine?: EngineName;
  /** The profile predicted on. */
  readonly hardware?: string;
  readonly throughputTokensPerSecond?: number;
  readonly prefillSeconds?: number;
  readonly decodeSeconds?: number;
  readonly feasible?: boolean;
  readonly infeasibleReasons?: readonly string[];
  readonly bottleneck?: string;
  /** Why there is no prediction (no engine model, no profile, the engine cannot run the plan). */
  readonly reason?: string;
}

export function isExportTarget(value: unknown): value is ExportTarget {
  return typeof value === "string" && (EXPORT_TARGETS as readonly string[]).includes(value);
}
