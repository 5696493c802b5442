/**
 * OPT checkpoints in Hugging Face's layout: tensor names and shapes for a ModelSpec, and loading a
 * folder of safetensors files (one file, or shards with model.safetensors.index.json) with every
 * tensor checked against the config before any weight is read.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { asObject, type FieldContext, fail } from "../core/fields.js";
import { describeValue, InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { readJsonFile } from "../core/read-json-file.js";
import { modelSpecFromHfConfig } from "../models/hf-config.js";
import { FLOAT_DTYPES, openSafetensors, type SafetensorsFile, type TensorInfo } from "./safetensors.js";

export interface OptTensorShape {
  readonly name: string;
  readonly shape: readonly number[];
}

const DECODER = "model.decoder";
/** OPTModel (rather than OPTForCausalLM) checkpoints drop this prefix: "decoder.layers.0...". */
const CAUSAL_LM_PREFIX = "model.";
export const SINGLE_FILE_NAME = "model.safetensors";
export const SHARD_INDEX_NAME = "model.safetensors.index.json";
/** How many missing names an error lists before it just counts. */
const MISSING_NAMES_SHOWN = 5;

function checkOpt(model: ModelSpec, source: string): void {
  if (model.family !== "opt")
    throw new InputError(
      source,
      undefined,
      `${model.name} is a ${model.family} model; OPT checkpoints need an OPT model`,
    );
}

/** The tensors before the decoder layers: embeddings, and the input projection when embeddings are narrower (opt-350m). */
function optInputTensorShapes(model: ModelSpec): OptTensorShape[] {
  const shapes: OptTensorShape[] = [
    { name: `${DECODER}.embed_tokens.weight`, shape: [model.vocabSize, model.wordEmbedDim] },
    // OPT's learned positions start at offset 2 (a quirk of fairseq's padding), hence two extra rows.
    { name: `${DECODER}.embed_positions.weight`, shape: [model.maxPositions + 2, model.hiddenSize] },
  ];
  if (model.wordEmbedDim !== model.hiddenSize)
    shapes.push({ name: `${DECODER}.project_in.weight`, shape: [model.hiddenSize, model.wordEmbedDim] });
  return shapes;
}

/** The tensors after the decoder layers; the LM head reuses embed_tokens (tied), so it has none of its own. */
function optOutputTensorShapes(model: ModelSpec): OptTensorShape[] {
  const shapes: OptTensorShape[] = [
    { name: `${DECODER}.final_layer_norm.weight`, shape: [model.hiddenSize] },
    { name: `${DECODER}.final_layer_norm.bias`, shape: [model.hiddenSize] },
  ];
  if (model.wordEmbedDim !== model.hiddenSize)
    shapes.push({ name: `${DECODER}.project_out.weight`, shape: [model.wordEmbedDim, model.hiddenSize] });
  return shapes;
}

/** One decoder layer's tensors, in FlexGen's order (core/model-spec.ts layerWeightTensors); weights are [out, in] as nn.Linear stores them. */
export function optLayerTensorShapes(model: ModelSpec, layer: number): OptTensorShape[] {
  const h = model.hiddenSize;
  const f = model.ffnSize;
  const p = `${DECODER}.layers.${layer}`;
  return [
    { name: `${p}.self_attn.q_proj.weight`, shape: [h, h] },
    { name: `${p}.self_attn.q_proj.bias`, shape: [h] },
    { name: `${p}.self_attn.k_proj.weight`, shape: [h, h] },
    { name: `${p}.self_attn.k_proj.bias`, shape: [h] },
    { name: `${p}.self_attn.v_proj.weight`, shape: [h, h] },
    { name: `${p}.self_attn.v_proj.bias`, shape: [h] },
    { name: `${p}.self_attn.out_proj.weight`, shape: [h, h] },
    { name: `${p}.self_attn.out_proj.bias`, shape: [h] },
    { name: `${p}.self_attn_layer_norm.weight`, shape: [h] },
    { name: `${p}.self_attn_layer_norm.bias`, shape: [h] },
    { name: `${p}.fc1.weight`, shape: [f, h] },
    { name: `${p}.fc1.bias`, shape: [f] },
    { name: `${p}.fc2.weight`, shape: [h, f] },
    { name: `${p}.fc2.bias`, shape: [h] },
    { name: `${p}.final_layer_norm.weight`, shape: [h] },
    { name: `${p}.final_layer_norm.bias`, shape: [h] },
  ];
}

