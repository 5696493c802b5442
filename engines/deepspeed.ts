/**
 * DeepSpeed ZeRO-Inference: ZeRO stage 3 with parameter offload running transformers' generate(),
 * counted from DeepSpeed's source:
 * - runtime/zero/partition_parameters.py _partition_param: every parameter lives partitioned off the GPU
 *   (offload_param device "cpu", pinned unless pin_memory is false, or "nvme" for parameters of at least
 *   1 MiB) except those under stage3_param_persistence_threshold, which stay on the GPU;
 * - runtime/zero/partitioned_param_coordinator.py fetch_sub_module: before every module with parameters
 *   runs, its parameters are fetched (on one GPU: partition_parameters.py NoGatherHandle, a
 *   `.to(device, non_blocking=True)` on the all-gather stream) and waited for, then the next parameters
 *   in the recorded trace are prefetched (up to stage3_prefetch_bucket_size elements: with FlexGen's
 *   harness, hidden^2, about one module ahead) so their copy overlaps this module's compute;
 *   release_sub_module frees them after the module (kept only when reused within
 *   stage3_max_reuse_distance elements);
 * - runtime/swap_tensor/partitioned_param_swapper.py: NVMe parameters are read by libaio into pinned swap
 *   buffers ahead of the GPU prefetch (__prefetch_nvme_param_partitions), then copied to the GPU.
 * The trace restarts with every forward, so each forward's first fetch is not prefetched. The KV cache and
 * activations stay on the GPU. Modelled as a pipeline one module deep: while module j computes, the next
 * module's parameters cross PCIe, and (NVMe) the drive reads one NVMe module ahead of those copies.
 * DeepSpeed v0.7.7 (the version FlexGen's harness runs) fetches through the all-gather path instead
 * (ZeroInferenceConfig.fetchPath): its `.to(device)` blocks the host until the copy ends, and every
 * fetched byte is copied twice more on the GPU (torch.cat into the flat all-gather buffer, torch.cat out
 * of it in AllGatherCoalescedHandle.wait), the second on the all-gather stream the module's compute waits
 * for.
 */
import type { ModelSpec } from "../core/model-spec.js";
import { PLACEMENT_TOLERANCE, type Placement, type Policy } from "../core/policy.js";
import { FLEXGEN_HARNESS_ZERO_CONFIG, type ZeroInferenceConfig } from "./deepspeed-zero-config.js";
import type { EngineModel, EngineOperation, EnginePrediction, EngineRequest, EngineStep } from "./engine-model.js";
import { hfEngineUnsupported, hfForward } from "./hf/forward.js";
import { type GenerateForward, generateForwards } from "./hf/generate-run.js";
import { hfPrediction } from "./hf/hf-prediction.js";
import { generateInexpressibleNotes } from "./hf/policy-notes.js";
import type { HfSegment, HfTensor } from "./hf/segment.js";
import { dispatchOp, SEGMENT_RATES, segmentGpuOps } from "./hf/segment-ops.js";
import { forwardWorkspaceBytes, kvCacheBytes } from "./hf/working-memory.js";
import { type KernelRateName, type KernelRates, resolveRates } from "./kernel-rates.js";
import { op } from "./step-time.js";

export const TERM_WEIGHTS_IO = "weights I/O";

const FETCH =
  "deepspeed runtime/zero/partitioned_param_coordinator.py fetch_sub_module; partition_parameters.py NoGatherHandle";
const SWAP = "deepspeed runtime/swap_tensor/partitioned_param_swapper.py swap_in (libaio into pinned buffers)";
const ALL_GATHER =
  "deepspeed v0.7.7 runtime/zero/partition_parameters.py all_gather_coalesced, AllGatherCoalescedHandle.wait";

/** Where ZeRO-Inference keeps parameters off the GPU ("none": no offload_param, everything on the GPU). */
export type ZeroOffload = "none" | "cpu" | "nvme";

/** Per fetched parameter: `.to(device)`, `.view` (NoGatherHandle) and free_param's empty tensor on release. */
const HOOK_OPS_PER_PARAM = 3;
/** Per module: the all-gather stream synchronize and wait_stream in fetch_sub_module, the fetch event. */
const HOOK_OPS_PER_MODULE = 3;
/**
 * v0.7.7's all-gather path, per fetched module: torch.empty of the flat buffer, narrow, torch.cat, the
 * one-rank `_all_gather_base` and its handle's wait (all_gather_coalesced, AllGatherCoalescedHandle.wait).
 */
