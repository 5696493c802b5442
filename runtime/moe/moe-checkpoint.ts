/**
 * A Mixture-of-Experts checkpoint folder as the CPU runtime loads it: config.json (Hugging Face's
 * MixtralConfig or Qwen2MoeConfig, read by models/hf-config.ts into the same ModelSpec the planner
 * uses, plus the numbers only the forward pass needs) and safetensors files (one, or shards with an
 * index) whose every tensor is checked against the config before any weight is read: present, the
 * config's shape (an error names the file, the tensor, and both shapes), a floating-point dtype.
 *
 * Weights are handed out as fp16 bytes: F16 tensors as stored, BF16, F32 and F64 ones converted
 * (rounded to the nearest fp16). The runtime computes over fp16 weights; both its passes (the
 * all-resident reference and the configuration under test) read the same converted values.
 */
import { asObject, type FieldContext, fail, readOptionalNumber } from "../../core/fields.js";
import { describeValue } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { modelSpecFromHfConfig } from "../../models/hf-config.js";
import {
  closeCheckpointFiles,
  type LocatedTensor,
  locateTensors,
  openCheckpointFiles,
  readCheckpointConfig,
} from "../checkpoint-files.js";
import { toFloat16Array } from "../fp16.js";
import { isRunnableMoe, moeTensorShapes, RUNNABLE_MOE_FAMILIES } from "./moe-tensor-shapes.js";
import { PRE_GATED_CONFIG_KEY, readPreGatedMarker } from "./pre-gated.js";

/** What the forward pass needs beyond the ModelSpec. */
export interface MoeRuntimeConfig {
  readonly model: ModelSpec;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  /**
   * Whether the router renormalises its top-k probabilities to sum to one: always for Mixtral; a
   * Qwen2-MoE config's `norm_topk_prob` (false when absent, as in Qwen2MoeConfig).
   */
  readonly normTopKProb: boolean;
  /** Attention sees at most this many past positions (Mixtral's `sliding_window`); absent: all of them. */
  readonly slidingWindow?: number;
  /** A pre-gated Mixtral (config.json `"pre_gated": true`; pre-gated.ts): layer l holds layer l + 1's router. */
  readonly preGated: boolean;
}

/** Defaults of each family's Hugging Face config class (configuration_mixtral.py, configuration_qwen2_moe.py). */
const DEFAULTS = {
  mixtral: { ropeTheta: 1e6, rmsNormEps: 1e-5 },
  qwen2_moe: { ropeTheta: 10000, rmsNormEps: 1e-6 },
} as const;

/** Reads and checks dir/config.json: a Mixtral or Qwen2-MoE config whose forward pass the runtime implements. */
export function readMoeConfig(dir: string): MoeRuntimeConfig {
  const { path, data } = readCheckpointConfig(dir);
  const model = modelSpecFromHfConfig(data, path);
  const ctx: FieldContext = { source: path, path: "" };
  if (!isRunnableMoe(model))
    fail(
      ctx,
      "model_type",
      `the MoE runtime runs ${RUNNABLE_MOE_FAMILIES.join(" and ")} checkpoints, got ${JSON.stringify(model.family)}`,
    );
  const o = asObject(data, ctx);
  const defaults = DEFAULTS[model.family];
  if (o.rope_scaling !== undefined && o.rope_scaling !== null)
    fail(
      ctx,
      "rope_scaling",
      `is not implemented by the runtime (plain RoPE only), got ${describeValue(o.rope_scaling)}`,
    );
  if (model.family === "qwen2_moe" && o.use_sliding_window === true)
    fail(
      ctx,
      "use_sliding_window",
      "true is not implemented by the runtime; released Qwen2-MoE checkpoints set it to false",
    );
  if (model.family === "qwen2_moe" && o.norm_topk_prob !== undefined && typeof o.norm_topk_prob !== "boolean")
    fail(ctx, "norm_topk_prob", `expected true or false, got ${describeValue(o.norm_topk_prob)}`);
  const preGated = readPreGatedMarker(o, path);
  if (preGated && model.family !== "mixtral")
    fail(ctx, PRE_GATED_CONFIG_KEY, `pre-gated checkpoints are Mixtral-family; this is ${model.family}`);
  const window =
    model.family === "mixtral" && o.sliding_window !== null
      ? readOptionalNumber(o, "sliding_window", ctx, { min: 1, integer: true })
      : undefined;
  return {
    model,
    ropeTheta: readOptionalNumber(o, "rope_theta", ctx, { greaterThan: 0 }) ?? defaults.ropeTheta,
    rmsNormEps: readOptionalNumber(o, "rms_norm_eps", ctx, { greaterThan: 0 }) ?? defaults.rmsNormEps,
    normTopKProb: model.family === "mixtral" ? true : o.norm_topk_prob === true,
    ...(window !== undefined ? { slidingWindow: window } : {}),
    preGated,
  };
}

export interface MoeCheckpoint {
  readonly dir: string;
  readonly config: MoeRuntimeConfig;
  /** A tensor's values as fp16 bits (little-endian bytes), by its Hugging Face name; read on each call. */
  fp16Bytes(name: string): Uint8Array;
  close(): void;
}

/** Opens and checks the checkpoint in `dir`; weights are read when asked for. */
export function loadMoeCheckpoint(dir: string): MoeCheckpoint {
  const config = readMoeConfig(dir);
  const files = openCheckpointFiles(dir);
  let located: Map<string, LocatedTensor>;
  try {
    located = locateTensors(dir, config.model.name, moeTensorShapes(config.model, config.preGated), files);
  } catch (error) {
    closeCheckpointFiles(files);
    throw error;
  }
  return {
    dir,
    config,
    fp16Bytes(name: string): Uint8Array {
      const found = located.get(name);
      if (!found) throw new RangeError(`${name} is not a tensor of ${config.model.name}`);
      const { file, storedName } = found;
      if (file.info(storedName).dtype === "F16") return file.readRaw(storedName);
      const half = toFloat16Array(file.readFloat32(storedName));
      return new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
    },
    close: () => closeCheckpointFiles(files),
  };
}
