/**
 * Synthetic OPT checkpoints: real safetensors files in Hugging Face's layout, filled with seeded random
 * fp16 weights scaled the way OPT is initialised, so a runtime can be run and checked on any catalogue
 * OPT size without downloading anything. Same model and seed give the same bytes on every machine.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statfsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { checkOutputFolder } from "../core/check-output-folder.js";
import { InputError } from "../core/input-error.js";
import { type ModelSpec, totalParams } from "../core/model-spec.js";
import type { OnProgress } from "../core/progress.js";
import { formatBytes, GIB } from "../core/units.js";
import { writeFileAtomic } from "../core/write-file-atomic.js";
import { float32ToFloat16Bits, toFloat16Array } from "./fp16.js";
import { type OptTensorShape, optTensorShapes, SHARD_INDEX_NAME, SINGLE_FILE_NAME } from "./opt-checkpoint.js";
import { safetensorsLayout, type TensorToWrite, writeSafetensors } from "./safetensors.js";

/** Hugging Face's default shard limit is smaller; 2 GiB keeps shards few for big models and under 32-bit size limits. */
export const DEFAULT_MAX_SHARD_BYTES = 2 * GIB;
/** OPT's init_std: the standard deviation of every linear and embedding weight at initialisation. */
export const INIT_STD = 0.02;
export const MAX_SEED = 0xffffffff;
/** The largest checkpoint synth-weights writes (OPT-175B's is about 350 GB). */
export const MAX_SYNTH_CHECKPOINT_BYTES = 2 ** 40;

/** The fp16 tensor bytes of `model`'s checkpoint, from its shape alone (its files add only headers and a config). */
export function checkpointBytesLowerBound(model: ModelSpec): number {
  return 2 * totalParams(model);
}

export interface SynthOptions {
  /** An integer 0..2^32-1; each tensor's values depend only on the seed and the tensor's name. */
  readonly seed: number;
  /** Largest shard, in bytes (default 2 GiB); a checkpoint that fits in one is written as model.safetensors. */
  readonly maxShardBytes?: number;
  /** Called as the tensor data is written: phase "synth-weights", in bytes, with the tensor being written. */
  readonly onProgress?: OnProgress;
}

export interface SynthResult {
  /** Every file written: the safetensors file(s), the shard index if any, and config.json. */
  readonly files: string[];
  /** Their total size. */
  readonly bytes: number;
}

/** How a tensor's values are drawn. */
export type TensorInit =
  | { readonly kind: "normal"; readonly std: number }
  | { readonly kind: "constant"; readonly value: number };

/**
 * The initialisation of each OPT tensor. Pre-LayerNorm keeps every sub-layer's input at unit scale,
 * so only the residual stream can grow: the two projections that write into it (out_proj, fc2) are
 * scaled by 1/sqrt(2 x layers), as in GPT-2, which keeps the residual and the logits of order one
 * at any depth. Biases are small but non-zero so a runtime that forgets one gives a different answer.
 */
export function optTensorInit(model: ModelSpec, name: string): TensorInit {
  if (name.endsWith("layer_norm.weight")) return { kind: "constant", value: 1 };
  if (name.endsWith("layer_norm.bias")) return { kind: "constant", value: 0 };
  const writesResidual = /\.(out_proj|fc2)\.(weight|bias)$/.test(name);
  return { kind: "normal", std: writesResidual ? INIT_STD / Math.sqrt(2 * model.numLayers) : INIT_STD };
}

/**
 * Writes a seeded OPT checkpoint for `model` into `outDir` (created if needed): model.safetensors, or
 * shards and model.safetensors.index.json when bigger than maxShardBytes, then config.json last, so a
 * folder with a config.json holds a complete checkpoint. Refuses non-OPT models and a disk without room.
 * On failure every file this call wrote is removed. Files of an earlier checkpoint in the other layout
 * (a stale index or shards beside a new single file, or the reverse) are removed so they cannot shadow it.
 */
