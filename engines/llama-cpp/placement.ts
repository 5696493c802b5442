/**
 * Where llama.cpp puts a model's tensors under `-ngl N` and `--n-cpu-moe N`, and the bytes each tier
 * then holds. From ggml-org/llama.cpp:
 * - src/llama-model.cpp `load_tensors` (`get_layer_buft_list`): the repeating layers and the output
 *   layer are n_layer + 1 slots; slot il is on the GPU when il >= max(n_layer + 1 - N, 0), so -ngl N
 *   takes the last N slots: the output layer first, then the last repeating layers. The input layer
 *   (token_embd) always stays on the CPU ("there is very little benefit to offloading the input layer").
 *   Older releases used max(n_layer - N, 0) and offloaded the output layer only for N > n_layer.
 * - common/arg.cpp `--n-cpu-moe N`: one tensor-buffer override per layer i < N, `blk\.i\.ffn_(up|down|gate|gate_up)_(ch|)exps`
 *   (common/common.h `llm_ffn_exps_block_regex`) to the CPU buffer type: the routed experts of the first
 *   N layers stay in host memory; shared experts (`_shexp`) and routers follow their layer.
 * - src/llama-kv-cache.cpp (constructor): each layer's K and V live on that layer's device
 *   (`model.dev_layer(il)` while KV offload is on, the default), type F16 (common/common.h cache_type_k/v).
 * - src/llama-model-loader.cpp `create_tensor`: with mmap (the default) host-resident weights stay in the
 *   pageable file mapping ("avoid using a host buffer when using mmap").
 */
import { kvDim, type ModelSpec } from "../../core/model-spec.js";
import type { Tier } from "../../core/tiers.js";
import type { GgufFile, GgufTensor } from "./gguf-tensors.js";

export type Device = "gpu" | "cpu";

export interface LayerPlacement {
  /** Where the layer's tensors and KV live and its kernels run. */
  readonly device: Device;
  /** Where its routed experts live (the layer's device unless --n-cpu-moe keeps them on the CPU). */
  readonly expertsDevice: Device;
  /**
   * Where its K and V live, and so where attention runs: the layer's device, or the CPU for every layer
   * with `-nkvo` (llama-kv-cache.cpp: `offload ? dev_layer(il) : cpu`; llama-graph.cpp build_attn_mha: with
   * `!cparams.offload_kqv` "all nodes between the KV store and the attention output are run on the CPU").
   */
  readonly kvDevice: Device;
}

export interface LlamaCppPlacement {
  readonly nGpuLayers: number;
  readonly nCpuMoe: number;
  /** `-nkvo`: every layer's KV cache in host memory, attention on the CPU. */
  readonly noKvOffload: boolean;
  readonly layers: readonly LayerPlacement[];
  readonly outputDevice: Device;
}

/** `-ngl nGpuLayers --n-cpu-moe nCpuMoe` (and `-nkvo` when `noKvOffload`) on a model of `numLayers` layers. */
export function placeLayers(
  numLayers: number,
  nGpuLayers: number,
  nCpuMoe: number,
  noKvOffload = false,
): LlamaCppPlacement {
  const firstGpuSlot = Math.max(numLayers + 1 - nGpuLayers, 0);
  const layers = Array.from({ length: numLayers }, (_, il): LayerPlacement => {
    const device: Device = il >= firstGpuSlot ? "gpu" : "cpu";
    return { device, expertsDevice: il < nCpuMoe ? "cpu" : device, kvDevice: noKvOffload ? "cpu" : device };
  });
  return { nGpuLayers, nCpuMoe, noKvOffload, layers, outputDevice: numLayers >= firstGpuSlot ? "gpu" : "cpu" };
}

/** The device a layer tensor lives on. */
export function tensorDevice(t: GgufTensor, layer: LayerPlacement): Device {
  return t.role === "experts" ? layer.expertsDevice : layer.device;
}

/** Weight bytes per tier. */
export function weightBytes(file: GgufFile, placement: LlamaCppPlacement): Record<Device, number> {
  const bytes = { gpu: 0, cpu: file.tokenEmbedding.bytes };
  for (const t of file.output) bytes[placement.outputDevice] += t.bytes;
  file.layers.forEach((layer, l) => {
    for (const t of layer) bytes[tensorDevice(t, placement.layers[l]!)] += t.bytes;
  });
  return bytes;
}

/** F16 K and V of one layer for `cells` KV cells (llama-kv-cache.cpp: [n_embd_k_gqa, kv_size] each). */
export function kvBytesPerLayer(model: ModelSpec, cells: number): number {
  return cells * 2 * kvDim(model) * 2;
}

/** GGML_OP_OFFLOAD_MIN_BATCH's default (ggml-cuda.cu `ggml_backend_cuda_reg_get_device`): see graph-step.ts. */
export const OP_OFFLOAD_MIN_BATCH = 32;

/** The parts of a graph whose intermediates a backend's compute buffer holds. */
export interface ComputeParts {
  readonly logits: boolean;
  readonly attention: boolean;
  readonly ffn: boolean;
  readonly experts: boolean;
  readonly input: boolean;
}

