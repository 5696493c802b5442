/**
 * The model one pipeline stage runs, as the single-GPU planner and simulator see it: the stage's
 * decoder layers [from, to), with the embedding table only where it lives. FlexGen's pipeline
 * (flexgen/dist_flex_opt.py) puts the input embedding on the first stage and the output embedding (the
 * LM head, tied to the token table in OPT) on the last; a middle stage holds neither. Spillway's cost
 * model always has a token table and an LM head step, so a middle stage is costed with a one-token
 * vocabulary: a table of one row and a 1 x h LM head, which cost nothing measurable. The first stage
 * keeps the full table and is also charged the LM head's step (its compute and, when the table is off
 * the GPU, its streaming), which it does not run: a conservative error of one LM head per micro-batch
 * token step on the first stage (for OPT-175B about a third of one layer's weights).
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { StageRole } from "../../core/pipeline-plan.js";

export type { StageRole };

export function stageRole(index: number, stages: number): StageRole {
  if (stages === 1) return "only";
  return index === 0 ? "first" : index === stages - 1 ? "last" : "middle";
}

/** The model a stage of `layers` decoder layers in role `role` is costed as. */
export function stageModel(model: ModelSpec, layers: number, role: StageRole): ModelSpec {
  if (role === "only" && layers === model.numLayers) return model;
  return {
    ...model,
    numLayers: layers,
    ...(role === "middle" ? { vocabSize: 1 } : {}),
  };
}

/** Bytes of the hidden states one micro-batch hands to the next stage at a token step (fp16 activations). */
export function hiddenStateBytes(model: ModelSpec, sequences: number, tokens: number): number {
  return sequences * tokens * model.hiddenSize * 2;
}

/** Bytes of the token ids the last stage returns to the first after each token step (int64, FlexGen's output ids). */
export function tokenIdBytes(sequences: number): number {
  return sequences * 8;
}