export function synthesizeOptWeights(model: ModelSpec, outDir: string, options: SynthOptions): SynthResult {
  if (model.family !== "opt") {
    throw new InputError(
      "--model",
      undefined,
      `synth-weights writes OPT checkpoints only; ${model.name} is a ${model.family} model`,
    );
  }
  const { seed } = options;
  checkSynthBudget(model, outDir, seed, MAX_SYNTH_CHECKPOINT_BYTES);
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  // "format": "pt" is what transformers checks before it loads a safetensors file.
  const metadata = { format: "pt", generator: "spillway synth-weights", seed: String(seed) };
  const shards = planShards(optTensorShapes(model), maxShardBytes, metadata);
  const shardBytes = shards.map((s) => safetensorsLayout(s.tensors.map(asF16), metadata).fileBytes);
  const indexText = shards.length > 1 ? shardIndexJson(shards) : undefined;
  const configText = JSON.stringify(hfOptConfig(model), null, 2) + "\n";
  const neededBytes =
    shardBytes.reduce((a, b) => a + b, 0) + Buffer.byteLength(indexText ?? "") + Buffer.byteLength(configText);
  checkFreeSpace(outDir, neededBytes, model);
  makeDirectory(outDir);

  const written: string[] = [];
  const onProgress = options.onProgress;
  const totalBytes = shards.reduce((sum, s) => sum + s.tensors.reduce((a, t) => a + tensorDataBytes(t), 0), 0);
  const progress = writeProgress(onProgress, totalBytes);
  try {
    progress(0);
    for (const shard of shards) {
      const path = join(outDir, shard.fileName);
      const where = shards.length > 1 ? `${shard.fileName}: ` : "";
      writeSafetensors(
        path,
        shard.tensors.map((t) => synthTensor(model, t, seed, (bytes) => progress(bytes, `${where}${t.name}`))),
        metadata,
      );
      written.push(path);
    }
    if (indexText !== undefined) {
      const path = join(outDir, SHARD_INDEX_NAME);
      writeFileAtomic(path, indexText);
      written.push(path);
    }
    removeOtherCheckpointFiles(outDir, written);
    const configPath = join(outDir, "config.json");
    writeFileAtomic(configPath, configText);
    written.push(configPath);
  } catch (error) {
    for (const path of written) rmSync(path, { force: true });
    throw error;
  }
  return { files: written, bytes: written.reduce((sum, path) => sum + statSync(path).size, 0) };
}

/**
 * The checks every synthetic checkpoint passes before any work: the seed's range, and the model's fp16
 * bytes, sized arithmetically (in constant memory, however many layers or tensors it has), against
 * `maxBytes` and against the free space where it would be written.
 */
export function checkSynthBudget(model: ModelSpec, outDir: string, seed: number, maxBytes: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED)
    throw new InputError("--seed", undefined, `expected an integer 0..${MAX_SEED}, got ${seed}`);
  const atLeastBytes = checkpointBytesLowerBound(model);
  if (atLeastBytes > maxBytes)
    throw new InputError(
      "--model",
      undefined,
      `${model.name}'s fp16 checkpoint would take at least ${formatBytes(atLeastBytes)} (${atLeastBytes} bytes); synth-weights writes ${model.moe ? "Mixture-of-Experts checkpoints (one file)" : "checkpoints"} of at most ${formatBytes(maxBytes)}`,
    );
  checkFreeSpace(outDir, atLeastBytes, model);
}

/** Progress of a checkpoint's writing, phase "synth-weights" in bytes: call with the bytes just written (and the tensor). */
export function writeProgress(onProgress: OnProgress | undefined, totalBytes: number) {
  let doneBytes = 0;
  return (bytes: number, detail?: string): void => {
    doneBytes += bytes;
    onProgress?.({
      phase: "synth-weights",
      done: doneBytes,
      total: totalBytes,
      unit: "bytes",
      ...(detail ? { detail } : {}),
    });
  };
}

export function makeDirectory(dir: string): void {
  if (checkOutputFolder(dir, "the checkpoint is written into")) return;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new InputError("--out", undefined, `cannot create ${dir}: ${(error as Error).message}`);
  }
}