/**
 * The compute buffer a backend reserves (llama-context.cpp `graph_reserve` at n_ubatch tokens, every
 * token an output; ggml-alloc reuses memory between tensors that are not live together), estimated as
 * the residual stream (`inpL`, `ffn_inp`: two f32 rows per token) plus the largest live set of one part
 * of the graph on that backend: the f32 logits of the LM head, the FFN's gate, up and product
 * (n_ff f32 values each per token; per routed expert slot for MoE), or flash attention's f16 mask over the
 * KV cells with Q, K, V and its f32 output. The token rows fetched from the embedding table count on the CPU.
 */
export function computeBufferBytes(model: ModelSpec, tokens: number, kvCells: number, holds: ComputeParts): number {
  const h = model.hiddenSize;
  const f32 = 4;
  const moe = model.moe;
  const parts = [0];
  if (holds.logits) parts.push(model.vocabSize * tokens * f32);
  if (holds.attention) parts.push(tokens * kvCells * 2 + tokens * (2 * h + 2 * kvDim(model)) * f32);
  if (holds.ffn && !moe) parts.push(3 * model.ffnSize * tokens * f32);
  if (holds.ffn && moe?.sharedExpertFfnSize) parts.push(3 * moe.sharedExpertFfnSize * tokens * f32);
  if (holds.experts && moe) parts.push(3 * moe.expertFfnSize * moe.expertsPerToken * tokens * f32);
  const any = holds.logits || holds.attention || holds.ffn || holds.experts;
  return (any ? 2 * h * tokens * f32 + Math.max(...parts) : 0) + (holds.input ? h * tokens * f32 : 0);
}

/**
 * GPU compute-buffer room for host-resident weights that large batches upload (op offload, see
 * engines/llama-cpp/steps.ts): ggml-backend.cpp's scheduler copies a split's weight inputs into the
 * split backend's compute buffer, so the buffer holds the largest split's uploaded weights. A split
 * here is one layer's attention mat-muls or its FFN (dense, shared and routed experts), or the LM head.
 */
function uploadBytes(file: GgufFile, placement: LlamaCppPlacement): number {
  let largest = placement.outputDevice === "cpu" ? file.output.reduce((a, t) => a + t.bytes, 0) : 0;
  file.layers.forEach((layer, l) => {
    const onCpu = (t: GgufTensor) => t.matmul && tensorDevice(t, placement.layers[l]!) === "cpu";
    const attention = layer.filter((t) => onCpu(t) && t.role === "attention").reduce((a, t) => a + t.bytes, 0);
    const ffn = layer.filter((t) => onCpu(t) && t.role !== "attention").reduce((a, t) => a + t.bytes, 0);
    largest = Math.max(largest, attention, ffn);
  });
  return largest;
}

export interface TierBytes {
  readonly peak: Readonly<Record<Tier, number>>;
  readonly weights: Readonly<Record<Device, number>>;
  readonly kv: Readonly<Record<Device, number>>;
  readonly compute: Readonly<Record<Device, number>>;
  /** llama-context.cpp `output_reserve`: f32 logits of every sequence on the host. */
  readonly outputBuffer: number;
}

/** Peak bytes per tier: weights, KV of each device's layers, compute buffers; the GGUF file on disk. */
export function tierBytes(
  model: ModelSpec,
  file: GgufFile,
  placement: LlamaCppPlacement,
  sequences: number,
  kvCells: number,
  ubatchTokens: number,
): TierBytes {
  const weights = weightBytes(file, placement);
  const perLayerKv = kvBytesPerLayer(model, kvCells);
  const kv = { gpu: 0, cpu: 0 };
  for (const l of placement.layers) kv[l.kvDevice] += perLayerKv;
  const tokens = Math.min(ubatchTokens, kvCells);
  // At n_ubatch tokens the mat-muls of host-resident weights are offloaded, so their intermediates are the GPU's.
  const offload = tokens >= OP_OFFLOAD_MIN_BATCH;
  const has = (d: Device) => placement.layers.some((l) => l.device === d);
  const attendsOn = (d: Device) => placement.layers.some((l) => l.kvDevice === d);
  const moe = model.moe !== undefined;
  const compute = {
    gpu:
      computeBufferBytes(model, tokens, kvCells, {
        logits: placement.outputDevice === "gpu" || offload,
        attention: attendsOn("gpu"),
        ffn: has("gpu") || offload,
        experts: moe && (placement.layers.some((l) => l.expertsDevice === "gpu") || offload),
        input: false,
      }) + (offload ? uploadBytes(file, placement) : 0),
    cpu: computeBufferBytes(model, tokens, kvCells, {
      logits: placement.outputDevice === "cpu" && !offload,
      attention: attendsOn("cpu"),
      ffn: has("cpu") && !offload,
      experts: moe && placement.layers.some((l) => l.expertsDevice === "cpu") && !offload,
      input: true,
    }),
  };
  const outputBuffer = model.vocabSize * sequences * 4;
  return {
    peak: {
      gpu: weights.gpu + kv.gpu + compute.gpu,
      cpu: weights.cpu + kv.cpu + compute.cpu + outputBuffer,
      disk: file.totalBytes,
    },
    weights,
    kv,
    compute,
    outputBuffer,
  };
}
