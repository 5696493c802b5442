/**
 * Executes an OPT plan on the CUDA backend: the zig-zag schedule of runtime/run.ts (token → layer →
 * GPU batch) with the plan's placement, on a device through the CudaNative interface (the real addon,
 * or the emulated device on machines with no GPU). Every placement the CPU backend runs (run.ts's
 * execute() and opt-runner.ts) runs here, moving the same bytes recorded as the same tasks, so
 * measured bytes compare with the planner's:
 * - weights on the GPU, on the CPU (pinned) or on disk (read into pinned staging, then copied up);
 * - KV of each sequence on the GPU, the CPU (pinned) or disk. Before a decode step, off-GPU past rows
 *   are copied up ("load-cache"), disk sequences' first read from their offload files into pinned
 *   staging ("read-cache"); after it, new rows go down ("store-cache") and disk sequences' are then
 *   appended to their files ("write-cache");
 * - hidden states between layers on the GPU, or off it: in pinned host arrays (cpu) or offload files
 *   through pinned staging (disk). Per step the batch's hidden state is loaded into one of two device
 *   staging buffers ("load-hidden", after "read-hidden") and stored back after the compute
 *   ("store-hidden", then "write-hidden"), as run.ts does: the embedding's output is stored, the last
 *   layer's is not (the LM head reads it), and with one GPU batch a layer's input is issued after the
 *   previous layer's store;
 * - CPU attention (policy.cpuAttention, decode steps): the layer's compute is split around a host
 *   round trip. Off-GPU sequences' q, k, v go down ("send-qkv"), the host attends over its KV with the
 *   CPU kernel in fp32 ("cpu-attention", resource cpu), writes the new rows into the host cache (disk
 *   sequences' on to their files), and the output comes back up ("return-attention"); GPU sequences
 *   attend on the device meanwhile. As the CPU runner does, these copies are recorded at the planner's
 *   fp16 sizes (3·t·h·2 bytes down and t·h·2 up per sequence and step); q and the output physically
 *   move in fp32 (k and v as the cache stores them), so the host attends over exactly the values GPU
 *   attention would (no rounding the CPU runner does not do).
 *
 * Memory: one device pool of the plan's GPU capacity (device-pool.ts); resident weights and GPU KV
 * live there for the whole run, and every buffer the schedule cycles through is allocated once:
 * two weight slots (layer l streams into slot l % 2 while layer l - 1 computes from the other), two
 * pinned disk-staging buffers, two device staging buffers for off-GPU KV (none with CPU attention) and
 * two for new KV rows, two device staging buffers for off-GPU hidden states (with, on disk, a pinned
 * host buffer each), one working space bounded as the planner bounds it. Host tiers are page-locked
 * (hostAlloc), so copies are truly asynchronous; disk tensors are read and written (libuv's thread
 * pool) from and into pinned staging while the device computes.
 *
 * Streams: weights (h2d), KV load (h2d; also CPU attention's output coming back), KV store (d2h; also
 * CPU attention's q, k, v going down), activations (off-GPU hidden states, h2d and d2h) and compute;
 * cross-stream order is by events only: compute waits for a layer's weights, a step's KV and hidden
 * state; a weight slot is refilled after the compute that last read it; KV rows are loaded after the
 * previous token's store of them; a hidden staging buffer is refilled after its store (or, the last
 * layer's, after the LM head read it). The host touches pinned memory that a copy writes or reads only
 * once the copy's event has completed: a file write of new KV rows or of a hidden state waits for its
 * d2h copy (polled with eventQuery, so the schedule keeps issuing meanwhile), pinned staging is
 * refilled from disk only after the copy out of it finished, CPU attention starts when q, k, v have
 * arrived. Without overlap, all five are one stream. FlexGen's schedule synchronises the device after
 * every step.
 *
 * Numerics follow the CPU backend: fp16 weights (4-bit dequantised on the device), fp32 activations
 * within a layer, fp16 hidden states between layers, KV rows encoded as stored and decoded before
 * attention. The tensor-core GEMM multiplies activations split into two fp16 halves (kernels.h), so
 * it sees them to about 22 bits: what remains different from the CPU backend is summation order
 * (relative differences near 1e-6), which moves a greedy token or a 4-bit KV code only at a near-tie.
 * (Rounding activations to one fp16, the usual tensor-core input, moved 4-bit KV codes and tokens of
 * the test matrix's compressed-KV case.)
 *
 * Not yet on this backend (refused with the reason): models with a projection between embeddings and
 * hidden states, or with an untied LM head.
 */