const ALL_GATHER_OPS_PER_MODULE = 5;
/** ... and per fetched parameter in AllGatherCoalescedHandle.wait: narrow, torch.cat, view, record_stream. */
const ALL_GATHER_OPS_PER_PARAM = 4;

export interface ZeroRealization {
  readonly offload: ZeroOffload;
  readonly pinMemory: boolean;
  readonly batch: number;
  readonly realizedPolicy: Policy;
  readonly notes: readonly string[];
}

const ON_GPU: Placement = { gpu: 1, cpu: 0, disk: 0 };

export function zeroRealization(policy: Policy): ZeroRealization {
  const notes: string[] = [];
  const w = policy.weights;
  const offload: ZeroOffload =
    w.gpu >= 1 - PLACEMENT_TOLERANCE ? "none" : w.disk > PLACEMENT_TOLERANCE ? "nvme" : "cpu";
  if (offload !== "none" && w.gpu > PLACEMENT_TOLERANCE)
    notes.push(
      `a ${Math.round(w.gpu * 100)}% GPU share of weights cannot be expressed: ZeRO-3 offloads every parameter above stage3_param_persistence_threshold`,
    );
  if (offload === "nvme" && w.cpu > PLACEMENT_TOLERANCE)
    notes.push(
      "NVMe offload puts every parameter of at least 1 MiB on NVMe: the CPU share of weights cannot be expressed",
    );
  if (policy.layerGroups) notes.push("per-layer placement cannot be expressed: ZeRO-3 treats every layer alike");
  const batch = policy.gpuBatchSize * policy.numGpuBatches;
  notes.push(...generateInexpressibleNotes(policy, batch));
  // offload_param.pin_memory applies to host-resident partitions; NVMe swap buffers are always page-locked.
  const pinMemory = offload === "nvme" ? true : policy.pinWeight;
  const weights: Placement =
    offload === "none" ? ON_GPU : offload === "cpu" ? { gpu: 0, cpu: 1, disk: 0 } : { gpu: 0, cpu: 0, disk: 1 };
  const { layerGroups: _groups, experts: _experts, ...rest } = policy;
  const realizedPolicy: Policy = {
    ...rest,
    gpuBatchSize: batch,
    numGpuBatches: 1,
    weights,
    embeddings: weights,
    cache: ON_GPU,
    activations: ON_GPU,
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: offload !== "none",
    pinWeight: pinMemory,
  };
  return { offload, pinMemory, batch, realizedPolicy, notes };
}

type Home = "gpu" | "cpu" | "nvme";

function paramHome(t: HfTensor, offload: ZeroOffload, config: ZeroInferenceConfig): Home {
  if (offload === "none" || t.numel <= config.paramPersistenceThresholdNumel) return "gpu";
  return offload === "nvme" && t.bytes >= config.nvmeMinBytes ? "nvme" : "cpu";
}

interface Context {
  readonly rates: KernelRates;
  readonly zero: ZeroRealization;
  readonly config: ZeroInferenceConfig;
  /** Whether a tied LM head is fetched again (its table was released after the embedding lookup). */
  readonly refetchTiedHead: boolean;
  readonly tied: boolean;
}

/** The parameters a segment's fetch copies (none for GPU-resident ones, or a tied head still held). */
function fetched(ctx: Context, segment: HfSegment | undefined): HfTensor[] {
  if (!segment) return [];
  if (segment.module === "lm_head" && ctx.tied && !ctx.refetchTiedHead) return [];
  return segment.params.filter((t) => paramHome(t, ctx.zero.offload, ctx.config) !== "gpu");
}

function nvmeBearing(ctx: Context, segment: HfSegment | undefined): boolean {
  return fetched(ctx, segment).some((t) => paramHome(t, ctx.zero.offload, ctx.config) === "nvme");
}

const sumBytes = (ts: readonly HfTensor[]) => ts.reduce((a, t) => a + t.bytes, 0);

function diskRead(ctx: Context, params: readonly HfTensor[], what: string): EngineOperation[] {
  const onNvme = params.filter((t) => paramHome(t, ctx.zero.offload, ctx.config) === "nvme");
  if (onNvme.length === 0) return [];
  const bytes = sumBytes(onNvme);
  const seconds = bytes / ctx.rates.diskReadBytesPerSecond + onNvme.length * ctx.rates.diskLatencySeconds;
  return [
    op(`${what}: NVMe read of ${onNvme.length} parameter(s)`, "diskRead", seconds, TERM_WEIGHTS_IO, SWAP, { bytes }),
  ];
}

