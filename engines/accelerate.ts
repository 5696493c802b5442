/**
 * Hugging Face Accelerate big-model inference (`device_map="auto"` with CPU and disk offload) running
 * transformers' generate(), counted from accelerate's source:
 * - big_modeling.py dispatch_model / hooks.py attach_align_device_hook_on_blocks: every module that owns
 *   parameters in a CPU- or disk-mapped block gets its own AlignDevicesHook with offload=True;
 * - hooks.py AlignDevicesHook.pre_forward: before the module runs, each of its tensors is moved to the
 *   execution device with utils/modeling.py set_module_tensor_to_device (`value.to(device)`, a
 *   synchronous copy out of pageable memory: the host waits for the GPU's queued work, then the calling
 *   thread copies the bytes chunk by chunk into the driver's pinned staging buffer while the copy engine
 *   moves the chunks staged before, and the host waits for the last one); post_forward puts them back on
 *   "meta";
 * - utils/offload.py OffloadedWeightsLoader / load_offloaded_weight: a disk-offloaded tensor is read
 *   through a numpy memmap (or safetensors' mmap) and copied into a fresh CPU tensor first.
 * No prefetch: copies and compute form one chain. GPU-resident modules run as plain eager PyTorch: the
 * host dispatches ahead of the GPU until the next synchronisation. The KV cache stays on the GPU.
 */
import type { Tier } from "../core/tiers.js";
import { type AccelerateDeviceMap, accelerateDeviceMap } from "./accelerate-device-map.js";
import type { EngineModel, EngineOperation, EnginePrediction, EngineRequest, EngineStep } from "./engine-model.js";
import { hfEngineUnsupported, hfForward } from "./hf/forward.js";
import { type GenerateForward, generateForwards } from "./hf/generate-run.js";
import { hfPrediction } from "./hf/hf-prediction.js";
import { type HfSegment, segmentParamBytes } from "./hf/segment.js";
import { dispatchOp, SEGMENT_RATES, segmentGpuOps } from "./hf/segment-ops.js";
import { forwardWorkspaceBytes, kvCacheBytes } from "./hf/working-memory.js";
import { type KernelRateName, type KernelRates, resolveRates } from "./kernel-rates.js";
import { op } from "./step-time.js";

export const TERM_WEIGHTS_IO = "weights I/O";

const HOOKS = "accelerate hooks.py AlignDevicesHook.pre_forward / post_forward";
const SET_TENSOR = "accelerate utils/modeling.py set_module_tensor_to_device";
const DISK_LOAD = "accelerate utils/offload.py OffloadedWeightsLoader.__getitem__, load_offloaded_weight";

/**
 * PyTorch operations an offloading hook issues per tensor: in pre_forward `value.to(device)` and the
 * parameter re-wrap's `.to(device)`, in post_forward the same two towards "meta"
 * (set_module_tensor_to_device).
 */
const HOOK_OPS_PER_TENSOR = 4;
/** Per hooked module: send_to_device of its inputs (AlignDevicesHook.pre_forward). */
const HOOK_OPS_PER_MODULE = 1;

const TORCH_COPY =
  "torch.tensor(ndarray): at::copy_ through TensorIterator, split over the intra-op threads (at::parallel_for)";
const STAGING =
  "CUDA Runtime API, API synchronization behavior: a pageable host->device cudaMemcpy returns once the buffer is copied to staging memory for DMA";

/**
 * The hook's synchronous copy of one offloaded module's tensors to the GPU: dispatch (and, from disk, the
 * read and the copy out of the memmap), then the pageable transfer, in which the host thread's staging
 * copy and the copy engine's DMA of the chunks already staged run side by side (two chains).
 */
