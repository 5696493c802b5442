import type { ModelSpec } from "../core/model-spec.js";
import { INPUT_LIMIT_BYTES, inputName, readInputText } from "../core/read-input-file.js";
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
  const text = readInputText(path, {
    maxBytes: INPUT_LIMIT_BYTES.trace,
    expected: "a routing trace file",
    what: "a routing trace",
  });
  return parseRoutingTrace(
    text,
    inputName(path),
    options.format ?? detectRoutingFormat(path, text),
    options.given ?? {},
  );
}
