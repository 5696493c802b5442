/** `--routing FILE`: a routing trace (CSV or Megatron JSONL) checked against the MoE model it is for. */
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { metaFromModel, readRoutingTrace } from "../routing/read-routing-trace.js";
import type { RoutingTrace } from "../routing/routing-trace.js";

/** A routing trace file (CSV or Megatron JSONL) checked against the model. */
export function readRouting(path: string, model: ModelSpec): { trace: RoutingTrace; source: string } {
  if (!model.moe)
    throw new InputError(
      "--routing",
      undefined,
      `${model.name} is not a Mixture-of-Experts model; routing traces apply to MoE plans`,
    );
  const trace = readRoutingTrace(path, { given: metaFromModel(model) });
  const m = trace.meta;
  if (
    m.numLayers !== model.numLayers ||
    m.numExperts !== model.moe.numExperts ||
    m.expertsPerToken !== model.moe.expertsPerToken
  ) {
    throw new InputError(
      path,
      undefined,
      `the trace has ${m.numLayers} layers of ${m.numExperts} experts (top-${m.expertsPerToken}); ${model.name} has ${model.numLayers} of ${model.moe.numExperts} (top-${model.moe.expertsPerToken})`,
    );
  }
  return { trace, source: path };
}
