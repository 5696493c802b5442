/**
 * Executes an OPT plan on the CUDA backend: the zig-zag schedule of runtime/run.ts (token → layer →
 * GPU batch) with the plan's placement, on a device through the CudaNative interface (the real addon,
 * or the emulated device on machines with no GPU).
 *
 * Memory: one device pool of the plan's GPU capacity (device-pool.ts); resident weights and GPU KV
 * live there for the whole run, and every buffer the schedule cycles through is allocated once:
 * two weight slots (layer l streams into slot l % 2 while layer l - 1 computes from the other), two
 * pinned disk-staging buffers, two device staging buffers for off-GPU KV and two for new KV rows,
 * one working space bounded as the planner bounds it. Host tiers are page-locked (hostAlloc), so
 * copies are truly asynchronous; disk tensors are read (libuv's thread pool) into pinned staging
 * while the device computes.
 *
 * Streams: weights (h2d), KV load (h2d), KV store (d2h) and compute; cross-stream order is by events
 * only: compute waits for a layer's weights and a step's KV; a weight slot is refilled after the
 * compute that last read it; KV rows are loaded after the previous token's store of them. Without
 * overlap, all four are one stream. FlexGen's schedule synchronises the device after every step.
 *
 * Numerics follow the CPU backend: fp16 weights (4-bit dequantised on the device), fp32 activations
 * within a layer, fp16 hidden states between layers, KV rows encoded as stored and decoded before
 * attention. The tensor-core GEMM rounds activations to fp16 (kernels.h), the one intended difference.
 *
 * Not yet on this backend (refused with the policy field named): KV on disk, activations off the GPU,
 * CPU attention, models with a projection between embeddings and hidden states or untied heads.
 */