function hookCopy(rates: KernelRates, segment: HfSegment, tier: Tier): EngineOperation[][] {
  const bytes = segmentParamBytes(segment);
  const tensors = segment.params.length;
  const name = segment.module;
  const hooked = `${name}: hooked`;
  const read = `${name}: read`;
  const staged = `${name}: staged`;
  // torch.tensor(memmap) is one more operation per tensor on the disk path.
  const dispatch = dispatchOp(
    rates,
    tensors * (HOOK_OPS_PER_TENSOR + (tier === "disk" ? 1 : 0)) + HOOK_OPS_PER_MODULE,
    `${name} offload hook`,
    HOOKS,
  );
  const staging = op(
    `${name}: the calling thread copies the pageable bytes into the driver's pinned staging buffer`,
    "hostThread",
    bytes / rates.cpuSingleThreadCopyBytesPerSecond,
    TERM_WEIGHTS_IO,
    `${SET_TENSOR}; ${STAGING}`,
    { bytes },
  );
  const dma: EngineOperation = {
    ...op(
      `${name}: host->device DMA of ${tensors} tensor(s), chunk by chunk as they are staged`,
      "h2d",
      bytes / rates.h2dPinnedBytesPerSecond + tensors * rates.h2dLatencySeconds,
      TERM_WEIGHTS_IO,
      `${SET_TENSOR}; ${STAGING}`,
      { bytes },
    ),
    after: staged,
  };
  if (tier !== "disk") return [[{ ...dispatch, id: staged }, staging], [dma]];
  // torch.tensor(memmap) is a parallel at::copy_ whose source pages fault in from the drive while the
  // intra-op threads first-touch the fresh tensor: the read and the copy overlap (two chains); the copy is
  // priced at the one-thread first-touch rate, an upper bound on its time.
  return [
    [
      { ...dispatch, id: hooked },
      {
        ...op(
          `${name}: read ${tensors} memory-mapped tensor(s) (page faults of torch.tensor's copy)`,
          "diskRead",
          bytes / rates.diskMmapReadBytesPerSecond + tensors * rates.diskLatencySeconds,
          TERM_WEIGHTS_IO,
          DISK_LOAD,
          { bytes },
        ),
        id: read,
      },
    ],
    [
      {
        ...op(
          `${name}: torch.tensor(memmap) copies into a fresh CPU tensor`,
          "hostThread",
          bytes / rates.cpuFirstTouchBytesPerSecond,
          TERM_WEIGHTS_IO,
          `${DISK_LOAD}; ${TORCH_COPY}`,
          { bytes },
        ),
        after: hooked,
      },
      {
        ...op(`${name}: the copy ends with the read`, "hostThread", 0, TERM_WEIGHTS_IO, DISK_LOAD),
        after: read,
        id: staged,
      },
      staging,
    ],
    [dma],
  ];
}

/**
 * Steps for `segments` placed on `tier`, repeated `count` times. The host runs ahead of the GPU between
 * synchronisations, so the segments since the last one form one step whose dispatch and kernels run side
 * by side; an offloaded module's hook synchronises, copies, and starts a new such run.
 */
function segmentSteps(
  rates: KernelRates,
  forward: GenerateForward,
  segments: readonly { segment: HfSegment; tier: Tier }[],
  count: number,
  what: string,
): EngineStep[] {
  const steps: EngineStep[] = [];
  let run: HfSegment[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const dispatch = run.reduce((a, s) => a + s.dispatchOps, 0);
    const gpu = run.flatMap((s) => segmentGpuOps(rates, s));
    steps.push({
      phase: forward.phase,
      label: `${forward.label}: ${what}: ${run.map((s) => s.module).join(", ")}`,
      count,
      chains: [[dispatchOp(rates, dispatch, run.map((s) => s.module).join(", "), run[0]!.source, gpu)], gpu],
    });
    run = [];
  };
  for (const { segment, tier } of segments) {
    if (tier !== "gpu" && segment.params.length > 0) {
      flush();
      steps.push({
        phase: forward.phase,
        label: `${forward.label}: ${what}: ${segment.module} weights from ${tier}`,
        count,
        chains: hookCopy(rates, segment, tier),
      });
    }
    run.push(segment);
  }
  flush();
  return steps;
}

function edgeTier(map: AccelerateDeviceMap, segment: HfSegment): Tier {
  if (segment.part === "generate") return "gpu";
  if (segment.module === "embed_tokens") return map.embedTokens;
  if (segment.module === "lm_head") return map.lmHead;
  return map.positionsAndNorms;
}

function forwardSteps(rates: KernelRates, request: EngineRequest, map: AccelerateDeviceMap, forward: GenerateForward) {
  const { before, layer, after } = hfForward(request.model, forward.shape);
  const edge = (segments: readonly HfSegment[]) =>
    segments.map((segment) => ({ segment, tier: edgeTier(map, segment) }));
  const steps = segmentSteps(rates, forward, edge(before), 1, "embeddings");
  for (const tier of ["gpu", "cpu", "disk"] as const) {
    const n = map.layers[tier];
    if (n > 0)
      steps.push(
        ...segmentSteps(
          rates,
          forward,
          layer.map((segment) => ({ segment, tier })),
          n,
          `${tier} layer x ${n}`,
        ),
      );
  }
  steps.push(...segmentSteps(rates, forward, edge(after), 1, "head"));
  return steps;
}