/** Checked on the nearest folder that exists, so a refused run creates nothing. */
function checkFreeSpace(dir: string, neededBytes: number, model: ModelSpec): void {
  let existing = resolve(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stats = statfsSync(existing);
  const freeBytes = stats.bavail * stats.bsize;
  if (neededBytes > freeBytes) {
    throw new InputError(
      "--out",
      undefined,
      `not enough disk space for ${model.name}: the checkpoint needs ${formatBytes(neededBytes)} (${neededBytes} bytes), ${dir} has ${formatBytes(freeBytes)} (${freeBytes} bytes) free`,
    );
  }
}

/** The tensor's fp16 data, in bytes. */
function tensorDataBytes(t: OptTensorShape): number {
  return 2 * t.shape.reduce((a, b) => a * b, 1);
}

function asF16(t: OptTensorShape): Pick<TensorToWrite, "name" | "dtype" | "shape"> {
  return { name: t.name, dtype: "F16", shape: t.shape };
}

// ---------------------------------------------------------------------------------------------
// Sharding

interface Shard {
  readonly fileName: string;
  readonly tensors: readonly OptTensorShape[];
}

/**
 * Splits tensors, in order, into shards of at most maxShardBytes each (a tensor bigger than that gets
 * a shard of its own). Each tensor's share of the header is bounded from above, so the real file never
 * exceeds the limit.
 */
function planShards(
  tensors: readonly OptTensorShape[],
  maxShardBytes: number,
  metadata: Record<string, string>,
): Shard[] {
  // The 8-byte length, the metadata entry and braces, and up to 7 bytes of padding.
  const fixedBytes = 8 + Buffer.byteLength(JSON.stringify({ __metadata__: metadata })) + 7;
  const groups: OptTensorShape[][] = [];
  let current: OptTensorShape[] = [];
  let currentBytes = fixedBytes;
  for (const tensor of tensors) {
    const bytes = tensorFileBytesBound(tensor, maxShardBytes);
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = fixedBytes;
    }
    current.push(tensor);
    currentBytes += bytes;
  }
  if (current.length > 0) groups.push(current);
  if (groups.length === 1) return [{ fileName: SINGLE_FILE_NAME, tensors: groups[0]! }];
  const total = String(groups.length).padStart(5, "0");
  return groups.map((group, i) => ({
    fileName: `model-${String(i + 1).padStart(5, "0")}-of-${total}.safetensors`,
    tensors: group,
  }));
}

/** The tensor's fp16 data plus an upper bound on its header entry (offsets written as wide as the largest possible). */
function tensorFileBytesBound(tensor: OptTensorShape, maxShardBytes: number): number {
  const dataBytes = 2 * tensor.shape.reduce((a, b) => a * b, 1);
  const widestOffset = Math.max(maxShardBytes, dataBytes);
  const entry = `${JSON.stringify(tensor.name)}:${JSON.stringify({ dtype: "F16", shape: tensor.shape, data_offsets: [widestOffset, widestOffset] })},`;
  return dataBytes + Buffer.byteLength(entry);
}

/** Hugging Face's index format: total tensor bytes and which shard holds each tensor, keys sorted as save_pretrained writes them. */
function shardIndexJson(shards: readonly Shard[]): string {
  const entries: [string, string][] = [];
  let totalBytes = 0;
  for (const shard of shards) {
    for (const tensor of shard.tensors) {
      entries.push([tensor.name, shard.fileName]);
      totalBytes += 2 * tensor.shape.reduce((a, b) => a * b, 1);
    }
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return (
    JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: Object.fromEntries(entries) }, null, 2) + "\n"
  );
}

const SHARD_FILE_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/;