/** The tensors outside the decoder layers, inputs first then outputs. */
export function optEmbeddingTensorShapes(model: ModelSpec): OptTensorShape[] {
  checkOpt(model, "model");
  return [...optInputTensorShapes(model), ...optOutputTensorShapes(model)];
}

/** Every tensor an OPT checkpoint must hold, in execution order (inputs, layers, outputs). */
export function optTensorShapes(model: ModelSpec): OptTensorShape[] {
  checkOpt(model, "model");
  const layers: OptTensorShape[] = [];
  for (let i = 0; i < model.numLayers; i++) layers.push(...optLayerTensorShapes(model, i));
  return [...optInputTensorShapes(model), ...layers, ...optOutputTensorShapes(model)];
}

/** Reads dir/config.json (a Hugging Face OPT config) into a ModelSpec. */
export function readOptConfig(dir: string): ModelSpec {
  const path = join(dir, "config.json");
  if (!existsSync(path))
    throw new InputError(
      dir,
      undefined,
      "no config.json in this folder; a checkpoint folder needs the model's Hugging Face config.json",
    );
  const model = modelSpecFromHfConfig(readJsonFile(path), path);
  if (model.family !== "opt")
    throw new InputError(path, "model_type", `expected "opt", got ${JSON.stringify(model.family)}`);
  return model;
}

// ---------------------------------------------------------------------------------------------
// Loading

export interface OptTensorInfo extends TensorInfo {
  /** The safetensors file holding it. */
  readonly file: string;
  /** Its name in that file (without "model." for OPTModel checkpoints). */
  readonly storedName: string;
}

export interface OptWeights {
  readonly model: ModelSpec;
  readonly dir: string;
  /** A tensor by its canonical name ("model.decoder..."), converted to fp32 and read from disk on each call. */
  tensor(name: string, dst?: Float32Array): Float32Array;
  info(name: string): OptTensorInfo;
  /** Canonical names of layer `layer`'s tensors, in declaration order. */
  layerTensorNames(layer: number): string[];
  /** Canonical names of the tensors outside the layers (embeddings, projections, final LayerNorm). */
  embeddingTensorNames(): string[];
  close(): void;
}

/**
 * Opens the OPT checkpoint in `dir` (config.json plus safetensors files) and checks that every
 * tensor the model needs is there, with the right shape and a floating-point dtype. Tensors it does not
 * need (lm_head.weight, which is tied to embed_tokens) are ignored. Weights are read lazily.
 */
export function loadOptCheckpoint(dir: string, model: ModelSpec = readOptConfig(dir)): OptWeights {
  checkOpt(model, dir);
  const files = openCheckpointFiles(dir);
  try {
    const located = locateTensors(dir, model, files);
    return new LoadedOptWeights(model, dir, located, [...files.values()]);
  } catch (error) {
    for (const file of files.values()) file.close();
    throw error;
  }
}

interface LocatedTensor {
  readonly file: SafetensorsFile;
  readonly storedName: string;
}

/** name -> the file it is in, from the shard index or, without one, from every *.safetensors in dir. */
type TensorDirectory = Map<string, SafetensorsFile>;

function openCheckpointFiles(dir: string): TensorDirectory {
  const indexPath = join(dir, SHARD_INDEX_NAME);
  return existsSync(indexPath) ? openIndexedShards(dir, indexPath) : openAllSafetensors(dir);
}

function openAllSafetensors(dir: string): TensorDirectory {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      dir,
      undefined,
      code === "ENOENT"
        ? "no such folder"
        : code === "ENOTDIR"
          ? "not a folder; expected a checkpoint folder"
          : (error as Error).message,
    );
  }
  const names = entries.filter((n) => n.endsWith(".safetensors")).sort();
  if (names.length === 0) {
    const pytorch = entries.some((n) => n.endsWith(".bin"))
      ? " (PyTorch .bin files are not read: convert them to safetensors)"
      : "";
    throw new InputError(
      dir,
      undefined,
      `no *.safetensors files; expected ${SINGLE_FILE_NAME} or shards with ${SHARD_INDEX_NAME}${pytorch}`,
    );
  }
  const directory: TensorDirectory = new Map();
  try {
    for (const name of names) {
      const file = openSafetensors(join(dir, name));
      for (const tensor of file.names()) {
        const other = directory.get(tensor);
        if (other) {
          file.close();
          throw new InputError(file.path, `tensor ${tensor}`, `also in ${other.path}; which one is meant is ambiguous`);
        }
        directory.set(tensor, file);
      }
      if (file.names().length === 0) file.close();
    }
  } catch (error) {
    closeAll(directory);
    throw error;
  }
  return directory;
}