/** Peak bytes per tier: resident weights, the largest module a hook brings in, KV cache and activations. */
function peakBytes(request: EngineRequest, map: AccelerateDeviceMap, forwards: readonly GenerateForward[]) {
  const { model, workload } = request;
  const first = hfForward(model, forwards[0]!.shape);
  const layerBytes = first.layer.reduce((a, s) => a + segmentParamBytes(s), 0);
  const stored = { gpu: 0, cpu: 0, disk: 0 };
  for (const segment of [...first.before, ...first.after]) {
    // A tied LM head is the token table itself: stored once.
    if (segment.module === "lm_head" && model.tiedEmbeddings) continue;
    stored[edgeTier(map, segment)] += segmentParamBytes(segment);
  }
  const offloaded: { tier: Tier; bytes: number }[] = [];
  for (const tier of ["cpu", "disk"] as const) {
    stored[tier] += map.layers[tier] * layerBytes;
    if (map.layers[tier] > 0) for (const s of first.layer) offloaded.push({ tier, bytes: segmentParamBytes(s) });
  }
  for (const segment of [...first.before, ...first.after]) {
    const tier = edgeTier(map, segment);
    if (tier !== "gpu") offloaded.push({ tier, bytes: segmentParamBytes(segment) });
  }
  const largest = (tiers: readonly Tier[]) =>
    offloaded.filter((o) => tiers.includes(o.tier)).reduce((a, o) => Math.max(a, o.bytes), 0);
  const workspace = Math.max(...forwards.map((f) => forwardWorkspaceBytes(model, f.shape)));
  return {
    gpu:
      map.layers.gpu * layerBytes +
      stored.gpu +
      largest(["cpu", "disk"]) +
      kvCacheBytes(model, map.batch, workload.promptLen + workload.genLen) +
      workspace,
    // A disk tensor is copied out of its memmap into a CPU tensor before it goes to the GPU.
    cpu: stored.cpu + largest(["disk"]),
    disk: stored.disk,
  };
}

function predict(request: EngineRequest): EnginePrediction {
  const reason = accelerateEngine.unsupported(request.model, request.policy);
  if (reason) throw new Error(`accelerate: ${reason}`);
  const map = accelerateDeviceMap(request.model, request.policy);
  const rates = resolveRates(request.hardware).rates;
  const forwards = generateForwards(map.batch, request.workload);
  const steps = forwards.flatMap((f) => forwardSteps(rates, request, map, f));
  const rateNames: KernelRateName[] = [...SEGMENT_RATES];
  const offloaded =
    map.layers.cpu + map.layers.disk > 0 ||
    [map.embedTokens, map.positionsAndNorms, map.lmHead].some((t) => t !== "gpu");
  if (offloaded) rateNames.push("cpuSingleThreadCopyBytesPerSecond", "h2dPinnedBytesPerSecond", "h2dLatencySeconds");
  if (map.layers.disk > 0 || [map.embedTokens, map.positionsAndNorms, map.lmHead].includes("disk"))
    rateNames.push("diskMmapReadBytesPerSecond", "diskLatencySeconds", "cpuFirstTouchBytesPerSecond");
  return hfPrediction({
    engine: "accelerate",
    request,
    batch: map.batch,
    steps,
    realizedPolicy: map.realizedPolicy,
    peakBytes: peakBytes(request, map, forwards),
    rateNames,
    notes: [
      `device map: ${map.layers.gpu} layers on the GPU, ${map.layers.cpu} on the CPU, ${map.layers.disk} on disk; token table on ${map.embedTokens}`,
      ...map.notes,
      "disk-offloaded tensors are read from the drive on every forward: the OS page cache is not modelled (a disk part that fits in free host memory would be served from it after the first pass)",
      "infer_auto_device_map also reserves the largest layer on the GPU when it offloads; the peak counts the largest module a hook actually loads",
    ],
  });
}

export const accelerateEngine: EngineModel = {
  name: "accelerate",
  summary:
    'Hugging Face Accelerate device_map="auto": whole layers on GPU, CPU, disk; hooks copy offloaded weights when a module runs (no prefetch); KV cache on the GPU',
  unsupported: hfEngineUnsupported,
  predict,
};
