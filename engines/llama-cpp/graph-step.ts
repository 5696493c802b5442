/**
 * One llama.cpp graph (one ubatch of prompt tokens, or one decode token of every sequence) as a chain
 * of priced operations. llama.cpp runs a graph as the scheduler's splits in order (ggml-org/ggml
 * src/ggml-backend.cpp `ggml_backend_sched_compute_splits`: copy a split's inputs, run it, next split),
 * so the CPU and GPU parts of one graph serialize and the whole graph is one chain.
 *
 * What runs where (ggml-backend.cpp `ggml_backend_sched_backend_id_from_cur`): an op runs on the backend
 * holding its weight, except that an op whose weight is in host memory is offloaded to the GPU when the
 * GPU backend's `offload_op` accepts it: ggml-cuda.cu `ggml_backend_cuda_device_offload_op` takes ops with
 * a batch (`get_op_batch_size`: ne[1] of mul_mat, ne[2] of mul_mat_id) of at least GGML_OP_OFFLOAD_MIN_BATCH
 * (32 by default). The weight is then copied to the GPU for every graph; for mul_mat_id only the experts the
 * ids select (`ggml_backend_sched_compute_splits`, "copying only the experts that are used"). Attention
 * reads the KV cache where it lives, so a CPU layer's attention stays on the CPU.
 */
import { kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import { touchedExperts } from "../../planner/moe/routing-profile.js";
import type { EngineOperation, Lane } from "../engine-model.js";
import { gpuGemmSeconds, type KernelRates } from "../kernel-rates.js";
import { op } from "../step-time.js";
import { BARRIER_SECONDS, nodeBarriers, SPLIT_BARRIERS } from "./cpu-barriers.js";
import { rowBytes } from "./ggml-types.js";
import type { GgufFile, GgufTensor } from "./gguf-tensors.js";
import { layerOps, OUTPUT_KERNELS } from "./graph-ops.js";
import {
  type Device,
  kvBytesPerLayer,
  type LayerPlacement,
  type LlamaCppPlacement,
  OP_OFFLOAD_MIN_BATCH,
} from "./placement.js";

const SCHED = "ggml/src/ggml-backend.cpp ggml_backend_sched_compute_splits";
const CUDA_MMQ = "ggml/src/ggml-cuda/ggml-cuda.cu ggml_cuda_mul_mat (mmvq/mmq over quantized blocks)";
const CPU_MATMUL = "ggml/src/ggml-cpu/ggml-cpu.c ggml_compute_forward_mul_mat (vec_dot over quantized blocks)";
const FLASH = "src/llama-graph.cpp build_attn_mha (ggml_flash_attn_ext over the layer's KV cells)";

/** The tokens one graph carries and what they attend over. */
export interface GraphShape {
  readonly tokens: number;
  /** Rows the LM head multiplies (llama-batch outputs: the last prompt token of a sequence, every decode token). */
  readonly outputs: number;
  /** Mean KV cells each token attends over (its own sequence's stream). */
  readonly contextPerToken: number;
  /** KV cells flash attention reads in this graph per layer, over all sequences. */
  readonly kvCellsRead: number;
}

export interface GraphPricing {
  readonly model: ModelSpec;
  readonly rates: KernelRates;
  readonly file: GgufFile;
  readonly placement: LlamaCppPlacement;
}

const F32 = 4;
const INT32 = 4;
const SCHED_IDS = `${SCHED} (MUL_MAT_ID inputs: "copying only the experts that are used" reads the ids first)`;

function transfer(name: string, lane: Lane, bytes: number, rates: KernelRates, term: string, source: string) {
  const seconds =
    lane === "d2h"
      ? rates.d2hLatencySeconds + bytes / rates.d2hPinnedBytesPerSecond
      : rates.h2dLatencySeconds + bytes / rates.h2dPinnedBytesPerSecond;
  return op(name, lane, seconds, term, source, { bytes });
}

/**
 * Distinct routed experts a layer reads for `tokens` tokens, expected under uniform routing: the planner's own
 * count (planner/moe/routing-profile.ts `touchedExperts`, E x (1 - (1 - k/E)^tokens)), so the engine and the
 * planner agree. Exactly k for one token; below min(E, k x tokens) for a batch (32 tokens of Qwen3-30B-A3B touch
 * about 112 of its 128 experts, not 128). llama.cpp reads each distinct selected expert's slice once per op
 * (ggml-cpu.c `ggml_compute_forward_mul_mat_id` skips experts with no rows; the scheduler copies only used experts).
 */
export function expertsRead(model: ModelSpec, tokens: number): number {
  const moe = model.moe;
  return moe ? touchedExperts(moe, tokens) : 0;
}

interface MatmulWork {
  readonly bytes: number;
  readonly flops: number;
  readonly gpuSeconds: number;
}

/** A weight's bytes read, FLOPs, and GPU time (gpuGemmSeconds at its stored bytes per value) for `tokens` rows. */
function matmulWork(model: ModelSpec, t: GgufTensor, tokens: number, rates: KernelRates): MatmulWork {
  const [k, n] = t.shape;
  if (t.role !== "experts") {
    const perValue = t.bytes / (k * n);
    return { bytes: t.bytes, flops: 2 * tokens * k * n, gpuSeconds: gpuGemmSeconds(rates, tokens, k, n, perValue) };
  }
  // mul_mat_id: each token through its experts-per-token experts; the distinct experts' slices are read.
  const used = expertsRead(model, tokens);
  const routed = model.moe!.expertsPerToken * tokens;
  const perValue = t.bytes / t.shape[2] / (k * n);
  return {
    bytes: (used * t.bytes) / t.shape[2],
    flops: 2 * routed * k * n,
    gpuSeconds: gpuGemmSeconds(rates, routed / used, k, n * used, perValue),
  };
}

const sumWork = (ws: readonly MatmulWork[]) =>
  ws.reduce(
    (a, w) => ({ bytes: a.bytes + w.bytes, flops: a.flops + w.flops, gpuSeconds: a.gpuSeconds + w.gpuSeconds }),
    {
      bytes: 0,
      flops: 0,
      gpuSeconds: 0,
    },
  );

const cpuSeconds = (w: { bytes: number; flops: number }, rates: KernelRates) =>
  Math.max(w.bytes / rates.cpuStreamBytesPerSecond, w.flops / rates.cpuFlopsPerSecond);

/**
 * Mat-muls whose weights are on `device`: on the GPU at gpuGemmSeconds; on the CPU streaming the stored
 * bytes at STREAM bandwidth, bounded by the CPU's FLOP/s; host weights of a large batch uploaded over
 * PCIe from the pageable mapping (one copy per tensor) and multiplied on the GPU.
 */
function matmuls(
  label: string,
  tensors: readonly GgufTensor[],
  device: Device,
  g: GraphPricing,
  shape: GraphShape,
): EngineOperation[] {
  if (tensors.length === 0) return [];
  const { model, rates } = g;
  const experts = tensors.some((t) => t.role === "experts");
  const w = sumWork(tensors.map((t) => matmulWork(model, t, shape.tokens, rates)));
  const amounts = { bytes: w.bytes, flops: w.flops };
  if (device === "gpu")
    return [op(`${label} on the GPU`, "gpu", w.gpuSeconds, experts ? "GPU experts" : "GPU weights", CUDA_MMQ, amounts)];
  if (shape.tokens < OP_OFFLOAD_MIN_BATCH)
    return [
      op(
        `${label} on the CPU`,
        "cpu",
        cpuSeconds(w, rates),
        experts ? "CPU experts" : "CPU weights",
        CPU_MATMUL,
        amounts,
      ),
    ];
  const upload = tensors.length * rates.h2dLatencySeconds + w.bytes / rates.h2dPageableBytesPerSecond;
  // Before copying a mul_mat_id's experts the scheduler reads the router's choices back (ggml_backend_tensor_get_async
  // of the ids, then ggml_backend_synchronize), once per ids tensor: once per layer for its three expert tensors.
  const ids = experts ? [expertIdsToHost(label, g, shape)] : [];
  return [
    ...ids,
    op(`${label}: host weights to the GPU (op offload)`, "h2d", upload, "weight upload (op offload)", SCHED, {
      bytes: w.bytes,
    }),
    op(`${label} on the GPU (offloaded)`, "gpu", w.gpuSeconds, "GPU weights", CUDA_MMQ, amounts),
  ];
}

/** The router's selected experts (int32, experts-per-token per token) read back to the host by the scheduler. */
function expertIdsToHost(label: string, g: GraphPricing, shape: GraphShape): EngineOperation {
  const bytes = shape.tokens * g.model.moe!.expertsPerToken * INT32;
  return transfer(`${label}: expert ids to the host`, "d2h", bytes, g.rates, "activations transfer", SCHED_IDS);
}

/** Flash attention of one layer over the KV cache on `device`. */
function attention(device: Device, g: GraphPricing, shape: GraphShape): EngineOperation {
  const { model, rates } = g;
  const bytes = kvBytesPerLayer(model, shape.kvCellsRead);
  const flops = 4 * shape.tokens * shape.contextPerToken * qDim(model);
  if (device === "gpu") {
    const seconds =
      Math.max(bytes / rates.gpuMemoryBytesPerSecond, flops / rates.gpuFlopsPerSecond) + rates.gpuKernelLaunchSeconds;
    return op("flash attention over the layer's KV (GPU)", "gpu", seconds, "GPU attention", FLASH, { bytes, flops });
  }
  return op(
    "flash attention over the layer's KV (CPU)",
    "cpu",
    cpuSeconds({ bytes, flops }, rates),
    "CPU attention",
    FLASH,
    {
      bytes,
      flops,
    },
  );
}

function launches(count: number, g: GraphPricing, what: string): EngineOperation[] {
  if (count <= 0) return [];
  const seconds = count * g.rates.gpuKernelLaunchSeconds;
  return [
    op(`${what}: ${count} other kernels`, "gpu", seconds, "kernel launches", "src/llama-graph.cpp (graph nodes)"),
  ];
}

const CPU_SYNC =
  "ggml/src/ggml-cpu/ggml-cpu.c ggml_graph_compute (omp parallel, omp single), ggml_graph_compute_thread (ggml_barrier per node), mul_mat/mul_mat_id (ggml_barrier after vec_dot_type conversion)";

/**
 * The CPU thread pool's barriers for `nodes` CPU nodes (`matmuls` of them mat-muls), plus the split's own start,
 * `omp single` and end when these nodes open a new CPU split (cpu-barriers.ts).
 */
function cpuBarriers(what: string, nodes: number, matmuls: number, newSplit: boolean): EngineOperation[] {
  const count = nodeBarriers(nodes, matmuls) + (newSplit ? SPLIT_BARRIERS : 0);
  if (count <= 0) return [];
  return [op(`${what}: ${count} CPU thread barriers`, "cpu", count * BARRIER_SECONDS, "CPU barriers", CPU_SYNC)];
}

/** The hidden state (f32 rows) moving to `to` when the next part of the graph runs there. */
function crossing(to: Device, width: number, g: GraphPricing, shape: GraphShape, what: string): EngineOperation {
  const lane = to === "gpu" ? "h2d" : "d2h";
  return transfer(
    `${what} to the ${to.toUpperCase()}`,
    lane,
    shape.tokens * width * F32,
    g.rates,
    "activations transfer",
    SCHED,
  );
}

/** Whether a layer's routed experts are computed by the CPU backend in this graph (host-resident, batch below op offload). */
function expertsOnCpuNow(where: LayerPlacement, shape: GraphShape): boolean {
  return where.expertsDevice === "cpu" && shape.tokens < OP_OFFLOAD_MIN_BATCH;
}

function layerChain(
  l: number,
  g: GraphPricing,
  shape: GraphShape,
  from: Device,
): { ops: EngineOperation[]; at: Device } {
  const { model, file, placement } = g;
  const layer = file.layers[l]!;
  const where = placement.layers[l]!;
  const h = model.hiddenSize;
  const ops: EngineOperation[] = [];
  const offloaded = where.device === "cpu" && shape.tokens >= OP_OFFLOAD_MIN_BATCH;
  // -nkvo: a GPU layer's attention runs in a CPU split beside its host KV, between projections on the GPU.
  const hostKv = where.device === "gpu" && where.kvDevice === "cpu";
  const attentionSplit = offloaded || hostKv;
  // Attention runs beside its KV; with op offload a CPU layer's projections run on the GPU around it.
  const attnMatmulDevice: Device = offloaded ? "gpu" : where.device;
  if (from !== attnMatmulDevice) ops.push(crossing(attnMatmulDevice, h, g, shape, `layer ${l} input`));
  const attn = layer.filter((t) => t.matmul && t.role === "attention");
  ops.push(...matmuls(`layer ${l} attention projections`, attn, where.device, g, shape));
  const counts = layerOps(model);
  if (attentionSplit) {
    ops.push(crossing("cpu", qDim(model) + 2 * kvDim(model), g, shape, `layer ${l} q, k, v`));
    // The CPU split of an op-offloaded (or -nkvo) layer: the K and V stores into its host KV cache and flash attention.
    ops.push(...cpuBarriers(`layer ${l} attention split`, 2 + counts.attention, 0, true));
  } else if (where.device === "cpu") {
    // The whole layer on the CPU: every node (norm pairs fused) in the current CPU split, or opening one.
    const nodes = counts.kernels - counts.normPairs;
    ops.push(...cpuBarriers(`layer ${l}`, nodes, counts.matmuls, from !== "cpu"));
  }
  ops.push(attention(where.kvDevice, g, shape));
  if (attentionSplit) ops.push(crossing("gpu", qDim(model), g, shape, `layer ${l} attention output`));
  const dense = layer.filter((t) => t.matmul && t.role !== "attention" && t.role !== "experts");
  ops.push(...matmuls(`layer ${l} FFN`, dense, where.device, g, shape));
  const experts = layer.filter((t) => t.role === "experts");
  let at: Device = offloaded ? "gpu" : where.device;
  if (experts.length > 0) {
    const onCpu = expertsOnCpuNow(where, shape);
    // The CPU split's inputs are the normed FFN input and the router's selected experts (int32, as wide as f32):
    // ggml_backend_sched_compute_splits copies each input on its own.
    if (onCpu && at === "gpu") {
      ops.push(crossing("cpu", h, g, shape, `layer ${l} FFN input`));
      ops.push(crossing("cpu", model.moe!.expertsPerToken, g, shape, `layer ${l} selected expert ids`));
      // Its own CPU split: gate, up and down mul_mat_id and the swiglu.
      ops.push(...cpuBarriers(`layer ${l} expert split`, 4, 3, true));
    }
    ops.push(...matmuls(`layer ${l} routed experts`, experts, where.expertsDevice, g, shape));
    // build_moe_ffn's weighting and aggregation follow the layer (the scheduler expands GPU ops up to them).
    if (onCpu && where.device === "gpu")
      ops.push(crossing("gpu", h * model.moe!.expertsPerToken, g, shape, `layer ${l} expert outputs`));
    at = onCpu && where.device === "cpu" ? "cpu" : at;
  }
  // A GPU layer whose routed experts run on the CPU also runs their swiglu there (the scheduler expands the CPU
  // backend down from gate_exps to it), so that kernel is not launched on the GPU.
  const cpuGlu = experts.length > 0 && where.device === "gpu" && at === "gpu" && expertsOnCpuNow(where, shape) ? 1 : 0;
  const gpuKernels =
    at === "gpu" || where.device === "gpu" ? counts.kernels - counts.matmuls - counts.attention - cpuGlu : 0;
  ops.push(...launches(gpuKernels, g, `layer ${l}`));
  return { ops, at };
}

/** The whole graph: embedding rows on the CPU, every layer in order, the LM head and the logits to the host. */
export function graphChain(g: GraphPricing, shape: GraphShape): EngineOperation[] {
  const { model, rates, file, placement } = g;
  const h = model.hiddenSize;
  const embedBytes = shape.tokens * rowBytes(file.tokenEmbedding.type, h);
  const ops: EngineOperation[] = [
    op(
      "token embeddings (get_rows)",
      "cpu",
      embedBytes / rates.cpuStreamBytesPerSecond,
      "embeddings",
      "src/llama-graph.cpp build_inp_embd",
      {
        bytes: embedBytes,
      },
    ),
  ];
  // The graph's first split is the CPU's get_rows of the token rows.
  ops.push(...cpuBarriers("token embeddings split", 1, 0, true));
  let at: Device = "cpu";
  for (let l = 0; l < model.numLayers; l++) {
    const layer = layerChain(l, g, shape, at);
    ops.push(...layer.ops);
    at = layer.at;
  }
  const out = placement.outputDevice;
  const headShape = { ...shape, tokens: shape.outputs };
  const headDevice: Device = out === "cpu" && shape.outputs >= OP_OFFLOAD_MIN_BATCH ? "gpu" : out;
  if (at !== headDevice) ops.push(crossing(headDevice, h, g, headShape, "final hidden state"));
  const head = file.output.filter((t) => t.matmul);
  ops.push(
    ...matmuls("LM head", head, out, g, headShape).map((o) => (o.lane === "h2d" ? o : { ...o, term: "output layer" })),
  );
  if (headDevice === "gpu") {
    ops.push(...launches(OUTPUT_KERNELS - 1, g, "output norm and row selection"));
    const logits = shape.outputs * model.vocabSize * F32;
    ops.push(
      transfer(
        "logits to the host",
        "d2h",
        logits,
        rates,
        "logits to host",
        "src/llama-context.cpp decode (ggml_backend_tensor_get_async of t_logits)",
      ),
    );
  }
  return ops;
}
