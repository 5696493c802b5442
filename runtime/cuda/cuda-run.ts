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
 * Streams: weights (h2d, copied in pieces of at most the schedule's weightCopyChunkBytes, so that a
 * copy on another h2d stream never waits behind a whole layer), KV load (h2d; also CPU attention's
 * output coming back), KV store (d2h; also CPU attention's q, k, v going down), activations (off-GPU
 * hidden states, h2d and d2h) and compute;
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

import { KERNEL_TILE_ROWS } from "../../core/layer-working-set.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { OnProgress } from "../../core/progress.js";
import type { Resource } from "../../core/resources.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import type { Workload } from "../../core/workload.js";
import type { PolicyCostContext } from "../../planner/spillway/evaluate-policy.js";
import { scheduleStrategy } from "../../schedule/strategies.js";
import { globalStep, zigzag } from "../../schedule/zigzag.js";
import type { ChromeTraceWriter } from "../../simulator/chrome-trace-writer.js";
import type { DiskStore } from "../disk-store.js";
import type { OptWeights } from "../opt-checkpoint.js";
import { HostLedger } from "../opt-runner.js";
import { placeWeights } from "../parallel-encoder.js";
import { runProgress } from "../run-progress.js";
import { type Encoding, encodedByteLength } from "../tensor-codec.js";
import { allocateCudaBuffers } from "./cuda-buffers.js";
import type { CudaRunContext } from "./cuda-context.js";
import { createCudaHidden, type HiddenIn } from "./cuda-hidden.js";
import { type CacheIn, createCudaKv } from "./cuda-kv.js";
import { createCudaLayer } from "./cuda-layer.js";
import { createCudaLmHead } from "./cuda-lm-head.js";
import { placeOnCuda } from "./cuda-placement.js";
import { type Arriving, createCudaWeights, type Embeddings, type ReadyWeights } from "./cuda-weights.js";
import { DevicePool } from "./device-pool.js";
import { DeviceTimeline } from "./device-timeline.js";
import type { CudaNative } from "./native-api.js";

/** Why this backend cannot run the policy yet, or undefined (every placement, CPU attention included, runs). */
export function cudaUnsupported(model: ModelSpec, _policy: Policy, _context: PolicyCostContext): string | undefined {
  if (model.wordEmbedDim !== model.hiddenSize)
    return `${model.name} projects its embeddings (wordEmbedDim ${model.wordEmbedDim} ≠ hiddenSize ${model.hiddenSize}), which the CUDA backend does not run yet`;
  if (!model.tiedEmbeddings) return `${model.name} has an untied LM head, which the CUDA backend does not run yet`;
  return undefined;
}

export interface CudaExecutionOptions {
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  readonly schedule: ScheduleName;
  readonly overlap: boolean;
  readonly trace?: ChromeTraceWriter;
  /** Called as each layer step is issued to the device (phase "run"). */
  readonly onProgress?: OnProgress;
  /** Threads that quantise 4-bit weights at placement (RunOptions.encoderThreads). */
  readonly encoderThreads?: number;
}

export interface CudaExecution {
  readonly tokens: number[][];
  readonly prefillSeconds: number;
  readonly makespanSeconds: number;
  readonly peakBytes: { gpu: number; cpu: number; disk: number };
  readonly busy: Record<Resource, number>;
  readonly bytes: { h2d: number; d2h: number; diskRead: number; diskWrite: number };
  readonly events: number;
}

export async function executeOnCuda(
  native: CudaNative,
  weights: OptWeights,
  policy: Policy,
  workload: Workload,
  context: PolicyCostContext,
  disk: DiskStore,
  prompts: Int32Array,
  options: CudaExecutionOptions,
): Promise<CudaExecution> {
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
  if (diskSeqs !== context.realized.cacheSequences.disk)
    throw new Error(
      `KV placement of ${gbs} sequences does not add up: ${JSON.stringify(context.realized.cacheSequences)}`,
    );
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
    work.then(
      () => inFlight.delete(work),
      () => undefined,
    );
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

    const ctx: CudaRunContext = {
      native,
      model,
      policy,
      context,
      disk,
      weights,
      s,
      n,
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
      kvEncoding,
      rowBytes,
      gpuSeqs,
      offSeqs,
      cpuSeqs,
      diskSeqs,
      tier,
      host,
      pinned,
      alloc,
      timeline,
      track,
      whenDone,
      compute,
      weightsStream,
      kvLoad,
      kvStore,
      activations,
      weightCopyChunkBytes: scheduleStrategy(options.schedule).weightCopyChunkBytes,
    };
    // Every tensor placed, every static buffer allocated (in this order: the pool's first fit sees the same requests).
    const placed = await placeWeights(options.encoderThreads, policy.compressWeight, (encoder) =>
      placeOnCuda(ctx, encoder),
    );
    const buffers = allocateCudaBuffers(ctx, placed);
    // Resident vectors of layers and embeddings are converted per use like streamed ones (one path).
    native.deviceSynchronize();
    const { hidden } = buffers;
    const { slotFree, slotOf, issueLayer, readyLayer, issueEmbeddings, readyEmbeddings } = createCudaWeights(
      ctx,
      placed,
      buffers,
    );
    const kv = createCudaKv(ctx, buffers);
    const { issueCache } = kv;
    const { computeStep } = createCudaLayer(ctx, buffers, kv);
    const { takeHidden, releaseHidden, issueHidden, storeHidden } = createCudaHidden(ctx, buffers);
    const { embed, lmFeatures, finishHeads } = createCudaLmHead(ctx, placed, buffers);

    // ------------------------------------------------------------------------------------------
    // The schedule: the zig-zag one step ahead (schedule/zigzag.ts). Steps alternate the double
    // buffers by their global index q (KV staging, new rows, CPU-attention output: slot q % 2).
    const tokens: number[][] = Array.from({ length: gbs * nb }, () => []);
    let inputs = Array.from({ length: nb }, (_, k) => prompts.subarray(k * gbs * s, (k + 1) * gbs * s));
    timeline.start(compute);
    let prefillEnd = 0;
    const shape = { numLayers: L, numGpuBatches: nb, genLen: n };
    const computed = runProgress(options.onProgress, "run", shape);
    let pendingEmbeddings: Promise<Map<string, number>> | undefined;
    let embeddings: Embeddings | undefined;
    let pendingWeights: Promise<Arriving> | undefined;
    let ready: ReadyWeights | undefined;
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
            await storeHidden(
              token,
              -1,
              k,
              slot,
              embed(embeddings!, inputs[k]!, token, k, slot.device.pointer),
              hiddenValues,
            );
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
          computed(step.at);
          break;
        }
        case "lm-head":
          lmFeatures(embeddings!, token, k, current!.hiddenAt);
          break;
        case "store": {
          const staged = current!.staged;
          if (staged && step.outputToNextLayer)
            await storeHidden(token, layer, k, staged.slot, current!.done, hiddenValues);
          // The last layer's output is not stored: its staging is free once the LM head has read it.
          else if (staged)
            releaseHidden(staged.slot, {
              deviceFree: timeline.mark(compute),
              ...(tier === "disk" ? { pinnedFreeEvent: staged.arrived } : {}),
            });
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
      tokens,
      prefillSeconds: prefillEnd,
      makespanSeconds: makespan,
      peakBytes: { gpu: devicePool.peakBytes, cpu: host.peakBytes, disk: disk.peakBytes },
      busy,
      bytes: timeline.bytes,
      events,
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
