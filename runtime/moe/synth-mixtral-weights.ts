/**
 * Synthetic Mixtral-style checkpoints: a config.json with Hugging Face's MixtralConfig fields and one
 * model.safetensors of seeded random fp16 weights in Mixtral's tensor layout, small enough to run on the
 * CPU backend in milliseconds. Same spec and seed give the same bytes on every machine.
 *
 * Scaling keeps the network numerically tame and the router's choices varied:
 * - every linear weight is N(0, 1/fan_in) (unit-variance outputs from the unit-RMS normalised input);
 *   the two projections that write into the residual stream (o_proj, w2 / down_proj) are further scaled by
 *   1/sqrt(2 x layers), as GPT-2 does, so the residual stays of order one at any depth;
 * - the router (`block_sparse_moe.gate`, Qwen2-MoE's `mlp.gate`) is N(0, (2.5)^2 / hidden): gate logits of standard deviation
 *   ~2.5, so the softmax is decisive but different tokens pick different experts;
 * - RMSNorm weights are 1 + N(0, 0.1^2), so a runtime that ignored them would compute something else;
 * - embeddings N(0, 1), the LM head N(0, 1/hidden).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describeValue, InputError } from "../../core/input-error.js";
import { checkModelConsistency, headDim, type ModelSpec } from "../../core/model-spec.js";
import { mulberry32 } from "../../core/random.js";
import { readJsonFile } from "../../core/read-json-file.js";
import { writeFileAtomic } from "../../core/write-file-atomic.js";
import { toFloat16Array } from "../fp16.js";
import { type TensorToWrite, writeSafetensors } from "../safetensors.js";
import { moeTensorShapes } from "./moe-tensor-shapes.js";
import { PRE_GATED_CONFIG_KEY, readPreGatedMarker } from "./pre-gated.js";

export const MIXTRAL_FILE_NAME = "model.safetensors";
/** Mixtral-8x7B's rope_theta; the synthetic checkpoints use it too. */
export const DEFAULT_ROPE_THETA = 1e6;
/** Mixtral-8x7B's rms_norm_eps. */
export const DEFAULT_RMS_NORM_EPS = 1e-5;

export interface TinyMixtralOptions {
  readonly numLayers?: number;
  readonly hiddenSize?: number;
  readonly numHeads?: number;
  readonly numKvHeads?: number;
  readonly expertFfnSize?: number;
  readonly numExperts?: number;
  readonly expertsPerToken?: number;
  readonly vocabSize?: number;
  readonly maxPositions?: number;
}

/** A catalogue-independent Mixtral-family ModelSpec (defaults: 4 layers, hidden 64, 4/2 heads, 8 experts top-2, expert FFN 128, vocab 256). */
export function tinyMixtralSpec(options: TinyMixtralOptions = {}): ModelSpec {
  const ffn = options.expertFfnSize ?? 128;
  const hidden = options.hiddenSize ?? 64;
  const spec: ModelSpec = {
    name: "synthetic-mixtral-tiny",
    family: "mixtral",
    numLayers: options.numLayers ?? 4,
    hiddenSize: hidden,
    ffnSize: ffn,
    numHeads: options.numHeads ?? 4,
    numKvHeads: options.numKvHeads ?? 2,
    vocabSize: options.vocabSize ?? 256,
    maxPositions: options.maxPositions ?? 256,
    ffnKind: "swiglu",
    wordEmbedDim: hidden,
    tiedEmbeddings: false,
    bytesPerParam: 2,
    moe: { numExperts: options.numExperts ?? 8, expertsPerToken: options.expertsPerToken ?? 2, expertFfnSize: ffn },
  };
  return checkModelConsistency(spec, { source: "tinyMixtralSpec", path: "" });
}

