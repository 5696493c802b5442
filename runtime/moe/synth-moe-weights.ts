/**
 * `spillway synth-weights` for the Mixture-of-Experts families the CPU runtime runs: a seeded fp16
 * model.safetensors in Hugging Face's layout (runtime/moe/moe-tensor-shapes.ts) and a config.json —
 * MixtralConfig for Mixtral, Qwen2MoeConfig for Qwen2-MoE — that `plan --model DIR` and the runtime read.
 * Values are drawn as synth-mixtral-weights.ts draws them (each tensor from (seed, name) alone).
 *
 * One file, at most 2 GiB: these checkpoints are for running on the CPU backend, which holds every
 * expert's home copy in host memory.
 */
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { OnProgress } from "../../core/progress.js";
import { writeFileAtomic } from "../../core/write-file-atomic.js";
import { SINGLE_FILE_NAME } from "../checkpoint-files.js";
import { writeSafetensors } from "../safetensors.js";
import {
  checkSynthBudget,
  DEFAULT_MAX_SHARD_BYTES,
  makeDirectory,
  type SynthResult,
  writeProgress,
} from "../synth-weights.js";
import { isRunnableMoe, moeTensorShapes, RUNNABLE_MOE_FAMILIES } from "./moe-tensor-shapes.js";
import { DEFAULT_RMS_NORM_EPS, DEFAULT_ROPE_THETA, hfMixtralConfig, seededTensors } from "./synth-mixtral-weights.js";

/** Qwen1.5-MoE-A2.7B's rms_norm_eps (its config.json); the synthetic Qwen2-MoE checkpoints use it. */
export const QWEN2_MOE_RMS_NORM_EPS = 1e-6;

/**
 * A Hugging Face Qwen2MoeConfig for `model`, with Qwen1.5-MoE-A2.7B's choices where the shape does not
 * decide: rope_theta 1e6, rms_norm_eps 1e-6, norm_topk_prob false (the top-k router weights are not
 * renormalised), every layer sparse.
 */
export function hfQwen2MoeConfig(model: ModelSpec): Record<string, unknown> {
  const moe = model.moe!;
  return {
    _name_or_path: model.name,
    architectures: ["Qwen2MoeForCausalLM"],
    model_type: "qwen2_moe",
    hidden_size: model.hiddenSize,
    intermediate_size: model.ffnSize,
    moe_intermediate_size: moe.expertFfnSize,
    shared_expert_intermediate_size: moe.sharedExpertFfnSize,
    num_hidden_layers: model.numLayers,
    num_attention_heads: model.numHeads,
    num_key_value_heads: model.numKvHeads,
    num_experts: moe.numExperts,
    num_experts_per_tok: moe.expertsPerToken,
    norm_topk_prob: false,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    vocab_size: model.vocabSize,
    max_position_embeddings: model.maxPositions,
    rope_theta: DEFAULT_ROPE_THETA,
    rms_norm_eps: QWEN2_MOE_RMS_NORM_EPS,
    hidden_act: "silu",
    tie_word_embeddings: false,
    use_sliding_window: false,
    router_aux_loss_coef: 0.001,
    torch_dtype: "float16",
  };
}

export interface SynthMoeOptions {
  readonly seed: number;
  /** Called as tensors are written: phase "synth-weights", in bytes, with the tensor written. */
  readonly onProgress?: OnProgress;
}

/**
 * Writes model.safetensors and then config.json (so a folder with a config.json holds a complete
 * checkpoint) into `outDir`, after the checks synth-weights makes of every model; on failure, the
 * files this call wrote are removed.
 */
export function synthesizeMoeWeights(model: ModelSpec, outDir: string, options: SynthMoeOptions): SynthResult {
  if (!isRunnableMoe(model))
    throw new InputError(
      "--model",
      undefined,
      `synth-weights writes OPT checkpoints and Mixture-of-Experts checkpoints of the families the runtime runs (${RUNNABLE_MOE_FAMILIES.join(", ")}); ${model.name} is a ${model.family} model`,
    );
  const { seed, onProgress } = options;
  checkSynthBudget(model, outDir, seed, DEFAULT_MAX_SHARD_BYTES);
  makeDirectory(outDir);
  const tensors = seededTensors(moeTensorShapes(model), model, seed);
  const totalBytes = tensors.reduce((sum, t) => sum + 2 * t.shape.reduce((a, b) => a * b, 1), 0);
  const progress = writeProgress(onProgress, totalBytes);
  const weights = join(outDir, SINGLE_FILE_NAME);
  const config = join(outDir, "config.json");
  const written: string[] = [];
  try {
    progress(0);
    writeSafetensors(
      weights,
      tensors.map((t) => ({
        ...t,
        data: () => {
          const chunks = typeof t.data === "function" ? t.data() : [t.data];
          progress(2 * t.shape.reduce((a, b) => a * b, 1), t.name);
          return chunks;
        },
      })),
      { format: "pt", generator: "spillway synth-weights", seed: String(seed) },
    );
    written.push(weights);
    const hfConfig =
      model.family === "mixtral"
        ? hfMixtralConfig(model, DEFAULT_ROPE_THETA, DEFAULT_RMS_NORM_EPS)
        : hfQwen2MoeConfig(model);
    writeFileAtomic(config, `${JSON.stringify(hfConfig, null, 2)}\n`);
    written.push(config);
  } catch (error) {
    for (const path of written) rmSync(path, { force: true });
    throw error;
  }
  return { files: written, bytes: written.reduce((sum, path) => sum + statSync(path).size, 0) };
}