/** The host->device copy of `params` (staged through the driver's buffer when host memory is pageable). */
function copyToGpu(ctx: Context, params: readonly HfTensor[], what: string): EngineOperation[] {
  if (params.length === 0) return [];
  const bytes = sumBytes(params);
  const { rates } = ctx;
  const pageable = ctx.zero.pinMemory
    ? 0
    : sumBytes(params.filter((t) => paramHome(t, ctx.zero.offload, ctx.config) === "cpu"));
  const relay =
    pageable > 0
      ? [
          op(
            `${what}: pageable copy staged through the driver's pinned buffer`,
            "hostThread",
            pageable / rates.pageableRelayBytesPerSecond,
            TERM_WEIGHTS_IO,
            FETCH,
            { bytes: pageable },
          ),
        ]
      : [];
  return [
    ...relay,
    op(
      `${what}: host->device copy of ${params.length} parameter(s)`,
      "h2d",
      bytes / rates.h2dPinnedBytesPerSecond + params.length * rates.h2dLatencySeconds,
      TERM_WEIGHTS_IO,
      FETCH,
      { bytes },
    ),
  ];
}

/**
 * v0.7.7's all-gather path: one GPU copy of `params` (read and written once) by torch.cat, "in" into the
 * flat buffer after the host->device copies (all_gather_coalesced), or "out" of it, one torch.cat per
 * parameter (AllGatherCoalescedHandle.wait). Empty on the no-gather path.
 */
function flatBufferCopy(
  ctx: Context,
  params: readonly HfTensor[],
  direction: "in" | "out",
  what: string,
): EngineOperation[] {
  if (ctx.config.fetchPath !== "all-gather-coalesced" || params.length === 0) return [];
  const bytes = 2 * sumBytes(params);
  const kernels = direction === "in" ? 1 : params.length;
  const name =
    direction === "in"
      ? `${what}: torch.cat of ${params.length} parameter(s) into the flat all-gather buffer`
      : `${what}: torch.cat of each of ${params.length} parameter(s) out of the flat buffer`;
  return [
    op(
      name,
      "gpu",
      bytes / ctx.rates.gpuElementwiseBytesPerSecond + kernels * ctx.rates.gpuKernelLaunchSeconds,
      TERM_WEIGHTS_IO,
      ALL_GATHER,
      { bytes, launches: kernels },
    ),
  ];
}

/** Host operations of the all-gather path for a module fetching `own` and prefetching `next` (0 on the no-gather path). */
function allGatherOps(ctx: Context, own: readonly HfTensor[], next: readonly HfTensor[]): number {
  if (ctx.config.fetchPath !== "all-gather-coalesced") return 0;
  return (next.length > 0 ? ALL_GATHER_OPS_PER_MODULE : 0) + ALL_GATHER_OPS_PER_PARAM * own.length;
}

const withId = (ops: EngineOperation[], id: string): EngineOperation[] =>
  ops.map((o, i) => (i === ops.length - 1 ? { ...o, id } : o));
const withAfter = (ops: EngineOperation[], after: string | undefined): EngineOperation[] =>
  after === undefined ? ops : ops.map((o, i) => (i === 0 ? { ...o, after } : o));

interface Block {
  readonly segments: readonly HfSegment[];
  readonly count: number;
  /** The segments that follow one instance of the block. */
  readonly following: readonly HfSegment[];
  readonly what: string;
}