import { open } from "node:fs/promises";
import { layerWeightTensors, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { Workload } from "../../core/workload.js";
import type { PolicyCostContext } from "../../planner/spillway/evaluate-policy.js";
import { KERNEL_TILE_ROWS, layerWorkingValues } from "../../core/layer-working-set.js";
import { embeddingTensors, HEAD_CHUNK_BYTES, placeTensors, type Tier } from "../../core/realize-placement.js";
import type { ChromeTraceWriter } from "../../simulator/chrome-trace-writer.js";
import { SIM_RESOURCES, type SimResource, type TaskKind } from "../../simulator/task.js";
import { scheduleStrategy } from "../../schedule/strategies.js";
import { globalStep, zigzag } from "../../schedule/zigzag.js";
import type { DiskStore } from "../disk-store.js";
import { toFloat16Array } from "../fp16.js";
import { attention as hostAttentionKernel, attentionScratchLength } from "../kernels/attention.js";
import { OPT_POSITION_OFFSET } from "../kernels/embedding.js";
import type { OptWeights } from "../opt-checkpoint.js";
import { HostLedger, type Where } from "../opt-runner.js";
import { decode, decodeRange, type Encoding, encode, encodedByteLength, rowChunkBytes } from "../tensor-codec.js";
import { type DevicePointer, DevicePool } from "./device-pool.js";
import type { CudaNative } from "./native-api.js";

const ALIGN = 256;
const align = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

/** Why this backend cannot run the policy yet, or undefined (every placement, CPU attention included, runs). */
export function cudaUnsupported(model: ModelSpec, _policy: Policy, _context: PolicyCostContext): string | undefined {
  if (model.wordEmbedDim !== model.hiddenSize) return `${model.name} projects its embeddings (wordEmbedDim ${model.wordEmbedDim} ≠ hiddenSize ${model.hiddenSize}), which the CUDA backend does not run yet`;
  if (!model.tiedEmbeddings) return `${model.name} has an untied LM head, which the CUDA backend does not run yet`;
  return undefined;
}

export interface CudaExecutionOptions {
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  readonly schedule: "spillway" | "flexgen";
  readonly overlap: boolean;
  readonly trace?: ChromeTraceWriter;
}

export interface CudaExecution {
  readonly tokens: number[][];
  readonly prefillSeconds: number;
  readonly makespanSeconds: number;
  readonly peakBytes: { gpu: number; cpu: number; disk: number };
  readonly busy: Record<SimResource, number>;
  readonly bytes: { h2d: number; d2h: number; diskRead: number; diskWrite: number };
  readonly events: number;
}

interface Stored {
  readonly name: string;
  readonly values: number;
  readonly encoding: Encoding;
  readonly bytes: number;
  readonly tier: Tier;
  readonly vector: boolean;
  readonly device?: DevicePointer;
  readonly host?: Uint8Array;
  readonly diskKey?: string;
}

interface Slice {
  readonly kind: TaskKind;
  readonly resource: SimResource;
  readonly bytes: number;
  readonly where: Where;
  readonly start: { event: number } | { hostMs: number };
  readonly end: { event: number } | { hostMs: number };
}

/** Trace slices timed by device events (device work) or the host clock (disk reads), on one origin. */
class DeviceTimeline {
  readonly bytes = { h2d: 0, d2h: 0, diskRead: 0, diskWrite: 0 };
  private readonly slices: Slice[] = [];
  private readonly events: number[] = [];
  private origin = 0;
  private originMs = 0;

  constructor(private readonly native: CudaNative) {}

  start(stream: number): void {
    this.native.deviceSynchronize();
    this.origin = this.mark(stream);
    this.native.eventSynchronize(this.origin);
    this.originMs = performance.now();
  }

  mark(stream: number): number {
    const event = this.native.eventCreate(true);
    this.events.push(event);
    this.native.eventRecord(event, stream);
    return event;
  }

  /** Enqueues `work` on `stream` between two timing events; returns the end event. */
  device(kind: TaskKind, resource: SimResource, stream: number, bytes: number, where: Where, work: () => void): number {
    const start = this.mark(stream);
    work();
    const end = this.mark(stream);
    this.slices.push({ kind, resource, bytes, where, start: { event: start }, end: { event: end } });
    if (resource !== "gpu" && resource !== "cpu") this.bytes[resource] += bytes;
    return end;
  }

  host(kind: TaskKind, resource: SimResource, bytes: number, where: Where, startMs: number, endMs: number): void {
    this.slices.push({ kind, resource, bytes, where, start: { hostMs: startMs }, end: { hostMs: endMs } });
    if (resource !== "gpu" && resource !== "cpu") this.bytes[resource] += bytes;
  }

  /** Seconds since the origin of a finished point (the device must have passed every recorded event). */
  private seconds(point: { event: number } | { hostMs: number }): number {
    return "event" in point ? this.native.eventElapsedMs(this.origin, point.event) / 1000 : (point.hostMs - this.originMs) / 1000;
  }

  nowSeconds(): number {
    return (performance.now() - this.originMs) / 1000;
  }

  /** After a device synchronise: busy time per resource, trace slices written, events destroyed. */
  finish(trace: ChromeTraceWriter | undefined): { busy: Record<SimResource, number>; events: number } {
    const busy = Object.fromEntries(SIM_RESOURCES.map((r) => [r, 0])) as Record<SimResource, number>;
    for (const s of this.slices) {
      const start = this.seconds(s.start);
      const end = Math.max(start, this.seconds(s.end));
      busy[s.resource] += end - start;
      trace?.slice(s.kind, s.resource, start, end, s.bytes, s.where);
    }
    this.destroy();
    return { busy, events: this.slices.length };
  }

  destroy(): void {
    for (const e of this.events.splice(0)) this.native.eventDestroy(e);
  }
}

function isVector(name: string): boolean {
  return name.endsWith(".bias") || name.includes("layer_norm");
}

function isMatrix(name: string): boolean {
  return name.endsWith(".weight") && !name.includes("norm");
}

/** Reads whole offload files into pinned buffers on libuv's thread pool; resolves when all are in. */
async function readFiles(reads: { path: string; position: number; bytes: number; dst: Uint8Array }[]): Promise<void> {
  await Promise.all(reads.map(async (r) => {
    const handle = await open(r.path, "r");
    try {
      let done = 0;
      while (done < r.bytes) {
        const { bytesRead } = await handle.read(r.dst, done, r.bytes - done, r.position + done);
        if (bytesRead === 0) throw new Error(`offload file ${r.path} ended after ${done} of ${r.bytes} bytes`);
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }));
}

/** Writes pinned buffers to offload files (DiskStore targets) on libuv's thread pool; resolves when all are out. */
async function writeFiles(writes: { path: string; position: number; truncate: boolean; src: Uint8Array }[]): Promise<void> {
  await Promise.all(writes.map(async (w) => {
    const handle = await open(w.path, w.truncate ? "w" : "r+");
    try {
      let done = 0;
      while (done < w.src.byteLength) {
        const { bytesWritten } = await handle.write(w.src, done, w.src.byteLength - done, w.position + done);
        done += bytesWritten;
      }
    } finally {
      await handle.close();
    }
  }));
}

export async function executeOnCuda(native: CudaNative, weights: OptWeights, policy: Policy, workload: Workload, context: PolicyCostContext, disk: DiskStore, prompts: Int32Array, options: CudaExecutionOptions): Promise<CudaExecution> {
  const model = weights.model;
  const why = cudaUnsupported(model, policy, context);
  if (why) throw new Error(why);
  const { promptLen: s, genLen: n } = workload;
  const h = model.hiddenSize;
  const f = model.ffnSize;
  const nh = model.numHeads;
  const hd = h / nh;
  const L = model.numLayers;
  const vocab = model.vocabSize;
  const d = model.wordEmbedDim;
  const gbs = policy.gpuBatchSize;
  const nb = policy.numGpuBatches;
  const maxContext = s + n;
  const kvEncoding: Encoding = policy.compressCache ? "q4" : "f16";
  const rowBytes = encodedByteLength(h, kvEncoding);
  // Sequences of a GPU batch by where their KV lives (the CPU runner's split): GPU, CPU, then disk.
  const gpuSeqs = context.realized.cacheSequences.gpu;
  const offSeqs = gbs - gpuSeqs;
  const cpuSeqs = context.realized.cacheSequences.cpu;
  const diskSeqs = offSeqs - cpuSeqs;
  if (diskSeqs !== context.realized.cacheSequences.disk) throw new Error(`KV placement of ${gbs} sequences does not add up: ${JSON.stringify(context.realized.cacheSequences)}`);
  const tier = context.realized.activationTier;
  const host = new HostLedger();
  const pinnedBuffers: ArrayBuffer[] = [];
  const pinned = (bytes: number): Uint8Array => {
    const buffer = native.hostAlloc(Math.max(1, bytes));
    pinnedBuffers.push(buffer);
    host.add(bytes);
    return new Uint8Array(buffer, 0, bytes);
  };
  const streams: number[] = [];
  const timeline = new DeviceTimeline(native);
  // Host work that runs beside the schedule (file I/O after a copy, waits on events): every promise is
  // awaited where its result is needed, and all of them before the run ends or frees its buffers.
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    work.then(() => inFlight.delete(work), () => undefined);
    return work;
  };
  /** Resolves once the device has passed `event`, polling without blocking the host (which keeps issuing). */
  const whenDone = async (event: number | undefined): Promise<void> => {
    if (event === undefined) return;
    while (!native.eventQuery(event)) await new Promise<void>((resolve) => setImmediate(resolve));
  };
  let pool: DevicePool | undefined;
  try {
    pool = new DevicePool(native, options.capacityBytes.gpu);
    const devicePool = pool;
    const alloc = (bytes: number, what: string) => devicePool.allocate(Math.max(1, bytes), what);
    const stream = () => {
      const created = native.streamCreate();
      streams.push(created);
      return created;
    };
    const compute = stream();
    const weightsStream = options.overlap ? stream() : compute;
    const kvLoad = options.overlap ? stream() : compute;
    const kvStore = options.overlap ? stream() : compute;
    const activations = options.overlap && tier !== "gpu" ? stream() : compute;

    // ------------------------------------------------------------------------------------------
    // Placement: every tensor encoded once, where the plan says.
    const store = (name: string, matrix: boolean, tier: Tier): Stored => {
      const encoding: Encoding = matrix && policy.compressWeight ? "q4" : "f16";
      const values = weights.tensor(name);
      const encoded = encode(values, encoding);
      const base = { name, values: values.length, encoding, bytes: encoded.byteLength, tier, vector: isVector(name) };
      if (tier === "gpu") {
        const block = alloc(encoded.byteLength, `resident ${name}`);
        native.memcpyHtoD(block.pointer, encoded, 0);
        return { ...base, device: block };
      }
      if (tier === "cpu") {
        const bytes = pinned(encoded.byteLength);
        bytes.set(encoded);
        return { ...base, host: bytes };
      }
      disk.write(name, encoded);
      return { ...base, diskKey: name };
    };
    const specs = layerWeightTensors(model);
    const layers: Stored[][] = [];
    for (let layer = 0; layer < L; layer++) {
      const names = weights.layerTensorNames(layer);
      layers.push(placeTensors(specs, policy.weights).map(({ tensor, tier }, i) => store(names[i]!, isMatrix(tensor.name), tier)));
    }
    const groupTiers = placeTensors(embeddingTensors(model), context.realized.weights);
    const embedding = weights.embeddingTensorNames().map((name) => {
      const table = name.endsWith("embed_tokens.weight");
      return store(name, table, groupTiers[table ? 0 : 1]?.tier ?? groupTiers[0]!.tier);
    });
    const table = embedding.find((t) => t.name.endsWith("embed_tokens.weight"))!;
    const embedRest = embedding.filter((t) => t !== table);
    // A resident 4-bit table is gathered from on the host (a copy of its bytes) for the input embeddings.
    let tableHostCopy: Uint8Array | undefined;
    if (table.tier === "gpu" && table.encoding === "q4") {
      tableHostCopy = encode(weights.tensor(table.name), "q4");
      host.add(tableHostCopy.byteLength);
    }

    // Static buffers the schedule cycles through.
    const offDevice = layers[0]!.filter((t) => t.tier !== "gpu");
    const offBytes = offDevice.reduce((sum, t) => sum + align(t.bytes), 0);
    const weightSlots = offBytes > 0 ? [alloc(offBytes, "weight slot 0"), alloc(offBytes, "weight slot 1")] : [];
    const diskBytes = layers[0]!.filter((t) => t.tier === "disk").reduce((sum, t) => sum + align(t.bytes), 0);
    const diskStaging = diskBytes > 0 ? [pinned(diskBytes), pinned(diskBytes)] : [];
    const q4Values = layers[0]!.filter((t) => t.encoding === "q4").reduce((sum, t) => sum + align(t.values * 2), 0);
    const dequantBuffer = q4Values > 0 ? alloc(q4Values, "dequantised layer weights") : undefined;
    const vectorBytes = layers[0]!.filter((t) => t.vector).reduce((sum, t) => sum + align(t.values * 4), 0);
    const vectorBuffer = alloc(vectorBytes, "layer vectors (fp32)");
    const restOff = embedRest.filter((t) => t.tier !== "gpu");
    const restOffBytes = restOff.reduce((sum, t) => sum + align(t.bytes), 0);
    const embedSlot = restOffBytes > 0 ? alloc(restOffBytes, "embedding weights") : undefined;
    const restDiskBytes = restOff.filter((t) => t.tier === "disk").reduce((sum, t) => sum + align(t.bytes), 0);
    const embedDiskStaging = restDiskBytes > 0 ? pinned(restDiskBytes) : undefined;
    const embedVectors = alloc(embedRest.filter((t) => t.vector).reduce((sum, t) => sum + align(t.values * 4), 0), "embedding vectors (fp32)");
    // Hidden states between layers: one device buffer per GPU batch, or (off the GPU) two device staging
    // buffers the steps cycle through, with the batches' host arrays (cpu) or a pinned buffer per staging
    // buffer that disk reads and writes go through (disk).
    const hidden = tier === "gpu" ? Array.from({ length: nb }, (_, k) => alloc(gbs * s * h * 2, `hidden state of batch ${k}`)) : [];
    const hostHidden = tier === "cpu" ? Array.from({ length: nb }, () => pinned(gbs * s * h * 2)) : [];
    interface HiddenSlot {
      readonly index: number;
      readonly device: DevicePointer;
      readonly pinned?: Uint8Array;
      /** The last device work reading or writing the staging buffer (its store, or the LM head's read). */
      readonly deviceFree?: number;
      /** Disk: the pinned buffer's last use, a copy up out of it (an event) or a file write out of it. */
      readonly pinnedFreeEvent?: number;
      readonly pinnedFreeWrite?: Promise<void>;
    }
    const hiddenSlots: (HiddenSlot | undefined)[] = tier === "gpu" ? [] : [0, 1].map((index) => ({
      index, device: alloc(gbs * s * h * 2, `hidden state staging ${index}`), ...(tier === "disk" ? { pinned: pinned(gbs * s * h * 2) } : {}),
    }));
    const features = alloc(nb * gbs * d * 4, "LM-head features");
    const nextIds = alloc(nb * gbs * 4, "next tokens");
    const nextIdsHost = new Int32Array(pinned(nb * gbs * 4).buffer, 0, nb * gbs);
    const streamedHead = table.tier !== "gpu" || table.encoding === "q4";
    const rowsPerChunk = Math.min(vocab, Math.max(1, Math.floor(HEAD_CHUNK_BYTES / (2 * d))));
    const chunkStoredBytes = encodedByteLength(rowsPerChunk * d, table.encoding) + 3 * ALIGN;
    // Logits of one GPU batch (the planner's gbs x vocab), or of one streamed chunk, with a running best per sequence.
    const logits = alloc(gbs * (streamedHead ? rowsPerChunk : vocab) * 4, "logits");
    const bestLogits = alloc(nb * gbs * 4, "best logit per sequence");
    const headSlots = streamedHead ? [alloc(chunkStoredBytes, "LM-head chunk 0"), alloc(chunkStoredBytes, "LM-head chunk 1")] : [];
    const headDequant = streamedHead && table.encoding === "q4" ? alloc(rowsPerChunk * d * 2, "LM-head chunk, dequantised") : undefined;
    const tableDiskStaging = table.tier === "disk" ? pinned(table.bytes) : undefined;
    // KV: GPU sequences' rows in device memory, CPU sequences' in pinned host memory, for the whole run;
    // disk sequences' in offload files, through pinned staging (past rows in, new rows out; two of each).
    const deviceCache = Array.from({ length: L }, (_, layer) => Array.from({ length: nb }, (_, k) => (gpuSeqs > 0 ? alloc(gpuSeqs * 2 * maxContext * rowBytes, `KV cache of GPU sequences (layer ${layer}, batch ${k})`) : undefined)));
    const hostCache = Array.from({ length: L }, () => Array.from({ length: nb }, () => (cpuSeqs > 0 ? pinned(cpuSeqs * 2 * maxContext * rowBytes) : undefined)));
    // With CPU attention, off-GPU past rows never go up (the host attends over them).
    const kvStaging = offSeqs > 0 && !policy.cpuAttention ? [0, 1].map((i) => alloc(offSeqs * 2 * maxContext * rowBytes, `KV of off-GPU sequences ${i}`)) : [];
    const newRows = offSeqs > 0 ? [0, 1].map((i) => alloc(offSeqs * 2 * s * rowBytes, `new KV rows ${i}`)) : [];
    const diskPastStaging = diskSeqs > 0 ? [0, 1].map(() => pinned(diskSeqs * 2 * maxContext * rowBytes)) : [];
    const diskNewStaging = diskSeqs > 0 ? [0, 1].map(() => pinned(diskSeqs * 2 * s * rowBytes)) : [];
    const kvKey = (layer: number, k: number, seq: number, which: 0 | 1) => `kv-${layer}-${k}-${seq}-${which ? "v" : "k"}`;
    // CPU attention (decode, one token per sequence): q in fp32 and the new k, v rows as stored come
    // down into pinned buffers; the output goes up in fp32 from one of two pinned buffers.
    const hostAttends = policy.cpuAttention && offSeqs > 0;
    const qDown = hostAttends ? new Float32Array(pinned(offSeqs * h * 4).buffer, 0, offSeqs * h) : undefined;
    const rowsDown = hostAttends ? pinned(offSeqs * 2 * rowBytes) : undefined;
    const outUp = hostAttends ? [0, 1].map(() => new Float32Array(pinned(offSeqs * h * 4).buffer, 0, offSeqs * h)) : [];
    const hostK = hostAttends ? new Float32Array(maxContext * h) : undefined;
    const hostV = hostAttends ? new Float32Array(maxContext * h) : undefined;
    const hostScratch = hostAttends ? new Float32Array(attentionScratchLength(1, maxContext - 1, nh, hd)) : undefined;
    if (hostK) host.add(2 * hostK.byteLength + hostScratch!.byteLength);
    // Working space: sequences in chunks, as many as the planner's allowance holds (run.ts's rule).
    const chunkSequences = (t: number, ctx: number): number => {
      if (t === 1) return gbs;
      const budget = context.costModel.workingBytes(t, ctx) - gbs * vocab * 4;
      let chunk = gbs;
      while (chunk > 1 && 4 * layerWorkingValues(model, chunk, t, ctx) > budget) chunk--;
      return chunk;
    };
    const prefillChunk = chunkSequences(s, s);
    const maxRows = Math.max(prefillChunk * s, gbs);
    // Attention scratch bounded by the planner's per-head allowance: queries go through in groups.
    const attentionFloats = Math.max(2 * s * hd + 2 * maxContext * hd + s * maxContext, nh * maxContext + 2 * h + nh, native.attentionScratchFloats(1, maxContext - 1, nh));
    const working = {
      x: alloc(maxRows * h * 4, "working x"), y: alloc(maxRows * h * 4, "working y"),
      shared: alloc(maxRows * Math.max(4 * h, f) * 4, "working q/k/v/o and FFN"),
      kAll: alloc(maxContext * h * 4, "working K"), vAll: alloc(maxContext * h * 4, "working V"),
      scratch: alloc(attentionFloats * 4, "attention scratch"),
      ids: alloc(s * 4, "token ids"), positions: alloc(s * 4, "position ids"),
      lastRows: alloc(gbs * h * 4, "last positions"),
    };
    // Resident vectors of layers and embeddings are converted per use like streamed ones (one path).
    native.deviceSynchronize();

    // ------------------------------------------------------------------------------------------
    // Weights: a layer's off-device tensors into its slot, disk ones through pinned staging first.
    const slotFree: (number | undefined)[] = [undefined, undefined];
    const stagingFree: (number | undefined)[] = [undefined, undefined];
    interface Arriving { readonly layer: number; readonly arrived?: number; readonly at: Map<string, number> }
    // Slots alternate along the whole stream of layers (across tokens too, so that an odd layer count
    // never hands the next token's layer 0 the slot the last layer is computing from).
    const slotOf = (token: number, layer: number) => (token * L + layer) % 2;
    /**
     * Reads the disk tensors among `tensors` into `staging`, packed at aligned offsets (libuv's thread
     * pool), after `beforeReuse` (the wait for the staging's previous copy up); returns where each landed.
     */
    const stageFromDisk = async (tensors: readonly Stored[], staging: Uint8Array | undefined, where: Where, beforeReuse: () => void): Promise<Map<Stored, Uint8Array>> => {
      const staged = new Map<Stored, Uint8Array>();
      const fromDisk = tensors.filter((t) => t.tier === "disk");
      if (fromDisk.length === 0) return staged;
      beforeReuse();
      let offset = 0;
      const reads = fromDisk.map((t) => {
        const dst = staging!.subarray(offset, offset + t.bytes);
        offset += align(t.bytes);
        staged.set(t, dst);
        return { ...disk.readSource(t.diskKey!), dst };
      });
      const startMs = performance.now();
      await readFiles(reads);
      timeline.host("read-weights", "diskRead", reads.reduce((sum, r) => sum + r.bytes, 0), where, startMs, performance.now());
      return staged;
    };
    /**
     * Copies off-device `tensors` up into the device buffer at `base`, packed at aligned offsets, on the
     * weights stream (host ones from their pinned arrays, disk ones from `staged`); records each address
     * in `at` and returns the event after the copies.
     */
    const uploadPacked = (tensors: readonly Stored[], staged: Map<Stored, Uint8Array>, base: number, at: Map<string, number>, where: Where): number => {
      let offset = 0;
      return timeline.device("load-weights", "h2d", weightsStream, tensors.reduce((sum, t) => sum + t.bytes, 0), where, () => {
        for (const t of tensors) {
          const dst = base + offset;
          native.memcpyHtoD(dst, t.tier === "cpu" ? t.host! : staged.get(t)!, weightsStream);
          at.set(t.name, dst);
          offset += align(t.bytes);
        }
      });
    };
    const issueLayer = (layer: number, token: number): Promise<Arriving> => track(issueLayerNow(layer, token));
    const issueLayerNow = async (layer: number, token: number): Promise<Arriving> => {
      const where = { token, layer, batch: -1 };
      const slot = slotOf(token, layer);
      const at = new Map<string, number>();
      for (const t of layers[layer]!) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
      const off = layers[layer]!.filter((t) => t.tier !== "gpu");
      if (off.length === 0) return { layer, at };
      const staged = await stageFromDisk(off, diskStaging[slot], where, () => {
        if (stagingFree[slot] !== undefined) native.eventSynchronize(stagingFree[slot]!);
      });
      if (slotFree[slot] !== undefined) native.streamWaitEvent(weightsStream, slotFree[slot]!);
      const arrived = uploadPacked(off, staged, weightSlots[slot]!.pointer, at, where);
      if (staged.size > 0) stagingFree[slot] = arrived;
      return { layer, arrived, at };
    };
    /** On the compute stream: waits for the weights, dequantises 4-bit matrices, converts vectors to fp32. */
    const readyLayer = (arriving: Arriving, where: Where) => {
      if (arriving.arrived !== undefined) native.streamWaitEvent(compute, arriving.arrived);
      const matrices = new Map<string, number>();
      const vectors = new Map<string, number>();
      let q4At = 0;
      let vectorAt = 0;
      const tensors = layers[arriving.layer]!;
      const quantized = tensors.filter((t) => t.encoding === "q4");
      if (quantized.length > 0) {
        timeline.device("dequantize-weights", "gpu", compute, 0, where, () => {
          for (const t of quantized) {
            const out = dequantBuffer!.pointer + q4At;
            native.dequantize4F16(arriving.at.get(t.name)!, 1, t.values, out, compute);
            matrices.set(t.name, out);
            q4At += align(t.values * 2);
          }
        });
      }
      for (const t of tensors) {
        if (t.encoding === "q4") continue;
        if (t.vector) {
          const out = vectorBuffer.pointer + vectorAt;
          native.f16ToF32(arriving.at.get(t.name)!, out, t.values, compute);
          vectors.set(t.name, out);
          vectorAt += align(t.values * 4);
        } else matrices.set(t.name, arriving.at.get(t.name)!);
      }
      return { matrices, vectors };
    };

    // ------------------------------------------------------------------------------------------
    // KV of off-GPU sequences: past rows up into a staging slot before the step (disk sequences' read
    // from their files into pinned staging first), new rows down after it (disk sequences' then
    // appended to their files). With CPU attention, decode steps leave past rows on the host.
    const kvStagingFree: (number | undefined)[] = [undefined, undefined];
    const newRowsFree: (number | undefined)[] = [undefined, undefined];
    /** The copy up out of each pinned disk staging buffer of past rows (it is refilled once that is done). */
    const diskPastFree: (number | undefined)[] = [undefined, undefined];
    /** The file writes out of each pinned staging buffer of new rows. */
    const diskNewFree: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    /** The copy up out of each pinned buffer of CPU attention output. */
    const outUpFree: (number | undefined)[] = [undefined, undefined];
    /** [layer][batch]: the last copy of new rows into the host cache, and the last append to the disk sequences' files. */
    const stored: (number | undefined)[][] = Array.from({ length: L }, () => new Array<number | undefined>(nb).fill(undefined));
    const written: Promise<void>[][] = Array.from({ length: L }, () => Array.from({ length: nb }, () => Promise.resolve()));
    /** Host bytes of a CPU sequence's past K (0) or V (1) rows. */
    const hostPast = (layer: number, k: number, local: number, which: 0 | 1, pastBytes: number): Uint8Array => {
      const base = (local * 2 + which) * maxContext * rowBytes;
      return hostCache[layer]![k]!.subarray(base, base + pastBytes);
    };
    interface CacheIn {
      /** GPU attention: the copy up of the off-GPU past rows into kvStaging. */
      readonly arrived?: number;
      /** The disk sequences' past rows, read into pinned staging (k then v per sequence). */
      readonly diskPast?: Uint8Array;
    }
    const issueCache = (layer: number, k: number, token: number, slot: number): Promise<CacheIn> | undefined => {
      const past = token === 0 ? 0 : s + token - 1;
      if (offSeqs === 0 || past === 0) return undefined;
      const where = { token, layer, batch: k };
      const pastBytes = past * rowBytes;
      // What this step's transfers must follow, as of now (later steps move these on).
      const stagingFree = kvStagingFree[slot];
      const hostStored = stored[layer]![k];
      const pastFree = diskPastFree[slot];
      const filesWritten = written[layer]![k]!;
      return track((async (): Promise<CacheIn> => {
        let diskPast: Uint8Array | undefined;
        if (diskSeqs > 0) {
          const staging = diskPastStaging[slot]!;
          await filesWritten; // the previous token's rows are in the files
          await whenDone(pastFree); // the copy up out of this staging (two steps ago) has finished
          const reads: { path: string; position: number; bytes: number; dst: Uint8Array }[] = [];
          for (let d = 0; d < diskSeqs; d++) {
            for (const which of [0, 1] as const) {
              const at = (2 * d + which) * pastBytes;
              reads.push({ ...disk.readSource(kvKey(layer, k, gpuSeqs + cpuSeqs + d, which), pastBytes), dst: staging.subarray(at, at + pastBytes) });
            }
          }
          const startMs = performance.now();
          await readFiles(reads);
          timeline.host("read-cache", "diskRead", diskSeqs * 2 * pastBytes, where, startMs, performance.now());
          diskPast = staging;
        }
        if (policy.cpuAttention) return diskPast ? { diskPast } : {};
        if (stagingFree !== undefined) native.streamWaitEvent(kvLoad, stagingFree);
        if (hostStored !== undefined) native.streamWaitEvent(kvLoad, hostStored);
        const arrived = timeline.device("load-cache", "h2d", kvLoad, offSeqs * 2 * pastBytes, where, () => {
          for (let c = 0; c < offSeqs; c++) {
            for (const which of [0, 1] as const) {
              const at = (2 * (c - cpuSeqs) + which) * pastBytes;
              const src = c < cpuSeqs ? hostPast(layer, k, c, which, pastBytes) : diskPast!.subarray(at, at + pastBytes);
              native.memcpyHtoD(kvStaging[slot]!.pointer + (2 * c + which) * pastBytes, src, kvLoad);
            }
          }
        });
        if (diskSeqs > 0) diskPastFree[slot] = arrived;
        return { arrived, ...(diskPast ? { diskPast } : {}) };
      })());
    };
    /** Appends the disk sequences' new rows (diskNewStaging[slot], k then v per sequence) to their files once `copied` has completed. */
    const appendRows = (layer: number, k: number, where: Where, slot: number, t: number, copied: number | undefined) => {
      const appended = t * rowBytes;
      const staging = diskNewStaging[slot]!;
      // The files' bookkeeping now, in schedule order (positions, disk peak); the bytes once they are in.
      const writes: { path: string; position: number; truncate: boolean; src: Uint8Array }[] = [];
      for (let d = 0; d < diskSeqs; d++) {
        for (const which of [0, 1] as const) {
          const at = (2 * d + which) * appended;
          writes.push({ ...disk.appendTarget(kvKey(layer, k, gpuSeqs + cpuSeqs + d, which), appended), src: staging.subarray(at, at + appended) });
        }
      }
      const previous = written[layer]![k]!;
      const write = track((async () => {
        await previous;
        await whenDone(copied); // the rows have landed in the pinned staging
        const startMs = performance.now();
        await writeFiles(writes);
        timeline.host("write-cache", "diskWrite", diskSeqs * 2 * appended, where, startMs, performance.now());
      })());
      written[layer]![k] = write;
      diskNewFree[slot] = write;
    };

    const linear = (x: number, w: number, bias: number | undefined, out: number, m: number, kDim: number, nDim: number) => native.linear(x, w, bias ?? 0, out, m, kDim, nDim, compute);
    const encodeRows = (src: number, rows: number, dst: number) => {
      if (kvEncoding === "f16") native.f32ToF16(src, dst, rows * h, compute);
      else native.quantize4(src, rows, h, dst, compute);
    };
    const decodeRows = (src: number, rows: number, dst: number) => {
      if (rows === 0) return;
      if (kvEncoding === "f16") native.f16ToF32(src, dst, rows * h, compute);
      else native.dequantize4F32(src, rows, h, dst, compute);
    };
    /** Host: stored rows decoded into fp32 (the CPU runner's fill). */
    const decodeHostRows = (target: Float32Array, bytes: Uint8Array, rows: number, firstRow: number) => {
      for (let i = 0; i < rows; i++) decode(bytes.subarray(i * rowBytes, (i + 1) * rowBytes), kvEncoding, h, target.subarray((firstRow + i) * h, (firstRow + i + 1) * h));
    };

    /**
     * Batch k of `layer` at `token`, its hidden state (fp16 at `hiddenAt`) updated in place; returns the
     * event after its compute. A CPU-attention step has the host attend for the off-GPU sequences
     * between the layer's two halves.
     */
    const computeStep = async (ready: ReturnType<typeof readyLayer>, layer: number, k: number, token: number, slot: number, cacheIn: CacheIn | undefined, hiddenAt: number): Promise<number> => {
      const where = { token, layer, batch: k };
      const t = token === 0 ? s : 1;
      const past = token === 0 ? 0 : s + token - 1;
      const pastBytes = past * rowBytes;
      const ctx = past + t;
      const prefix = `model.decoder.layers.${layer}`;
      const m = (name: string) => ready.matrices.get(`${prefix}.${name}`)!;
      const v = (name: string) => ready.vectors.get(`${prefix}.${name}`)!;
      // As the CPU runner: off-GPU sequences attend on the host in decode steps only.
      const onHost = hostAttends && token > 0;
      if (cacheIn?.arrived !== undefined) native.streamWaitEvent(compute, cacheIn.arrived);
      if (newRowsFree[slot] !== undefined) native.streamWaitEvent(compute, newRowsFree[slot]!);
      const chunk = chunkSequences(t, ctx);
      if (onHost && chunk !== gbs) throw new Error("internal: a CPU-attention step computes its batch in one chunk");
      const { x, y } = working;
      const at = (count: number) => {
        const r = count * t;
        const q = working.shared.pointer, kk = q + r * h * 4, vv = kk + r * h * 4, o = vv + r * h * 4;
        return { r, q, kk, vv, o, ffn: q };
      };
      const beforeAttention = (first: number, count: number) => {
        const { r, q, kk, vv } = at(count);
        native.f16ToF32(hiddenAt + first * t * h * 2, x.pointer, r * h, compute);
        native.layerNorm(x.pointer, v("self_attn_layer_norm.weight"), v("self_attn_layer_norm.bias"), y.pointer, r, h, 1e-5, compute);
        linear(y.pointer, m("self_attn.q_proj.weight"), v("self_attn.q_proj.bias"), q, r, h, h);
        linear(y.pointer, m("self_attn.k_proj.weight"), v("self_attn.k_proj.bias"), kk, r, h, h);
        linear(y.pointer, m("self_attn.v_proj.weight"), v("self_attn.v_proj.bias"), vv, r, h, h);
      };
      /** Attention on the device for sequence `seq`, row c of a chunk of `count` sequences. */
      const deviceAttention = (seq: number, c: number, count: number) => {
        const { q, kk, vv, o } = at(count);
        const rowsAt = (which: 0 | 1) => {
          if (seq < gpuSeqs) {
            const base = deviceCache[layer]![k]!.pointer + (seq * 2 + which) * maxContext * rowBytes;
            return { past: base, fresh: base + past * rowBytes };
          }
          const local = seq - gpuSeqs;
          // Past rows were staged by issueCache (none before the first decode step).
          return { past: past > 0 ? kvStaging[slot]!.pointer + (2 * local + which) * past * rowBytes : 0, fresh: newRows[slot]!.pointer + (2 * local + which) * t * rowBytes };
        };
        for (const which of [0, 1] as const) {
          const src = (which === 0 ? kk : vv) + c * t * h * 4;
          const rows = rowsAt(which);
          const all = which === 0 ? working.kAll.pointer : working.vAll.pointer;
          encodeRows(src, t, rows.fresh);
          // Attention sees exactly what the cache holds: past rows and the new ones, decoded.
          decodeRows(rows.past, past, all);
          decodeRows(rows.fresh, t, all + past * h * 4);
        }
        // Queries in groups small enough for the scratch (causal: a group starting at row i has past + i rows before it).
        const perQuery = native.attentionScratchFloats(1, ctx - 1, nh);
        const group = Math.max(1, Math.min(t, Math.floor(attentionFloats / Math.max(1, perQuery))));
        for (let i0 = 0; i0 < t; i0 += group) {
          const rows = Math.min(group, t - i0);
          native.attention(q + (c * t + i0) * h * 4, working.kAll.pointer, working.vAll.pointer, o + (c * t + i0) * h * 4, working.scratch.pointer, rows, past + i0, nh, hd, compute);
        }
      };
      const afterAttention = (first: number, count: number) => {
        const { r, o, ffn } = at(count);
        linear(o, m("self_attn.out_proj.weight"), v("self_attn.out_proj.bias"), y.pointer, r, h, h);
        native.add(x.pointer, y.pointer, r * h, compute);
        native.layerNorm(x.pointer, v("final_layer_norm.weight"), v("final_layer_norm.bias"), y.pointer, r, h, 1e-5, compute);
        linear(y.pointer, m("fc1.weight"), v("fc1.bias"), ffn, r, h, f);
        native.relu(ffn, r * f, compute);
        linear(ffn, m("fc2.weight"), v("fc2.bias"), y.pointer, r, f, h);
        native.add(x.pointer, y.pointer, r * h, compute);
        native.f32ToF16(x.pointer, hiddenAt + first * t * h * 2, r * h, compute);
      };

      let done: number;
      if (!onHost) {
        done = timeline.device("compute", "gpu", compute, 0, where, () => {
          for (let first = 0; first < gbs; first += chunk) {
            const count = Math.min(chunk, gbs - first);
            beforeAttention(first, count);
            for (let c = 0; c < count; c++) deviceAttention(first + c, c, count);
            afterAttention(first, count);
          }
        });
      } else {
        const { q, kk, vv, o } = at(gbs);
        let qkvReady = 0;
        timeline.device("compute", "gpu", compute, 0, where, () => {
          beforeAttention(0, gbs);
          // The off-GPU sequences' new rows, encoded as they will be stored; then the GPU sequences attend.
          for (let c = 0; c < offSeqs; c++) {
            for (const which of [0, 1] as const) encodeRows((which === 0 ? kk : vv) + (gpuSeqs + c) * t * h * 4, t, newRows[slot]!.pointer + (2 * c + which) * t * rowBytes);
          }
          qkvReady = timeline.mark(compute);
          for (let seq = 0; seq < gpuSeqs; seq++) deviceAttention(seq, seq, gbs);
        });
        // q (fp32), k and v (as stored) of each off-GPU sequence down, recorded as the CPU runner does.
        native.streamWaitEvent(kvStore, qkvReady);
        let sent = 0;
        for (let c = 0; c < offSeqs; c++) {
          sent = timeline.device("send-qkv", "d2h", kvStore, 3 * t * h * 2, where, () => {
            native.memcpyDtoH(qDown!.subarray(c * t * h, (c + 1) * t * h), q + (gpuSeqs + c) * t * h * 4, kvStore);
            native.memcpyDtoH(rowsDown!.subarray(2 * c * t * rowBytes, (2 * c + 2) * t * rowBytes), newRows[slot]!.pointer + 2 * c * t * rowBytes, kvStore);
          });
        }
        newRowsFree[slot] = sent;
        const out = outUp[slot]!;
        await whenDone(sent); // q, k and v are in host memory
        await whenDone(stored[layer]![k]); // the prompt's rows have landed in the host cache
        await whenDone(outUpFree[slot]); // the copy up out of this output buffer (two steps ago) has finished
        for (let c = 0; c < offSeqs; c++) {
          const startMs = performance.now();
          const fresh = (which: 0 | 1) => rowsDown!.subarray((2 * c + which) * t * rowBytes, (2 * c + which + 1) * t * rowBytes);
          const pastRows = (which: 0 | 1) => (c < cpuSeqs ? hostPast(layer, k, c, which, pastBytes) : cacheIn!.diskPast!.subarray((2 * (c - cpuSeqs) + which) * pastBytes, (2 * (c - cpuSeqs) + which + 1) * pastBytes));
          for (const [which, all] of [[0, hostK!], [1, hostV!]] as const) {
            decodeHostRows(all, pastRows(which), past, 0);
            decodeHostRows(all, fresh(which), t, past);
          }
          hostAttentionKernel(qDown!.subarray(c * t * h, (c + 1) * t * h), hostK!, hostV!, out.subarray(c * t * h, (c + 1) * t * h), t, past, nh, hd, hostScratch);
          timeline.host("cpu-attention", "cpu", 0, where, startMs, performance.now());
        }
        // The new rows: the host writes CPU sequences' into its cache and appends disk sequences' to their files.
        for (let c = 0; c < cpuSeqs; c++) {
          for (const which of [0, 1] as const) hostCache[layer]![k]!.set(rowsDown!.subarray((2 * c + which) * t * rowBytes, (2 * c + which + 1) * t * rowBytes), (c * 2 + which) * maxContext * rowBytes + pastBytes);
        }
        if (diskSeqs > 0) {
          await diskNewFree[slot]; // the staging's previous rows are in their files
          diskNewStaging[slot]!.set(rowsDown!.subarray(2 * cpuSeqs * t * rowBytes, 2 * offSeqs * t * rowBytes));
          appendRows(layer, k, where, slot, t, undefined);
        }
        // The attention output back up, then the rest of the layer.
        let returned = 0;
        for (let c = 0; c < offSeqs; c++) {
          returned = timeline.device("return-attention", "h2d", kvLoad, t * h * 2, where, () => native.memcpyHtoD(o + (gpuSeqs + c) * t * h * 4, out.subarray(c * t * h, (c + 1) * t * h), kvLoad));
        }
        outUpFree[slot] = returned;
        native.streamWaitEvent(compute, returned);
        done = timeline.device("compute", "gpu", compute, 0, where, () => afterAttention(0, gbs));
      }
      if (kvStaging.length > 0) kvStagingFree[slot] = done;
      if (offSeqs > 0 && !onHost) {
        // New rows down: CPU sequences' into the host cache, disk sequences' into pinned staging and on to their files.
        const appended = t * rowBytes;
        if (diskSeqs > 0) await diskNewFree[slot]; // the staging's previous rows are in their files
        native.streamWaitEvent(kvStore, done);
        const end = timeline.device("store-cache", "d2h", kvStore, offSeqs * 2 * appended, where, () => {
          for (let c = 0; c < offSeqs; c++) {
            for (const which of [0, 1] as const) {
              const hostAt = (c * 2 + which) * maxContext * rowBytes + pastBytes;
              const stagedAt = (2 * (c - cpuSeqs) + which) * appended;
              const dst = c < cpuSeqs ? hostCache[layer]![k]!.subarray(hostAt, hostAt + appended) : diskNewStaging[slot]!.subarray(stagedAt, stagedAt + appended);
              native.memcpyDtoH(dst, newRows[slot]!.pointer + (2 * c + which) * appended, kvStore);
            }
          }
        });
        if (cpuSeqs > 0) stored[layer]![k] = end;
        newRowsFree[slot] = end;
        if (diskSeqs > 0) appendRows(layer, k, where, slot, t, end);
      }
      return done;
    };

    // ------------------------------------------------------------------------------------------
    // Hidden states off the GPU (run.ts's issueHidden / storeHidden): each step's in a staging buffer,
    // loaded from the batch's host array or offload file, stored back after the compute.
    const hiddenKey = (k: number) => `hidden-${k}`;
    /** cpu: the copy that last stored each batch's hidden state into its host array. */
    const hiddenStored = new Array<number | undefined>(nb).fill(undefined);
    /** disk: the last write of each batch's hidden state to its file. */
    const hiddenWritten = Array.from({ length: nb }, (): Promise<void> => Promise.resolve());
    let nextHidden = 0;
    /** The next staging buffer (the two alternate step by step: the step before last has released it). */
    const takeHidden = (): HiddenSlot => {
      const slot = hiddenSlots[nextHidden];
      if (!slot) throw new Error("internal: a third hidden-state staging buffer asked for while two are in use");
      hiddenSlots[nextHidden] = undefined;
      nextHidden = 1 - nextHidden;
      return slot;
    };
    const releaseHidden = (slot: HiddenSlot, free: { deviceFree: number; pinnedFreeEvent?: number; pinnedFreeWrite?: Promise<void> }) => {
      hiddenSlots[slot.index] = { index: slot.index, device: slot.device, ...(slot.pinned ? { pinned: slot.pinned } : {}), ...free };
    };
    interface HiddenIn { readonly slot: HiddenSlot; readonly arrived: number }
    const issueHidden = (token: number, layer: number, k: number, values: number): Promise<HiddenIn> => {
      const where = { token, layer, batch: k };
      const slot = takeHidden();
      const bytes = values * 2;
      const hostStored = hiddenStored[k];
      const fileWritten = hiddenWritten[k]!;
      return track((async (): Promise<HiddenIn> => {
        let src: Uint8Array;
        if (tier === "cpu") src = hostHidden[k]!.subarray(0, bytes);
        else {
          src = slot.pinned!.subarray(0, bytes);
          await fileWritten; // the file holds the batch's latest hidden state
          await slot.pinnedFreeWrite; // the pinned buffer's previous contents went out to their file...
          await whenDone(slot.pinnedFreeEvent); // ...or up to the device
          const startMs = performance.now();
          await readFiles([{ ...disk.readSource(hiddenKey(k), bytes), dst: src }]);
          timeline.host("read-hidden", "diskRead", bytes, where, startMs, performance.now());
        }
        if (slot.deviceFree !== undefined) native.streamWaitEvent(activations, slot.deviceFree);
        if (hostStored !== undefined) native.streamWaitEvent(activations, hostStored);
        const arrived = timeline.device("load-hidden", "h2d", activations, bytes, where, () => native.memcpyHtoD(slot.device.pointer, src, activations));
        return { slot, arrived };
      })());
    };
    /** Stores a step's output (in `slot`, written by the compute up to `computed`) to the batch's tier; releases the staging. */
    const storeHidden = async (token: number, layer: number, k: number, slot: HiddenSlot, computed: number, values: number): Promise<void> => {
      const where = { token, layer, batch: k };
      const bytes = values * 2;
      if (tier === "cpu") {
        native.streamWaitEvent(activations, computed);
        const end = timeline.device("store-hidden", "d2h", activations, bytes, where, () => native.memcpyDtoH(hostHidden[k]!.subarray(0, bytes), slot.device.pointer, activations));
        hiddenStored[k] = end;
        releaseHidden(slot, { deviceFree: end });
        return;
      }
      const staging = slot.pinned!.subarray(0, bytes);
      await slot.pinnedFreeWrite; // the pinned buffer's previous contents are in their file
      if (slot.pinnedFreeEvent !== undefined) native.streamWaitEvent(activations, slot.pinnedFreeEvent); // and the copy up out of it is done
      native.streamWaitEvent(activations, computed);
      const end = timeline.device("store-hidden", "d2h", activations, bytes, where, () => native.memcpyDtoH(staging, slot.device.pointer, activations));
      const target = disk.writeTarget(hiddenKey(k), bytes);
      const previous = hiddenWritten[k]!;
      const write = track((async () => {
        await previous;
        await whenDone(end); // the hidden state has landed in the pinned buffer
        const startMs = performance.now();
        await writeFiles([{ ...target, src: staging }]);
        timeline.host("write-hidden", "diskWrite", bytes, where, startMs, performance.now());
      })());
      hiddenWritten[k] = write;
      releaseHidden(slot, { deviceFree: end, pinnedFreeWrite: write });
    };

    // ------------------------------------------------------------------------------------------
    // Embeddings and the LM head.
    const readTable = async (token: number): Promise<Uint8Array | undefined> => {
      if (table.tier === "cpu") return table.host!;
      if (table.tier === "gpu") return tableHostCopy;
      const startMs = performance.now();
      await readFiles([{ ...disk.readSource(table.diskKey!), dst: tableDiskStaging! }]);
      timeline.host("read-head", "diskRead", table.bytes, { token, layer: L, batch: -1 }, startMs, performance.now());
      return tableDiskStaging!;
    };
    /** Starts the embeddings (all but an off-device token table) towards their device slot; resolves with their addresses. */
    const issueEmbeddings = async (token: number): Promise<Map<string, number>> => {
      const where = { token, layer: L, batch: -1 };
      const at = new Map<string, number>();
      for (const t of embedRest) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
      if (restOff.length > 0) {
        // the staging's previous copy is done before it is refilled
        const staged = await stageFromDisk(restOff, embedDiskStaging, where, () => native.streamSynchronize(weightsStream));
        // The previous token's LM head has finished with the slot: the host synchronised on it.
        native.streamWaitEvent(compute, uploadPacked(restOff, staged, embedSlot!.pointer, at, where));
      }
      return at;
    };
    /** The embeddings' vectors in fp32 on the compute stream, and the token table within the host's reach. */
    const readyEmbeddings = async (at: Map<string, number>, token: number) => {
      const vectors = new Map<string, number>();
      let vectorAt = 0;
      for (const t of embedRest.filter((e) => e.vector)) {
        const out = embedVectors.pointer + vectorAt;
        native.f16ToF32(at.get(t.name)!, out, t.values, compute);
        vectors.set(t.name, out);
        vectorAt += align(t.values * 4);
      }
      const hostTable = await readTable(token);
      return { at, vectors, hostTable };
    };
    type Embeddings = Awaited<ReturnType<typeof readyEmbeddings>>;
    /** Batch k's input hidden states (fp16, at `hiddenAt`) on the compute stream; returns the event after them. */
    const embed = (e: Embeddings, ids: Int32Array, token: number, k: number, hiddenAt: number): number => {
      const t = token === 0 ? s : 1;
      const start = token === 0 ? 0 : s + token - 1;
      const positions = new Int32Array(t);
      for (let i = 0; i < t; i++) positions[i] = start + i + OPT_POSITION_OFFSET;
      native.memcpyHtoD(working.positions.pointer, positions, compute);
      const positionTable = e.at.get("model.decoder.embed_positions.weight")!;
      const rows = new Float32Array(t * d);
      return timeline.device("compute", "gpu", compute, 0, { token, layer: -1, batch: k }, () => {
        for (let q = 0; q < gbs; q++) {
          const seqIds = ids.subarray(q * t, (q + 1) * t);
          for (const id of seqIds) if (id < 0 || id >= vocab) throw new Error(`token id ${id} outside the vocabulary (0..${vocab - 1})`);
          if (table.tier === "gpu" && table.encoding === "f16") {
            native.memcpyHtoD(working.ids.pointer, seqIds.slice(), compute);
            native.embedding(table.device!.pointer, working.ids.pointer, t, d, vocab, working.x.pointer, compute);
          } else {
            // The lookup happens where the table is: rows gathered on the host, sent up in fp32.
            for (let i = 0; i < t; i++) decodeRange(e.hostTable!, table.encoding, table.values, seqIds[i]! * d, d, rows.subarray(i * d, (i + 1) * d));
            native.memcpyHtoD(working.x.pointer, rows, compute);
          }
          native.embedding(positionTable, working.positions.pointer, t, h, model.maxPositions + OPT_POSITION_OFFSET, working.y.pointer, compute);
          native.add(working.x.pointer, working.y.pointer, t * h, compute);
          native.f32ToF16(working.x.pointer, hiddenAt + q * t * h * 2, t * h, compute);
        }
      });
    };
    const lmFeatures = (e: Embeddings, token: number, k: number, hiddenAt: number) => {
      const t = token === 0 ? s : 1;
      timeline.device("lm-head", "gpu", compute, 0, { token, layer: L, batch: k }, () => {
        for (let q = 0; q < gbs; q++) native.f16ToF32(hiddenAt + (q * t + t - 1) * h * 2, working.lastRows.pointer + q * h * 4, h, compute);
        native.layerNorm(working.lastRows.pointer, e.vectors.get("model.decoder.final_layer_norm.weight")!, e.vectors.get("model.decoder.final_layer_norm.bias")!, features.pointer + k * gbs * d * 4, gbs, h, 1e-5, compute);
      });
    };
    const headFree: (number | undefined)[] = [undefined, undefined];
    const finishHeads = (e: Embeddings, token: number): Int32Array[] => {
      const where = (batch: number) => ({ token, layer: L, batch });
      if (!streamedHead) {
        for (let k = 0; k < nb; k++) {
          timeline.device("lm-head", "gpu", compute, 0, where(k), () => {
            linear(features.pointer + k * gbs * d * 4, table.device!.pointer, undefined, logits.pointer, gbs, d, vocab);
            native.argmaxRows(logits.pointer, gbs, vocab, nextIds.pointer + k * gbs * 4, compute);
          });
        }
      } else {
        let chunkIndex = 0;
        for (let firstRow = 0; firstRow < vocab; firstRow += rowsPerChunk, chunkIndex++) {
          const rows = Math.min(rowsPerChunk, vocab - firstRow);
          const slot = chunkIndex % 2;
          const source = table.tier === "gpu" ? undefined : e.hostTable!;
          if (headFree[slot] !== undefined) native.streamWaitEvent(weightsStream, headFree[slot]!);
          let chunkPointer = headSlots[slot]!.pointer;
          let arrived: number;
          if (source) {
            const parts = rowChunkBytes(source, table.encoding, table.values, d, firstRow, rows);
            arrived = timeline.device("load-head", "h2d", weightsStream, parts.reduce((sum, p) => sum + p.byteLength, 0), where(-1), () => {
              let offset = 0;
              for (const p of parts) {
                native.memcpyHtoD(chunkPointer + offset, p, weightsStream);
                offset += p.byteLength;
              }
            });
          } else {
            // A resident 4-bit table: its chunk's codes, scales and minimums gathered into one compact tensor.
            const groups = Math.ceil(table.values / 64);
            const g0 = (firstRow * d) / 64;
            const g1 = ((firstRow + rows) * d) / 64;
            const base = table.device!.pointer;
            arrived = timeline.device("lm-head", "gpu", weightsStream, 0, where(-1), () => {
              native.memcpyDtoD(chunkPointer, base + g0 * 32, (g1 - g0) * 32, weightsStream);
              native.memcpyDtoD(chunkPointer + (g1 - g0) * 32, base + groups * 32 + g0 * 2, (g1 - g0) * 2, weightsStream);
              native.memcpyDtoD(chunkPointer + (g1 - g0) * 34, base + groups * 34 + g0 * 2, (g1 - g0) * 2, weightsStream);
            });
          }
          native.streamWaitEvent(compute, arrived);
          if (table.encoding === "q4") {
            native.dequantize4F16(chunkPointer, 1, rows * d, headDequant!.pointer, compute);
            chunkPointer = headDequant!.pointer;
          }
          for (let k = 0; k < nb; k++) {
            timeline.device("lm-head", "gpu", compute, 0, where(k), () => {
              // One chunk's logits at a time; each row's running best merges as the CPU backend's does.
              linear(features.pointer + k * gbs * d * 4, chunkPointer, undefined, logits.pointer, gbs, d, rows);
              native.argmaxMerge(logits.pointer, gbs, rows, firstRow, bestLogits.pointer + k * gbs * 4, nextIds.pointer + k * gbs * 4, firstRow === 0 ? 1 : 0, compute);
            });
          }
          headFree[slot] = timeline.mark(compute);
        }
      }
      for (let k = 0; k < nb; k++) {
        timeline.device("store-tokens", "d2h", compute, gbs * 4, where(k), () => native.memcpyDtoH(nextIdsHost.subarray(k * gbs, (k + 1) * gbs), nextIds.pointer + k * gbs * 4, compute));
      }
      native.streamSynchronize(compute);
      return Array.from({ length: nb }, (_, k) => nextIdsHost.slice(k * gbs, (k + 1) * gbs));
    };

    // ------------------------------------------------------------------------------------------
    // The schedule: the zig-zag one step ahead (schedule/zigzag.ts). Steps alternate the double
    // buffers by their global index q (KV staging, new rows, CPU-attention output: slot q % 2).
    const tokens: number[][] = Array.from({ length: gbs * nb }, () => []);
    let inputs = Array.from({ length: nb }, (_, k) => prompts.subarray(k * gbs * s, (k + 1) * gbs * s));
    timeline.start(compute);
    let prefillEnd = 0;
    const shape = { numLayers: L, numGpuBatches: nb, genLen: n };
    let pendingEmbeddings: Promise<Map<string, number>> | undefined;
    let embeddings: Embeddings | undefined;
    let pendingWeights: Promise<Arriving> | undefined;
    let ready: ReturnType<typeof readyLayer> | undefined;
    const caches = new Map<number, Promise<CacheIn> | undefined>();
    const hiddens = new Map<number, Promise<HiddenIn>>();
    /** The step being computed: its hidden state's address, staging buffer and compute's end event. */
    let current: { hiddenAt: number; staged?: HiddenIn; done: number } | undefined;
    for (const step of zigzag(shape, scheduleStrategy(options.schedule), "executor")) {
      const { token, layer, batch: k } = step.at;
      const hiddenValues = gbs * (token === 0 ? s : 1) * h;
      const q = globalStep(shape, step.at);
      switch (step.kind) {
        case "issue-weights":
          if (layer === L) pendingEmbeddings = issueEmbeddings(token);
          else pendingWeights = issueLayer(layer, token);
          break;
        case "ready-weights":
          if (layer === L) embeddings = await readyEmbeddings(await pendingEmbeddings!, token);
          else ready = readyLayer(await pendingWeights!, { token, layer, batch: -1 });
          break;
        case "embed":
          if (tier === "gpu") embed(embeddings!, inputs[k]!, token, k, hidden[k]!.pointer);
          else {
            // Embedded on the device, stored to the batch's tier like every layer's output.
            const slot = takeHidden();
            if (slot.deviceFree !== undefined) native.streamWaitEvent(compute, slot.deviceFree);
            await storeHidden(token, -1, k, slot, embed(embeddings!, inputs[k]!, token, k, slot.device.pointer), hiddenValues);
          }
          break;
        case "issue-kv":
          caches.set(q, issueCache(layer, k, token, q % 2));
          break;
        case "issue-hidden":
          if (tier !== "gpu") hiddens.set(q, issueHidden(token, layer, k, hiddenValues));
          break;
        case "compute": {
          let hiddenAt: number;
          let staged: HiddenIn | undefined;
          if (tier === "gpu") hiddenAt = hidden[k]!.pointer;
          else {
            staged = await hiddens.get(q)!;
            hiddens.delete(q);
            native.streamWaitEvent(compute, staged.arrived);
            hiddenAt = staged.slot.device.pointer;
          }
          const cache = caches.get(q);
          caches.delete(q);
          const done = await computeStep(ready!, layer, k, token, q % 2, cache ? await cache : undefined, hiddenAt);
          current = { hiddenAt, done, ...(staged ? { staged } : {}) };
          break;
        }
        case "lm-head":
          lmFeatures(embeddings!, token, k, current!.hiddenAt);
          break;
        case "store": {
          const staged = current!.staged;
          if (staged && step.outputToNextLayer) await storeHidden(token, layer, k, staged.slot, current!.done, hiddenValues);
          // The last layer's output is not stored: its staging is free once the LM head has read it.
          else if (staged) releaseHidden(staged.slot, { deviceFree: timeline.mark(compute), ...(tier === "disk" ? { pinnedFreeEvent: staged.arrived } : {}) });
          break;
        }
        case "barrier":
          native.deviceSynchronize();
          break;
        case "release-weights":
          slotFree[slotOf(token, layer)] = timeline.mark(compute);
          break;
        case "next-tokens": {
          // The next token's first KV loads wait for this token's stores (issueCache's events).
          const next = finishHeads(embeddings!, token);
          for (let b = 0; b < nb; b++) for (let i = 0; i < gbs; i++) tokens[b * gbs + i]!.push(next[b]![i]!);
          inputs = next;
          if (token === 0) prefillEnd = timeline.nowSeconds();
          break;
        }
        case "token-end":
          break;
      }
    }
    native.deviceSynchronize();
    // The last rows and hidden states go out to their files.
    await Promise.all([...inFlight]);
    const makespan = timeline.nowSeconds();
    const { busy, events } = timeline.finish(options.trace);
    return {
      tokens, prefillSeconds: prefillEnd, makespanSeconds: makespan,
      peakBytes: { gpu: devicePool.peakBytes, cpu: host.peakBytes, disk: disk.peakBytes },
      busy, bytes: timeline.bytes, events,
    };
  } finally {
    try {
      native.deviceSynchronize();
    } catch {
      // the run's own error is the one to report
    }
    // File I/O into or out of pinned buffers ends before they are freed.
    await Promise.allSettled([...inFlight]);
    timeline.destroy();
    for (const created of streams) native.streamDestroy(created);
    for (const buffer of pinnedBuffers) native.hostFree(buffer);
    pool?.close();
  }
}

/** Exposed for tests: the kernel tile rows the working-space rule assumes. */
export const CUDA_KERNEL_TILE_ROWS = KERNEL_TILE_ROWS;
