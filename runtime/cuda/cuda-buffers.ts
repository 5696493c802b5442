/**
 * The CUDA backend's static buffers: everything the schedule cycles through is allocated once, from
 * the device pool (the plan's GPU capacity) and pinned host memory: two weight slots, two pinned
 * disk-staging buffers, two device staging buffers for off-GPU KV (none with CPU attention) and two for
 * new KV rows, two device staging buffers for off-GPU hidden states (with, on disk, a pinned host buffer
 * each), the LM head's buffers, and one working space bounded as the planner bounds it.
 */
import { HEAD_CHUNK_BYTES } from "../../core/realize-placement.js";
import { chunkSequences } from "../chunk-sequences.js";
import { attentionScratchLength } from "../kernels/attention.js";
import { encodedByteLength } from "../tensor-codec.js";
import { ALIGN, align, type CudaRunContext } from "./cuda-context.js";
import { CudaDeviceOps } from "./cuda-device-ops.js";
import type { CudaPlacement } from "./cuda-placement.js";
import type { DevicePointer } from "./device-pool.js";

export interface HiddenSlot {
  readonly index: number;
  readonly device: DevicePointer;
  readonly pinned?: Uint8Array;
  /** The last device work reading or writing the staging buffer (its store, or the LM head's read). */
  readonly deviceFree?: number;
  /** Disk: the pinned buffer's last use, a copy up out of it (an event) or a file write out of it. */
  readonly pinnedFreeEvent?: number;
  readonly pinnedFreeWrite?: Promise<void>;
}

/** The static buffers the schedule cycles through, allocated once (device pool and pinned host memory). */
export function allocateCudaBuffers(ctx: CudaRunContext, placed: CudaPlacement) {
  const {
    native,
    model,
    policy,
    context,
    s,
    h,
    f,
    nh,
    hd,
    L,
    vocab,
    d,
    gbs,
    nb,
    maxContext,
    rowBytes,
    gpuSeqs,
    offSeqs,
    cpuSeqs,
    diskSeqs,
    tier,
    host,
    pinned,
    alloc,
  } = ctx;
  const { layers, table, embedRest } = placed;
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
  const embedVectors = alloc(
    embedRest.filter((t) => t.vector).reduce((sum, t) => sum + align(t.values * 4), 0),
    "embedding vectors (fp32)",
  );
  // Hidden states between layers: one device buffer per GPU batch, or (off the GPU) two device staging
  // buffers the steps cycle through, with the batches' host arrays (cpu) or a pinned buffer per staging
  // buffer that disk reads and writes go through (disk).
  const hidden =
    tier === "gpu" ? Array.from({ length: nb }, (_, k) => alloc(gbs * s * h * 2, `hidden state of batch ${k}`)) : [];
  const hostHidden = tier === "cpu" ? Array.from({ length: nb }, () => pinned(gbs * s * h * 2)) : [];
  const hiddenSlots: (HiddenSlot | undefined)[] =
    tier === "gpu"
      ? []
      : [0, 1].map((index) => ({
          index,
          device: alloc(gbs * s * h * 2, `hidden state staging ${index}`),
          ...(tier === "disk" ? { pinned: pinned(gbs * s * h * 2) } : {}),
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
  const headSlots = streamedHead
    ? [alloc(chunkStoredBytes, "LM-head chunk 0"), alloc(chunkStoredBytes, "LM-head chunk 1")]
    : [];
  const headDequant =
    streamedHead && table.encoding === "q4" ? alloc(rowsPerChunk * d * 2, "LM-head chunk, dequantised") : undefined;
  const tableDiskStaging = table.tier === "disk" ? pinned(table.bytes) : undefined;
  // KV: GPU sequences' rows in device memory, CPU sequences' in pinned host memory, for the whole run;
  // disk sequences' in offload files, through pinned staging (past rows in, new rows out; two of each).
  const deviceCache = Array.from({ length: L }, (_, layer) =>
    Array.from({ length: nb }, (_, k) =>
      gpuSeqs > 0
        ? alloc(gpuSeqs * 2 * maxContext * rowBytes, `KV cache of GPU sequences (layer ${layer}, batch ${k})`)
        : undefined,
    ),
  );
  const hostCache = Array.from({ length: L }, () =>
    Array.from({ length: nb }, () => (cpuSeqs > 0 ? pinned(cpuSeqs * 2 * maxContext * rowBytes) : undefined)),
  );
  // With CPU attention, off-GPU past rows never go up (the host attends over them).
  const kvStaging =
    offSeqs > 0 && !policy.cpuAttention
      ? [0, 1].map((i) => alloc(offSeqs * 2 * maxContext * rowBytes, `KV of off-GPU sequences ${i}`))
      : [];
  const newRows = offSeqs > 0 ? [0, 1].map((i) => alloc(offSeqs * 2 * s * rowBytes, `new KV rows ${i}`)) : [];
  const diskPastStaging = diskSeqs > 0 ? [0, 1].map(() => pinned(diskSeqs * 2 * maxContext * rowBytes)) : [];
  const diskNewStaging = diskSeqs > 0 ? [0, 1].map(() => pinned(diskSeqs * 2 * s * rowBytes)) : [];
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
  // Working space: sequences in chunks, as many as the planner's allowance holds (chunk-sequences.ts, both backends' rule).
  const chunkOf = (t: number, ctx: number): number => chunkSequences(model, context, gbs, t, ctx);
  const prefillChunk = chunkOf(s, s);
  const maxRows = Math.max(prefillChunk * s, gbs);
  // Attention scratch bounded by the planner's per-head allowance: queries go through in groups.
  const attentionFloats = Math.max(
    2 * s * hd + 2 * maxContext * hd + s * maxContext,
    nh * maxContext + 2 * h + nh,
    native.attentionScratchFloats(1, maxContext - 1, nh),
  );
  const working = {
    x: alloc(maxRows * h * 4, "working x"),
    y: alloc(maxRows * h * 4, "working y"),
    shared: alloc(maxRows * Math.max(4 * h, f) * 4, "working q/k/v/o and FFN"),
    kAll: alloc(maxContext * h * 4, "working K"),
    vAll: alloc(maxContext * h * 4, "working V"),
    scratch: alloc(attentionFloats * 4, "attention scratch"),
    ids: alloc(s * 4, "token ids"),
    positions: alloc(s * 4, "position ids"),
    lastRows: alloc(gbs * h * 4, "last positions"),
  };
  // The forward pass's device operations (opt-forward.ts) on the compute stream, attending in this working space's scratch.
  const ops = new CudaDeviceOps(native, ctx.compute, working.scratch.pointer, attentionFloats);
  return {
    ops,
    weightSlots,
    diskStaging,
    dequantBuffer,
    vectorBuffer,
    restOff,
    embedSlot,
    embedDiskStaging,
    embedVectors,
    hidden,
    hostHidden,
    hiddenSlots,
    features,
    nextIds,
    nextIdsHost,
    streamedHead,
    rowsPerChunk,
    logits,
    bestLogits,
    headSlots,
    headDequant,
    tableDiskStaging,
    deviceCache,
    hostCache,
    kvStaging,
    newRows,
    diskPastStaging,
    diskNewStaging,
    hostAttends,
    qDown,
    rowsDown,
    outUp,
    hostK,
    hostV,
    hostScratch,
    chunkOf,
    attentionFloats,
    working,
  };
}

export type CudaBuffers = ReturnType<typeof allocateCudaBuffers>;