import { open } from "node:fs/promises";
import { layerWeightTensors, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { Workload } from "../../core/workload.js";
import type { PolicyCostContext } from "../../planner/spillway/evaluate-policy.js";
import { KERNEL_TILE_ROWS, layerWorkingValues } from "../../planner/spillway/layer-working-set.js";
import { embeddingTensors, HEAD_CHUNK_BYTES, placeTensors, type Tier } from "../../planner/spillway/realize-placement.js";
import type { ChromeTraceWriter } from "../../simulator/chrome-trace-writer.js";
import { SIM_RESOURCES, type SimResource, type TaskKind } from "../../simulator/task.js";
import type { DiskStore } from "../disk-store.js";
import { toFloat16Array } from "../fp16.js";
import { OPT_POSITION_OFFSET } from "../kernels/embedding.js";
import type { OptWeights } from "../opt-checkpoint.js";
import { HostLedger, type Where } from "../opt-runner.js";
import { decodeRange, type Encoding, encode, encodedByteLength, rowChunkBytes } from "../tensor-codec.js";
import { type DevicePointer, DevicePool } from "./device-pool.js";
import type { CudaNative } from "./native-api.js";

const ALIGN = 256;
const align = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

/** Why this backend cannot run the policy yet, or undefined. */
export function cudaUnsupported(model: ModelSpec, policy: Policy, context: PolicyCostContext): string | undefined {
  if (model.wordEmbedDim !== model.hiddenSize) return `${model.name} projects its embeddings (wordEmbedDim ${model.wordEmbedDim} ≠ hiddenSize ${model.hiddenSize}), which the CUDA backend does not run yet`;
  if (!model.tiedEmbeddings) return `${model.name} has an untied LM head, which the CUDA backend does not run yet`;
  if (policy.cpuAttention) return "policy.cpuAttention: the CUDA backend computes attention on the GPU; CPU attention runs on the CPU backend (--backend cpu)";
  if (context.realized.activationTier !== "gpu") return `policy.activations: the CUDA backend keeps hidden states on the GPU; this plan puts them on the ${context.realized.activationTier} (use --backend cpu)`;
  if (context.realized.cacheSequences.disk > 0) return "policy.cache: the CUDA backend keeps KV on the GPU and the CPU; this plan puts some on disk (use --backend cpu)";
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
  const gpuSeqs = context.realized.cacheSequences.gpu;
  const cpuSeqs = gbs - gpuSeqs;
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
    const hidden = Array.from({ length: nb }, (_, k) => alloc(gbs * s * h * 2, `hidden state of batch ${k}`));
    const features = alloc(nb * gbs * d * 4, "LM-head features");
    const logits = alloc(nb * gbs * vocab * 4, "logits");
    const nextIds = alloc(nb * gbs * 4, "next tokens");
    const nextIdsHost = new Int32Array(pinned(nb * gbs * 4).buffer, 0, nb * gbs);
    const streamedHead = table.tier !== "gpu" || table.encoding === "q4";
    const rowsPerChunk = Math.min(vocab, Math.max(1, Math.floor(HEAD_CHUNK_BYTES / (2 * d))));
    const chunkStoredBytes = encodedByteLength(rowsPerChunk * d, table.encoding) + 3 * ALIGN;
    const headSlots = streamedHead ? [alloc(chunkStoredBytes, "LM-head chunk 0"), alloc(chunkStoredBytes, "LM-head chunk 1")] : [];
    const headDequant = streamedHead && table.encoding === "q4" ? alloc(rowsPerChunk * d * 2, "LM-head chunk, dequantised") : undefined;
    const tableDiskStaging = table.tier === "disk" ? pinned(table.bytes) : undefined;
    // KV: GPU sequences' rows in device memory, CPU sequences' in pinned host memory, for the whole run.
    const deviceCache = Array.from({ length: L }, (_, layer) => Array.from({ length: nb }, (_, k) => (gpuSeqs > 0 ? alloc(gpuSeqs * 2 * maxContext * rowBytes, `KV cache of GPU sequences (layer ${layer}, batch ${k})`) : undefined)));
    const hostCache = Array.from({ length: L }, () => Array.from({ length: nb }, () => (cpuSeqs > 0 ? pinned(cpuSeqs * 2 * maxContext * rowBytes) : undefined)));
    const kvStaging = cpuSeqs > 0 ? [alloc(cpuSeqs * 2 * maxContext * rowBytes, "KV of CPU sequences 0"), alloc(cpuSeqs * 2 * maxContext * rowBytes, "KV of CPU sequences 1")] : [];
    const newRows = cpuSeqs > 0 ? [alloc(cpuSeqs * 2 * s * rowBytes, "new KV rows 0"), alloc(cpuSeqs * 2 * s * rowBytes, "new KV rows 1")] : [];
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
    const issueLayer = async (layer: number, token: number): Promise<Arriving> => {
      const where = { token, layer, batch: -1 };
      const slot = slotOf(token, layer);
      const at = new Map<string, number>();
      for (const t of layers[layer]!) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
      const off = layers[layer]!.filter((t) => t.tier !== "gpu");
      if (off.length === 0) return { layer, at };
      const staged = new Map<Stored, Uint8Array>();
      const fromDisk = off.filter((t) => t.tier === "disk");
      if (fromDisk.length > 0) {
        if (stagingFree[slot] !== undefined) native.eventSynchronize(stagingFree[slot]!);
        let offset = 0;
        const reads = fromDisk.map((t) => {
          const dst = diskStaging[slot]!.subarray(offset, offset + t.bytes);
          offset += align(t.bytes);
          staged.set(t, dst);
          return { ...disk.readSource(t.diskKey!), dst };
        });
        const startMs = performance.now();
        await readFiles(reads);
        timeline.host("read-weights", "diskRead", reads.reduce((sum, r) => sum + r.bytes, 0), where, startMs, performance.now());
      }
      if (slotFree[slot] !== undefined) native.streamWaitEvent(weightsStream, slotFree[slot]!);
      let offset = 0;
      const arrived = timeline.device("load-weights", "h2d", weightsStream, off.reduce((sum, t) => sum + t.bytes, 0), where, () => {
        for (const t of off) {
          const dst = weightSlots[slot]!.pointer + offset;
          native.memcpyHtoD(dst, t.tier === "cpu" ? t.host! : staged.get(t)!, weightsStream);
          at.set(t.name, dst);
          offset += align(t.bytes);
        }
      });
      if (fromDisk.length > 0) stagingFree[slot] = arrived;
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
    // KV of CPU sequences: past rows up into a staging slot before the step, new rows down after it.
    const kvStagingFree: (number | undefined)[] = [undefined, undefined];
    const newRowsFree: (number | undefined)[] = [undefined, undefined];
    const stored: (number | undefined)[][] = Array.from({ length: L }, () => new Array<number | undefined>(nb).fill(undefined));
    const issueCache = (layer: number, k: number, token: number, slot: number): number | undefined => {
      const past = token === 0 ? 0 : s + token - 1;
      if (cpuSeqs === 0 || past === 0) return undefined;
      const pastBytes = past * rowBytes;
      if (kvStagingFree[slot] !== undefined) native.streamWaitEvent(kvLoad, kvStagingFree[slot]!);
      if (stored[layer]![k] !== undefined) native.streamWaitEvent(kvLoad, stored[layer]![k]!);
      return timeline.device("load-cache", "h2d", kvLoad, cpuSeqs * 2 * pastBytes, { token, layer, batch: k }, () => {
        for (let c = 0; c < cpuSeqs; c++) {
          for (const which of [0, 1]) {
            const base = (c * 2 + which) * maxContext * rowBytes;
            native.memcpyHtoD(kvStaging[slot]!.pointer + (2 * c + which) * pastBytes, hostCache[layer]![k]!.subarray(base, base + pastBytes), kvLoad);
          }
        }
      });
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

    /** Batch k of `layer` at `token` on the compute stream; the hidden state is updated in place. */
    const computeStep = (ready: ReturnType<typeof readyLayer>, layer: number, k: number, token: number, slot: number, cacheArrived: number | undefined): number => {
      const where = { token, layer, batch: k };
      const t = token === 0 ? s : 1;
      const past = token === 0 ? 0 : s + token - 1;
      const ctx = past + t;
      const prefix = `model.decoder.layers.${layer}`;
      const m = (name: string) => ready.matrices.get(`${prefix}.${name}`)!;
      const v = (name: string) => ready.vectors.get(`${prefix}.${name}`)!;
      if (cacheArrived !== undefined) native.streamWaitEvent(compute, cacheArrived);
      if (newRowsFree[slot] !== undefined) native.streamWaitEvent(compute, newRowsFree[slot]!);
      const chunk = chunkSequences(t, ctx);
      const done = timeline.device("compute", "gpu", compute, 0, where, () => {
        for (let first = 0; first < gbs; first += chunk) {
          const count = Math.min(chunk, gbs - first);
          const r = count * t;
          const { x, y } = working;
          const q = working.shared.pointer, kk = q + r * h * 4, vv = kk + r * h * 4, o = vv + r * h * 4, ffn = q;
          native.f16ToF32(hidden[k]!.pointer + first * t * h * 2, x.pointer, r * h, compute);
          native.layerNorm(x.pointer, v("self_attn_layer_norm.weight"), v("self_attn_layer_norm.bias"), y.pointer, r, h, 1e-5, compute);
          linear(y.pointer, m("self_attn.q_proj.weight"), v("self_attn.q_proj.bias"), q, r, h, h);
          linear(y.pointer, m("self_attn.k_proj.weight"), v("self_attn.k_proj.bias"), kk, r, h, h);
          linear(y.pointer, m("self_attn.v_proj.weight"), v("self_attn.v_proj.bias"), vv, r, h, h);
          for (let c = 0; c < count; c++) {
            const seq = first + c;
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
              const at = rowsAt(which);
              const pastPointer = at.past;
              const all = which === 0 ? working.kAll.pointer : working.vAll.pointer;
              encodeRows(src, t, at.fresh);
              // Attention sees exactly what the cache holds: past rows and the new ones, decoded.
              decodeRows(pastPointer, past, all);
              decodeRows(at.fresh, t, all + past * h * 4);
            }
            // Queries in groups small enough for the scratch (causal: a group starting at row i has past + i rows before it).
            const perQuery = native.attentionScratchFloats(1, ctx - 1, nh);
            const group = Math.max(1, Math.min(t, Math.floor(attentionFloats / Math.max(1, perQuery))));
            for (let i0 = 0; i0 < t; i0 += group) {
              const rows = Math.min(group, t - i0);
              native.attention(q + (c * t + i0) * h * 4, working.kAll.pointer, working.vAll.pointer, o + (c * t + i0) * h * 4, working.scratch.pointer, rows, past + i0, nh, hd, compute);
            }
          }
          linear(o, m("self_attn.out_proj.weight"), v("self_attn.out_proj.bias"), y.pointer, r, h, h);
          native.add(x.pointer, y.pointer, r * h, compute);
          native.layerNorm(x.pointer, v("final_layer_norm.weight"), v("final_layer_norm.bias"), y.pointer, r, h, 1e-5, compute);
          linear(y.pointer, m("fc1.weight"), v("fc1.bias"), ffn, r, h, f);
          native.relu(ffn, r * f, compute);
          linear(ffn, m("fc2.weight"), v("fc2.bias"), y.pointer, r, f, h);
          native.add(x.pointer, y.pointer, r * h, compute);
          native.f32ToF16(x.pointer, hidden[k]!.pointer + first * t * h * 2, r * h, compute);
        }
      });
      if (cpuSeqs > 0) kvStagingFree[slot] = done;
      if (cpuSeqs > 0) {
        native.streamWaitEvent(kvStore, done);
        const appended = t * rowBytes;
        const end = timeline.device("store-cache", "d2h", kvStore, cpuSeqs * 2 * appended, where, () => {
          for (let c = 0; c < cpuSeqs; c++) {
            for (const which of [0, 1]) {
              const at = (c * 2 + which) * maxContext * rowBytes + past * rowBytes;
              native.memcpyDtoH(hostCache[layer]![k]!.subarray(at, at + appended), newRows[slot]!.pointer + (2 * c + which) * appended, kvStore);
            }
          }
        });
        stored[layer]![k] = end;
        newRowsFree[slot] = end;
      }
      return done;
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
    const bringEmbeddings = async (token: number) => {
      const where = { token, layer: L, batch: -1 };
      const at = new Map<string, number>();
      for (const t of embedRest) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
      if (restOff.length > 0) {
        const staged = new Map<Stored, Uint8Array>();
        const fromDisk = restOff.filter((t) => t.tier === "disk");
        if (fromDisk.length > 0) {
          native.streamSynchronize(weightsStream); // the staging's previous copy is done
          let offset = 0;
          const reads = fromDisk.map((t) => {
            const dst = embedDiskStaging!.subarray(offset, offset + t.bytes);
            offset += align(t.bytes);
            staged.set(t, dst);
            return { ...disk.readSource(t.diskKey!), dst };
          });
          const startMs = performance.now();
          await readFiles(reads);
          timeline.host("read-weights", "diskRead", reads.reduce((sum, r) => sum + r.bytes, 0), where, startMs, performance.now());
        }
        // The previous token's LM head has finished with the slot: the host synchronised on it.
        let offset = 0;
        const arrived = timeline.device("load-weights", "h2d", weightsStream, restOff.reduce((sum, t) => sum + t.bytes, 0), where, () => {
          for (const t of restOff) {
            const dst = embedSlot!.pointer + offset;
            native.memcpyHtoD(dst, t.tier === "cpu" ? t.host! : staged.get(t)!, weightsStream);
            at.set(t.name, dst);
            offset += align(t.bytes);
          }
        });
        native.streamWaitEvent(compute, arrived);
      }
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
    type Embeddings = Awaited<ReturnType<typeof bringEmbeddings>>;
    const embed = (e: Embeddings, ids: Int32Array, token: number, k: number) => {
      const t = token === 0 ? s : 1;
      const start = token === 0 ? 0 : s + token - 1;
      const positions = new Int32Array(t);
      for (let i = 0; i < t; i++) positions[i] = start + i + OPT_POSITION_OFFSET;
      native.memcpyHtoD(working.positions.pointer, positions, compute);
      const positionTable = e.at.get("model.decoder.embed_positions.weight")!;
      const rows = new Float32Array(t * d);
      timeline.device("compute", "gpu", compute, 0, { token, layer: -1, batch: k }, () => {
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
          native.f32ToF16(working.x.pointer, hidden[k]!.pointer + q * t * h * 2, t * h, compute);
        }
      });
    };
    const lmFeatures = (e: Embeddings, token: number, k: number) => {
      const t = token === 0 ? s : 1;
      timeline.device("lm-head", "gpu", compute, 0, { token, layer: L, batch: k }, () => {
        for (let q = 0; q < gbs; q++) native.f16ToF32(hidden[k]!.pointer + (q * t + t - 1) * h * 2, working.lastRows.pointer + q * h * 4, h, compute);
        native.layerNorm(working.lastRows.pointer, e.vectors.get("model.decoder.final_layer_norm.weight")!, e.vectors.get("model.decoder.final_layer_norm.bias")!, features.pointer + k * gbs * d * 4, gbs, h, 1e-5, compute);
      });
    };
    const headFree: (number | undefined)[] = [undefined, undefined];
    const finishHeads = (e: Embeddings, token: number): Int32Array[] => {
      const where = (batch: number) => ({ token, layer: L, batch });
      if (!streamedHead) {
        for (let k = 0; k < nb; k++) {
          timeline.device("lm-head", "gpu", compute, 0, where(k), () => {
            linear(features.pointer + k * gbs * d * 4, table.device!.pointer, undefined, logits.pointer + k * gbs * vocab * 4, gbs, d, vocab);
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
              for (let q = 0; q < gbs; q++) linear(features.pointer + (k * gbs + q) * d * 4, chunkPointer, undefined, logits.pointer + ((k * gbs + q) * vocab + firstRow) * 4, 1, d, rows);
            });
          }
          headFree[slot] = timeline.mark(compute);
        }
      }
      native.argmaxRows(logits.pointer, nb * gbs, vocab, nextIds.pointer, compute);
      for (let k = 0; k < nb; k++) {
        timeline.device("store-tokens", "d2h", compute, gbs * 4, where(k), () => native.memcpyDtoH(nextIdsHost.subarray(k * gbs, (k + 1) * gbs), nextIds.pointer + k * gbs * 4, compute));
      }
      native.streamSynchronize(compute);
      return Array.from({ length: nb }, (_, k) => nextIdsHost.slice(k * gbs, (k + 1) * gbs));
    };

    // ------------------------------------------------------------------------------------------
    // The schedule.
    const tokens: number[][] = Array.from({ length: gbs * nb }, () => []);
    let inputs = Array.from({ length: nb }, (_, k) => prompts.subarray(k * gbs * s, (k + 1) * gbs * s));
    timeline.start(compute);
    let prefillEnd = 0;
    let step = 0;
    let nextWeights: Promise<Arriving> | undefined;
    for (let token = 0; token < n; token++) {
      const embeddings = await bringEmbeddings(token);
      for (let k = 0; k < nb; k++) embed(embeddings, inputs[k]!, token, k);
      let pendingWeights = nextWeights ?? issueLayer(0, token);
      nextWeights = undefined;
      let cache = issueCache(0, 0, token, step % 2);
      for (let layer = 0; layer < L; layer++) {
        const arriving = await pendingWeights;
        const ready = readyLayer(arriving, { token, layer, batch: -1 });
        if (layer + 1 < L) pendingWeights = issueLayer(layer + 1, token);
        else if (token + 1 < n) nextWeights = issueLayer(0, token + 1);
        for (let k = 0; k < nb; k++) {
          const slot = step % 2;
          // The next step's KV streams in while this one computes.
          const followingCache = k + 1 < nb ? issueCache(layer, k + 1, token, (step + 1) % 2) : layer + 1 < L ? issueCache(layer + 1, 0, token, (step + 1) % 2) : undefined;
          computeStep(ready, layer, k, token, slot, cache);
          if (layer === L - 1) lmFeatures(embeddings, token, k);
          if (options.schedule === "flexgen") native.deviceSynchronize();
          cache = followingCache;
          step++;
        }
        slotFree[slotOf(token, layer)] = timeline.mark(compute);
      }
      // The next token's first KV loads wait for this token's stores (issueCache's events).
      const next = finishHeads(embeddings, token);
      for (let k = 0; k < nb; k++) for (let i = 0; i < gbs; i++) tokens[k * gbs + i]!.push(next[k]![i]!);
      inputs = next;
      if (token === 0) prefillEnd = timeline.nowSeconds();
    }
    if (nextWeights) await nextWeights;
    native.deviceSynchronize();
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
    timeline.destroy();
    for (const created of streams) native.streamDestroy(created);
    for (const buffer of pinnedBuffers) native.hostFree(buffer);
    pool?.close();
  }
}

/** Exposed for tests: the kernel tile rows the working-space rule assumes. */
export const CUDA_KERNEL_TILE_ROWS = KERNEL_TILE_ROWS;
