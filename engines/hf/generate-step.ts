/**
 * The generate loop's own work between two forwards (greedy search), the same for every model family.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { elementwise, type ForwardShape, type HfSegment } from "./segment.js";

/**
 * The greedy loop's own operations after each forward: logits[:, -1, :], argmax, the EOS/pad blend,
 * torch.cat of input_ids and of the attention mask, the unfinished-sequences update and its
 * `.max() == 0` test (a host synchronisation), prepare_inputs_for_generation's slice.
 */
export function generateStep(model: ModelSpec, shape: ForwardShape, source: string): HfSegment {
  const a = model.bytesPerParam;
  return {
    module: "generate",
    part: "generate",
    params: [],
    kernels: [elementwise("argmax over the vocabulary", shape.batch * model.vocabSize * a)],
    dispatchOps: 1 + 1 + 4 + 1 + 2 + 3 + 2 + 1,
    source,
  };
}
