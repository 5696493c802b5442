/**
 * Reads a routing trace file in any supported format, chosen by extension (.csv; .jsonl, .ndjson) or,
 * for other names, by content (a first non-blank character "{" means JSON Lines, else CSV).
 */
import { readFileSync } from "node:fs";
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { parseMegatronJsonl } from "./megatron-jsonl.js";
import { parseRoutingCsv } from "./routing-csv.js";
import type { RoutingTrace } from "./routing-trace.js";
import type { PartialRoutingMeta } from "./routing-trace-builder.js";

export const ROUTING_FORMATS = ["csv", "megatron-jsonl"] as const;
export type RoutingFormat = (typeof ROUTING_FORMATS)[number];

export function detectRoutingFormat(path: string, text: string): RoutingFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "megatron-jsonl";
  return text.trimStart().startsWith("{") ? "megatron-jsonl" : "csv";
}

/** Trace metadata implied by a model (name, layers, experts, top-k). */
export function metaFromModel(model: ModelSpec): PartialRoutingMeta {
  if (!model.moe) return { model: model.name, numLayers: model.numLayers };
  return {
    model: model.name,
    numLayers: model.numLayers,
    numExperts: model.moe.numExperts,
    expertsPerToken: model.moe.expertsPerToken,
  };
}

export function parseRoutingTrace(
  text: string,
  source: string,
  format: RoutingFormat,
  given: PartialRoutingMeta = {},
): RoutingTrace {
  return format === "csv" ? parseRoutingCsv(text, source, given) : parseMegatronJsonl(text, source, given);
}

export function readRoutingTrace(
  path: string,
  options: { format?: RoutingFormat; given?: PartialRoutingMeta } = {},
): RoutingTrace {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      path,
      undefined,
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a folder; expected a routing trace file"
          : (error as Error).message,
    );
  }
  return parseRoutingTrace(text, path, options.format ?? detectRoutingFormat(path, text), options.given ?? {});
}