function removeOtherCheckpointFiles(dir: string, keep: readonly string[]): void {
  for (const name of readdirSync(dir)) {
    const ours = name === SINGLE_FILE_NAME || name === SHARD_INDEX_NAME || SHARD_FILE_PATTERN.test(name);
    const path = join(dir, name);
    if (ours && !keep.includes(path)) rmSync(path, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// config.json

/** A Hugging Face OPTConfig for `model`: what transformers needs to load the checkpoint, and what modelSpecFromHfConfig reads. */
export function hfOptConfig(model: ModelSpec): Record<string, unknown> {
  return {
    _name_or_path: model.name,
    architectures: ["OPTForCausalLM"],
    model_type: "opt",
    hidden_size: model.hiddenSize,
    num_hidden_layers: model.numLayers,
    ffn_dim: model.ffnSize,
    num_attention_heads: model.numHeads,
    vocab_size: model.vocabSize,
    max_position_embeddings: model.maxPositions,
    word_embed_proj_dim: model.wordEmbedDim,
    activation_function: "relu",
    do_layer_norm_before: true,
    enable_bias: true,
    layer_norm_elementwise_affine: true,
    tie_word_embeddings: true,
    init_std: INIT_STD,
    dropout: 0.0,
    attention_dropout: 0.0,
    layerdrop: 0.0,
    bos_token_id: 2,
    eos_token_id: 2,
    pad_token_id: 1,
    use_cache: true,
    torch_dtype: "float16",
  };
}

// ---------------------------------------------------------------------------------------------
// Values

/** Values generated per chunk: 4 MiB of fp32 scratch and 2 MiB of fp16, whatever the tensor's size. */
const CHUNK_VALUES = 1 << 20;

function synthTensor(
  model: ModelSpec,
  tensor: OptTensorShape,
  seed: number,
  onWritten?: (bytes: number) => void,
): TensorToWrite {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const init = optTensorInit(model, tensor.name);
  const chunks = () => synthChunks(count, init, tensorSeed(seed, tensor.name));
  return {
    name: tensor.name,
    dtype: "F16",
    shape: tensor.shape,
    data: onWritten ? () => counted(chunks(), onWritten) : chunks,
  };
}

/** The chunks, each counted (in bytes) once the writer has taken it and asked for the next. */
function* counted(chunks: Generator<Uint16Array>, onWritten: (bytes: number) => void): Generator<Uint16Array> {
  for (const chunk of chunks) {
    const bytes = chunk.byteLength;
    yield chunk;
    onWritten(bytes);
  }
}

/** Yields the tensor's fp16 values in chunks that reuse one buffer (the writer consumes each before the next). */
function* synthChunks(count: number, init: TensorInit, state: Xoshiro128StarStar): Generator<Uint16Array> {
  const half = new Uint16Array(Math.min(CHUNK_VALUES, count));
  if (init.kind === "constant") half.fill(float32ToFloat16Bits(init.value));
  const normals = init.kind === "normal" ? new Float32Array(half.length) : undefined;
  const normal = new NormalSampler(state);
  for (let first = 0; first < count; first += half.length) {
    const values = Math.min(half.length, count - first);
    if (normals && init.kind === "normal") {
      normal.fill(normals.subarray(0, values), init.std);
      toFloat16Array(normals.subarray(0, values), half);
    }
    yield half.subarray(0, values);
  }
}

/**
 * Each tensor gets its own stream keyed by (seed, name), so values do not depend on tensor order or
 * sharding. Two different 32-bit hashes of the key seed the two halves of the state, so two tensors of
 * one model share a stream only if both hashes collide (about 2^-64 per pair).
 */
function tensorSeed(seed: number, name: string): Xoshiro128StarStar {
  const key = [
    seed & 0xff,
    (seed >>> 8) & 0xff,
    (seed >>> 16) & 0xff,
    (seed >>> 24) & 0xff,
    ...Buffer.from(name, "utf8"),
  ];
  let fnv = 0x811c9dc5; // FNV-1a
  let other = 0x9747b28c; // the same scheme with Murmur2's multiplier
  for (const byte of key) {
    fnv = Math.imul(fnv ^ byte, 0x01000193);
    other = Math.imul(other ^ byte, 0x5bd1e995);
  }
  return new Xoshiro128StarStar(fnv >>> 0, other >>> 0);
}

/** splitmix32: a good 32-bit mixer that spreads a seed over successive words. */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128** (Blackman and Vigna): fast, 2^128 - 1 period, good statistical quality in 32-bit integer arithmetic. */
class Xoshiro128StarStar {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seedLow: number, seedHigh: number) {
    const low = splitmix32(seedLow);
    const high = splitmix32(seedHigh);
    this.s0 = low();
    this.s1 = low();
    this.s2 = high();
    this.s3 = high();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the one state xoshiro cannot leave
  }

  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotateLeft(this.s3, 11);
    return result;
  }
}

function rotateLeft(x: number, bits: number): number {
  return (x << bits) | (x >>> (32 - bits));
}

const TWO_POW_32 = 2 ** 32;

/** A uniform draw in the open interval (0, 1), safe to take the logarithm of. */
function openUniform(random: Xoshiro128StarStar): number {
  return (random.nextUint32() + 0.5) / TWO_POW_32;
}

// Marsaglia and Tsang's ziggurat with 128 layers (the RNOR tables of their 2000 paper). About 99% of
// draws take one random number and a compare, several times faster than Box-Muller's log, sqrt and
// trig, which matters when a checkpoint has 175 billion values.
const ZIGGURAT_LAYERS = 128;
/** Where the base layer's tail begins. */
const ZIGGURAT_TAIL_START = 3.442619855899;
/** The area of each layer. */
const ZIGGURAT_LAYER_AREA = 9.91256303526217e-3;
const INT32_SCALE = 2 ** 31;

interface ZigguratTables {
  /** Acceptance thresholds on |int32 draw| for each layer's rectangle-only region. */
  readonly k: Float64Array;
  /** Scale from the int32 draw to x for each layer. */
  readonly w: Float64Array;
  /** The density exp(-x^2/2) at each layer's edge. */
  readonly f: Float64Array;
}

const ZIGGURAT: ZigguratTables = (() => {
  const k = new Float64Array(ZIGGURAT_LAYERS);
  const w = new Float64Array(ZIGGURAT_LAYERS);
  const f = new Float64Array(ZIGGURAT_LAYERS);
  let edge = ZIGGURAT_TAIL_START;
  const q = ZIGGURAT_LAYER_AREA / Math.exp(-0.5 * edge * edge);
  k[0] = (edge / q) * INT32_SCALE;
  k[1] = 0;
  w[0] = q / INT32_SCALE;
  w[ZIGGURAT_LAYERS - 1] = edge / INT32_SCALE;
  f[0] = 1;
  f[ZIGGURAT_LAYERS - 1] = Math.exp(-0.5 * edge * edge);
  let previousEdge = edge;
  for (let i = ZIGGURAT_LAYERS - 2; i >= 1; i--) {
    edge = Math.sqrt(-2 * Math.log(ZIGGURAT_LAYER_AREA / edge + Math.exp(-0.5 * edge * edge)));
    k[i + 1] = (edge / previousEdge) * INT32_SCALE;
    previousEdge = edge;
    f[i] = Math.exp(-0.5 * edge * edge);
    w[i] = edge / INT32_SCALE;
  }
  return { k, w, f };
})();

/** Standard normal draws; each value uses whole draws of the stream, so chunk boundaries never change the sequence. */
class NormalSampler {
  constructor(private readonly random: Xoshiro128StarStar) {}

  fill(out: Float32Array, std: number): void {
    const { k, w } = ZIGGURAT;
    for (let i = 0; i < out.length; i++) {
      const bits = this.random.nextUint32();
      // The top 7 bits pick the layer and the other 25 (as a signed int32) the position, so the two are independent.
      const layer = bits >>> 25;
      const signed = bits << 7;
      out[i] = (Math.abs(signed) < k[layer]! ? signed * w[layer]! : this.slowPath(signed, layer)) * std;
    }
  }

  /** The rare draws that land outside a layer's inner rectangle: the wedge test, or the tail beyond 3.44. */
  private slowPath(signed: number, layer: number): number {
    const { k, w, f } = ZIGGURAT;
    for (;;) {
      const x = signed * w[layer]!;
      if (layer === 0) return this.tail(signed > 0);
      if (f[layer]! + openUniform(this.random) * (f[layer - 1]! - f[layer]!) < Math.exp(-0.5 * x * x)) return x;
      const bits = this.random.nextUint32();
      layer = bits >>> 25;
      signed = bits << 7;
      if (Math.abs(signed) < k[layer]!) return signed * w[layer]!;
    }
  }

  /** Marsaglia's exponential rejection sampler for the normal tail beyond ZIGGURAT_TAIL_START. */
  private tail(positive: boolean): number {
    let x: number;
    let y: number;
    do {
      x = -Math.log(openUniform(this.random)) / ZIGGURAT_TAIL_START;
      y = -Math.log(openUniform(this.random));
    } while (y + y < x * x);
    return positive ? ZIGGURAT_TAIL_START + x : -ZIGGURAT_TAIL_START - x;
  }
}
