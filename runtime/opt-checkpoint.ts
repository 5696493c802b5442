/**
 * OPT checkpoints in Hugging Face's layout: tensor names and shapes for a ModelSpec, and loading a
 * folder of safetensors files (one file, or shards with model.safetensors.index.json) with every
 * tensor checked against the config before any weight is read.
 */
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { modelSpecFromHfConfig } from "../models/hf-config.js";
import { type LocatedTensor, locateTensors, openCheckpointFiles, readCheckpointConfig } from "./checkpoint-files.js";
import { ENCODE_CHUNK_VALUES, readEncodedTensor } from "./encode-tensor.js";
import type { SafetensorsFile, TensorInfo } from "./safetensors.js";
import type { Encoding } from "./tensor-codec.js";

export interface OptTensorShape {
  readonly name: string;
  readonly shape: readonly number[];
}

const DECODER = "model.decoder";
/** OPTModel (rather than OPTForCausalLM) checkpoints drop this prefix: "decoder.layers.0...". */
const CAUSAL_LM_PREFIX = "model.";

export { SHARD_INDEX_NAME, SINGLE_FILE_NAME } from "./checkpoint-files.js";

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
  const { path, data } = readCheckpointConfig(dir);
  const model = modelSpecFromHfConfig(data, path);
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
  /**
   * A tensor encoded as the runtime stores it (runtime/tensor-codec.ts), into `out` when given: the
   * bytes of encode(tensor(name), encoding), read without an fp32 copy of the tensor (encode-tensor.ts).
   */
  encoded(name: string, encoding: Encoding, out?: Uint8Array): Uint8Array;
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
    const located = locateTensors(dir, model.name, optTensorShapes(model), files, (name) =>
      name.slice(CAUSAL_LM_PREFIX.length),
    );
    return new LoadedOptWeights(model, dir, located, [...files.values()]);
  } catch (error) {
    for (const file of files.values()) file.close();
    throw error;
  }
}

class LoadedOptWeights implements OptWeights {
  /** The chunk buffer every encoded() read converts through. */
  private readonly scratch = new Float32Array(ENCODE_CHUNK_VALUES);

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

  encoded(name: string, encoding: Encoding, out?: Uint8Array): Uint8Array {
    const { file, storedName } = this.locate(name);
    return readEncodedTensor(file, storedName, encoding, out, this.scratch);
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