function openIndexedShards(dir: string, indexPath: string): TensorDirectory {
  const ctx: FieldContext = { source: indexPath, path: "" };
  const index = asObject(readJsonFile(indexPath), ctx);
  const weightMap = asObject(index.weight_map, { source: indexPath, path: "weight_map" });
  const shards = new Map<string, SafetensorsFile>();
  const directory: TensorDirectory = new Map();
  try {
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      if (typeof shardName !== "string" || shardName === "" || shardName.includes("/") || shardName.includes("\\")) {
        fail(
          { source: indexPath, path: "weight_map" },
          tensor,
          `expected a shard file name in this folder, got ${describeValue(shardName)}`,
        );
      }
      let shard = shards.get(shardName);
      if (!shard) {
        const shardPath = join(dir, shardName);
        if (!existsSync(shardPath))
          fail({ source: indexPath, path: "weight_map" }, tensor, `shard ${shardName} does not exist in ${dir}`);
        shard = openSafetensors(shardPath);
        shards.set(shardName, shard);
      }
      if (!shard.has(tensor))
        fail(
          { source: indexPath, path: "weight_map" },
          tensor,
          `the index puts it in ${shardName}, which has no such tensor`,
        );
      directory.set(tensor, shard);
    }
  } catch (error) {
    for (const shard of shards.values()) shard.close();
    throw error;
  }
  return directory;
}

function closeAll(directory: TensorDirectory): void {
  for (const file of new Set(directory.values())) file.close();
}

/** Finds each required tensor (under its canonical name or without "model."), checking shape and dtype. */
function locateTensors(dir: string, model: ModelSpec, directory: TensorDirectory): Map<string, LocatedTensor> {
  const located = new Map<string, LocatedTensor>();
  const required = optTensorShapes(model);
  const missing: string[] = [];
  for (const { name, shape } of required) {
    const storedName = directory.has(name) ? name : name.slice(CAUSAL_LM_PREFIX.length);
    const file = directory.get(storedName);
    if (!file) {
      missing.push(name);
      continue;
    }
    const info = file.info(storedName);
    if (!sameShape(info.shape, shape)) {
      throw new InputError(
        file.path,
        `tensor ${storedName}`,
        `shape ${formatShape(info.shape)} does not match the config, expected ${formatShape(shape)}`,
      );
    }
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new InputError(
        file.path,
        `tensor ${storedName}`,
        `dtype ${info.dtype} is not a floating-point type (expected F16, BF16, F32 or F64)`,
      );
    }
    located.set(name, { file, storedName });
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, MISSING_NAMES_SHOWN).join(", ");
    const more = missing.length > MISSING_NAMES_SHOWN ? ` and ${missing.length - MISSING_NAMES_SHOWN} more` : "";
    throw new InputError(
      dir,
      undefined,
      `checkpoint is missing ${missing.length} of the ${required.length} tensors ${model.name} needs: ${shown}${more}`,
    );
  }
  return located;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

class LoadedOptWeights implements OptWeights {
  constructor(
    readonly model: ModelSpec,
    readonly dir: string,
    private readonly located: ReadonlyMap<string, LocatedTensor>,
    private readonly files: readonly SafetensorsFile[],
  ) {}

  tensor(name: string, dst?: Float32Array): Float32Array {
    const { file, storedName } = this.locate(name);
    return file.readFloat32(storedName, dst);
  }

  info(name: string): OptTensorInfo {
    const { file, storedName } = this.locate(name);
    return { ...file.info(storedName), file: file.path, storedName };
  }

  layerTensorNames(layer: number): string[] {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.model.numLayers) {
      throw new RangeError(
        `layer ${layer} is out of range; ${this.model.name} has layers 0 to ${this.model.numLayers - 1}`,
      );
    }
    return optLayerTensorShapes(this.model, layer).map((t) => t.name);
  }

  embeddingTensorNames(): string[] {
    return optEmbeddingTensorShapes(this.model).map((t) => t.name);
  }

  close(): void {
    for (const file of new Set(this.files)) file.close();
  }

  private locate(name: string): LocatedTensor {
    const found = this.located.get(name);
    if (!found)
      throw new RangeError(
        `${name} is not a tensor of ${this.model.name} (names are Hugging Face's, e.g. ${DECODER}.layers.0.fc1.weight)`,
      );
    return found;
  }
}