function blockSteps(ctx: Context, forward: GenerateForward, block: Block): EngineStep[] {
  const sequence = [...block.segments, ...block.following];
  return block.segments.map((segment, j) => {
    const next = sequence[j + 1];
    const nextFetch = fetched(ctx, next);
    const own = fetched(ctx, segment);
    const hookOps =
      segment.part === "generate"
        ? 0
        : HOOK_OPS_PER_MODULE + HOOK_OPS_PER_PARAM * own.length + allGatherOps(ctx, own, nextFetch);
    // v0.7.7: wait() copies this module's parameters out of the flat buffer on the all-gather stream (the
    // module's kernels wait for it), before the next module's copies on that stream.
    const copyOut = withId(flatBufferCopy(ctx, own, "out", segment.module), "copy-out");
    const copy = withId(copyToGpu(ctx, nextFetch, `prefetch ${next?.module ?? ""}`), "prefetch");
    const copyIn = withAfter(flatBufferCopy(ctx, nextFetch, "in", `prefetch ${next?.module ?? ""}`), "prefetch");
    const gpu = withAfter(segmentGpuOps(ctx.rates, segment), copyOut.length > 0 ? "copy-out" : undefined);
    const dispatch = dispatchOp(
      ctx.rates,
      segment.dispatchOps + hookOps,
      segment.module,
      `${segment.source}; ${FETCH}`,
      [...copyOut, ...copyIn, ...gpu],
    );
    // Copying out of pageable memory, or v0.7.7's blocking .to(), blocks the host thread, so it dispatches
    // this module after the copy.
    const hostBlocked = copy.some((o) => o.lane === "hostThread") || ctx.config.fetchPath === "all-gather-coalesced";
    const chains: EngineOperation[][] = hostBlocked
      ? [[...copyOut, ...copy, dispatch], copyIn]
      : [[...copyOut, ...copy], [dispatch], copyIn];
    // The drive runs one NVMe module ahead of the GPU copies: when the module being copied is on NVMe, the
    // next NVMe module is read now (DeepSpeed's swap-in looks up to twice the in-flight elements ahead).
    if (nvmeBearing(ctx, next)) {
      const ahead = sequence.slice(j + 2).find((s) => nvmeBearing(ctx, s));
      chains.push(diskRead(ctx, fetched(ctx, ahead), `swap in ${ahead?.module ?? ""}`));
    }
    chains.push(gpu);
    return {
      phase: forward.phase,
      label: `${forward.label}: ${block.what}: ${segment.module}`,
      count: block.count,
      chains: chains.filter((c) => c.length > 0),
    };
  });
}

function forwardSteps(ctx: Context, model: ModelSpec, forward: GenerateForward): EngineStep[] {
  const { before, layer, after } = hfForward(model, forward.shape);
  const L = model.numLayers;
  const blocks: Block[] = [
    { segments: before, count: 1, following: layer, what: "embeddings" },
    ...(L > 1 ? [{ segments: layer, count: L - 1, following: layer, what: `layer x ${L - 1}` }] : []),
    { segments: layer, count: 1, following: after, what: "last layer" },
    { segments: after, count: 1, following: [], what: "head" },
  ];
  const first = fetched(ctx, before[0]);
  const exposed: EngineStep = {
    phase: forward.phase,
    label: `${forward.label}: fetch ${before[0]!.module} (the trace restarts: not prefetched)`,
    count: 1,
    chains: [
      [
        ...diskRead(ctx, first, `swap in ${before[0]!.module}`),
        ...copyToGpu(ctx, first, `fetch ${before[0]!.module}`),
        ...flatBufferCopy(ctx, first, "in", `fetch ${before[0]!.module}`),
      ],
      diskRead(
        ctx,
        fetched(
          ctx,
          [...before.slice(1), ...layer].find((s) => nvmeBearing(ctx, s)),
        ),
        "swap in ahead",
      ),
    ].filter((c) => c.length > 0),
  };
  return [...(exposed.chains.length > 0 ? [exposed] : []), ...blocks.flatMap((b) => blockSteps(ctx, forward, b))];
}

function peakBytes(ctx: Context, request: EngineRequest, forwards: readonly GenerateForward[]) {
  const { model, workload } = request;
  const { before, layer, after } = hfForward(model, forwards[0]!.shape);
  const stored = { gpu: 0, cpu: 0, nvme: 0 };
  const unique = [...before, ...layer.flatMap((s) => Array(model.numLayers).fill(s) as HfSegment[]), ...after].filter(
    (s) => !(s.module === "lm_head" && ctx.tied),
  );
  for (const s of unique) for (const t of s.params) stored[paramHome(t, ctx.zero.offload, ctx.config)] += t.bytes;
  // The module running and the one prefetched are on the GPU at once.
  const sequence = [...before, ...layer, ...layer, ...after];
  let inFlight = 0;
  for (let j = 0; j + 1 < sequence.length; j++)
    inFlight = Math.max(inFlight, sumBytes(fetched(ctx, sequence[j])) + sumBytes(fetched(ctx, sequence[j + 1])));
  const heldTable = ctx.tied && !ctx.refetchTiedHead ? sumBytes(fetched(ctx, before[0])) : 0;
  const workspace = Math.max(...forwards.map((f) => forwardWorkspaceBytes(model, f.shape)));
  const swapBuffers =
    ctx.zero.offload === "nvme" ? ctx.config.nvmeBufferCount * ctx.config.nvmeBufferNumel * model.bytesPerParam : 0;
  return {
    gpu:
      stored.gpu +
      inFlight +
      heldTable +
      kvCacheBytes(model, ctx.zero.batch, workload.promptLen + workload.genLen) +
      workspace,
    cpu: stored.cpu + swapBuffers,
    disk: stored.nvme,
  };
}