export interface MixtralTensorShape {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Every tensor of a Mixtral checkpoint, in file order: embeddings, layers (layerWeightTensors order), final norm, LM head. */
export function mixtralTensorShapes(model: ModelSpec, preGated = false): MixtralTensorShape[] {
  if (model.family !== "mixtral" || !model.moe) throw new Error(`${model.name} is not a Mixtral-family MoE model`);
  return moeTensorShapes(model, preGated);
}

/** How each tensor's values are drawn (see the header). */
function tensorScale(model: ModelSpec, name: string, shape: readonly number[]): { mean: number; std: number } {
  if (name.endsWith("norm.weight")) return { mean: 1, std: 0.1 };
  if (name === "model.embed_tokens.weight") return { mean: 0, std: 1 };
  const fanIn = shape[shape.length - 1]!;
  if (/\.(block_sparse_moe|mlp)\.(pre_)?gate\.weight$/.test(name)) return { mean: 0, std: 2.5 / Math.sqrt(fanIn) };
  const writesResidual = /\.(o_proj|w2|down_proj)\.weight$/.test(name);
  return { mean: 0, std: (writesResidual ? 1 / Math.sqrt(2 * model.numLayers) : 1) / Math.sqrt(fanIn) };
}

/** FNV-1a of the name, mixed with the seed: each tensor's stream depends only on (seed, name). */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function normalValues(count: number, seed: number, mean: number, std: number): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const u = Math.max(random(), 1e-12);
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = mean + std * r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** The tensors' seeded fp16 values, drawn as the header says (each generated when the writer asks for it). */
export function seededTensors(shapes: readonly MixtralTensorShape[], model: ModelSpec, seed: number): TensorToWrite[] {
  return shapes.map(({ name, shape }) => {
    const { mean, std } = tensorScale(model, name, shape);
    const count = shape.reduce((a, b) => a * b, 1);
    return {
      name,
      dtype: "F16",
      shape,
      data: () => [toFloat16Array(normalValues(count, tensorSeed(seed, name), mean, std))],
    };
  });
}

/** A Hugging Face MixtralConfig for `model`. */
export function hfMixtralConfig(
  model: ModelSpec,
  ropeTheta = DEFAULT_ROPE_THETA,
  rmsNormEps = DEFAULT_RMS_NORM_EPS,
): Record<string, unknown> {
  const moe = model.moe!;
  return {
    _name_or_path: model.name,
    architectures: ["MixtralForCausalLM"],
    model_type: "mixtral",
    hidden_size: model.hiddenSize,
    intermediate_size: moe.expertFfnSize,
    num_hidden_layers: model.numLayers,
    num_attention_heads: model.numHeads,
    num_key_value_heads: model.numKvHeads,
    head_dim: headDim(model),
    num_local_experts: moe.numExperts,
    num_experts_per_tok: moe.expertsPerToken,
    vocab_size: model.vocabSize,
    max_position_embeddings: model.maxPositions,
    rope_theta: ropeTheta,
    rms_norm_eps: rmsNormEps,
    hidden_act: "silu",
    tie_word_embeddings: false,
    router_aux_loss_coef: 0.02,
    sliding_window: null,
    torch_dtype: "float16",
  };
}

/**
 * Writes model.safetensors (fp16) and then config.json into `outDir`; returns the files written. With
 * `preGated`, the routers follow pre-gated.ts's layout (pre-gates drawn as gates are).
 */
export function synthesizeMixtralWeights(
  model: ModelSpec,
  outDir: string,
  seed: number,
  options: { readonly preGated?: boolean } = {},
): string[] {
  const preGated = options.preGated ?? false;
  mkdirSync(outDir, { recursive: true });
  const tensors = seededTensors(mixtralTensorShapes(model, preGated), model, seed);
  const weights = join(outDir, MIXTRAL_FILE_NAME);
  writeSafetensors(weights, tensors, { format: "pt", generator: "spillway synthetic mixtral", seed: String(seed) });
  const config = join(outDir, "config.json");
  const fields = preGated ? { ...hfMixtralConfig(model), [PRE_GATED_CONFIG_KEY]: true } : hfMixtralConfig(model);
  writeFileAtomic(config, `${JSON.stringify(fields, null, 2)}\n`);
  return [weights, config];
}

export interface MixtralConfig {
  readonly model: ModelSpec;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  /** A pre-gated checkpoint (pre-gated.ts). */
  readonly preGated: boolean;
}

function configNumber(config: Record<string, unknown>, key: string, path: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new InputError(path, key, `expected a number, got ${describeValue(value)}`);
  return value;
}

/** Reads a Mixtral config.json into a ModelSpec plus the numbers only the runtime needs. */
export function readMixtralConfig(dir: string): MixtralConfig {
  const path = join(dir, "config.json");
  const data = readJsonFile(path);
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw new InputError(path, undefined, `expected a config.json object, got ${describeValue(data)}`);
  const config = data as Record<string, unknown>;
  if (config.model_type !== "mixtral")
    throw new InputError(path, "model_type", `expected "mixtral", got ${describeValue(config.model_type)}`);
  const hidden = configNumber(config, "hidden_size", path);
  const heads = configNumber(config, "num_attention_heads", path);
  const model = tinyMixtralSpec({
    numLayers: configNumber(config, "num_hidden_layers", path),
    hiddenSize: hidden,
    numHeads: heads,
    numKvHeads: configNumber(config, "num_key_value_heads", path, heads),
    expertFfnSize: configNumber(config, "intermediate_size", path),
    numExperts: configNumber(config, "num_local_experts", path),
    expertsPerToken: configNumber(config, "num_experts_per_tok", path),
    vocabSize: configNumber(config, "vocab_size", path),
    maxPositions: configNumber(config, "max_position_embeddings", path),
  });
  const named = typeof config._name_or_path === "string" ? { ...model, name: config._name_or_path } : model;
  return {
    model: named,
    ropeTheta: configNumber(config, "rope_theta", path, DEFAULT_ROPE_THETA),
    rmsNormEps: configNumber(config, "rms_norm_eps", path, DEFAULT_RMS_NORM_EPS),
    preGated: readPreGatedMarker(config, path),
  };
}
