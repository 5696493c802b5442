/** The engines a plan exports to, and what an export is. */
export const EXPORT_TARGETS = ["flexgen", "llama.cpp", "accelerate", "deepspeed", "vllm"] as const;
export type ExportTarget = (typeof EXPORT_TARGETS)[number];

export interface ExportResult {
  readonly target: ExportTarget;
  /** What to run or load: a command line (flexgen, llama.cpp, vllm) or JSON (accelerate, deepspeed), with its comment header. */
  readonly text: string;
  /** What the engine cannot express of the plan (also in the text's header). */
  readonly warnings: string[];
}

export function isExportTarget(value: unknown): value is ExportTarget {
  return typeof value === "string" && (EXPORT_TARGETS as readonly string[]).includes(value);
}