/** ZeRO-Inference's prediction under an explicit ZeRO configuration (the engine uses FlexGen's harness settings). */
export function predictZeroInference(request: EngineRequest, config: ZeroInferenceConfig): EnginePrediction {
  const reason = deepspeedEngine.unsupported(request.model, request.policy);
  if (reason) throw new Error(`deepspeed: ${reason}`);
  const { model } = request;
  const zero = zeroRealization(request.policy);
  const forwards = generateForwards(zero.batch, request.workload);
  const probe = hfForward(model, forwards[0]!.shape);
  const tableNumel = probe.before[0]!.params.reduce((a, t) => a + t.numel, 0);
  // Elements of the modules between the embedding lookup and the tied LM head (release_sub_module's window).
  const between =
    probe.before.slice(1).reduce((a, s) => a + s.params.reduce((b, t) => b + t.numel, 0), 0) +
    model.numLayers * probe.layer.reduce((a, s) => a + s.params.reduce((b, t) => b + t.numel, 0), 0) +
    probe.after
      .filter((s) => s.module !== "lm_head")
      .reduce((a, s) => a + s.params.reduce((b, t) => b + t.numel, 0), 0);
  const ctx: Context = {
    rates: resolveRates(request.hardware).rates,
    zero,
    config,
    tied: model.tiedEmbeddings,
    refetchTiedHead: tableNumel > 0 && between >= config.maxReuseDistanceNumel,
  };
  const steps = forwards.flatMap((f) => forwardSteps(ctx, model, f));
  const rateNames: KernelRateName[] = [...SEGMENT_RATES];
  if (zero.offload !== "none") rateNames.push("h2dPinnedBytesPerSecond", "h2dLatencySeconds");
  if (zero.offload === "cpu" && !zero.pinMemory) rateNames.push("pageableRelayBytesPerSecond");
  if (zero.offload === "nvme") rateNames.push("diskReadBytesPerSecond", "diskLatencySeconds");
  const largestNvme = Math.max(
    0,
    ...[...probe.before, ...probe.layer, ...probe.after].flatMap((s) =>
      s.params.filter((t) => paramHome(t, zero.offload, config) === "nvme").map((t) => t.numel),
    ),
  );
  const prediction = hfPrediction({
    engine: "deepspeed",
    request,
    batch: zero.batch,
    steps,
    realizedPolicy: zero.realizedPolicy,
    peakBytes: peakBytes(ctx, request, forwards),
    rateNames,
    notes: [
      `offload_param: ${zero.offload}${zero.offload === "cpu" ? (zero.pinMemory ? " (pinned)" : " (pageable)") : ""}; ZeRO settings: ${config.source}`,
      ...(model.tiedEmbeddings
        ? [
            ctx.refetchTiedHead
              ? "the tied LM head is fetched again: the layers between it and the embedding exceed stage3_max_reuse_distance"
              : "the tied token table stays on the GPU from the embedding lookup to the LM head (within stage3_max_reuse_distance)",
          ]
        : []),
      ...zero.notes,
    ],
  });
  if (zero.offload !== "nvme" || largestNvme <= config.nvmeBufferNumel) return prediction;
  const reasons = [
    ...prediction.infeasibleReasons,
    `offload_param.buffer_size ${config.nvmeBufferNumel} elements is smaller than the largest NVMe parameter (${largestNvme} elements)`,
  ];
  return { ...prediction, feasible: false, infeasibleReasons: reasons };
}

export const deepspeedEngine: EngineModel = {
  name: "deepspeed",
  summary:
    "DeepSpeed ZeRO-Inference (ZeRO-3 parameter offload): every layer streamed from pinned CPU memory or NVMe, the next module prefetched under the current one's compute; KV cache on the GPU",
  unsupported: hfEngineUnsupported,
  predict: (request) => predictZeroInference(request, FLEXGEN_HARNESS_ZERO_CONFIG),
};
