/**
 * `spillway synth-weights --pregated`: a seeded pre-gated Mixtral-style checkpoint (pre-gated.ts) for a
 * Mixtral-family model, written as one model.safetensors with its config.json. Checked before any
 * work: the model must be a Mixtral-family MoE model and its checkpoint at most one 2 GiB file (the
 * synthetic Mixtral writer does not shard; these checkpoints are for the CPU runtime's tiny models).
 */
import { statSync } from "node:fs";
import { InputError } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { formatBytes } from "../../core/units.js";
import { checkpointBytesLowerBound, DEFAULT_MAX_SHARD_BYTES } from "../synth-weights.js";
import { synthesizeMixtralWeights } from "./synth-mixtral-weights.js";

export function synthesizePreGatedWeights(
  model: ModelSpec,
  outDir: string,
  seed: number,
): { files: string[]; bytes: number } {
  if (model.family !== "mixtral" || !model.moe)
    throw new InputError(
      "--pregated",
      undefined,
      `pre-gated checkpoints are Mixtral-family MoE models; ${model.name} is a ${model.family} model`,
    );
  const bytes = checkpointBytesLowerBound(model);
  if (bytes > DEFAULT_MAX_SHARD_BYTES)
    throw new InputError(
      "--pregated",
      undefined,
      `pre-gated checkpoints are written as one file of at most ${formatBytes(DEFAULT_MAX_SHARD_BYTES)}; ${model.name} needs ${formatBytes(bytes)}`,
    );
  const files = synthesizeMixtralWeights(model, outDir, seed, { preGated: true });
  return { files, bytes: files.reduce((sum, f) => sum + statSync(f).size, 0) };
}
