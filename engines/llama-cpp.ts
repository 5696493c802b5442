/**
 * llama.cpp (ggml-org/llama.cpp) as an engine: a GGUF file of one file type, `-ngl N` layers and the
 * output layer on the GPU, `--n-cpu-moe N` layers' routed experts in host memory, `-np` parallel
 * sequences decoded as one batch, prompts in ubatches of 512 (`-ub`, common/common.h n_ubatch). Bytes per
 * tensor from the file type's rules (engines/llama-cpp/gguf-*.ts), placement from llama-model.cpp
 * (engines/llama-cpp/placement.ts), each graph's operations from the graph builders and the backend
 * scheduler (engines/llama-cpp/graph-step.ts), every rate from the profile (engines/kernel-rates.ts).
 */
import { MOE_FAMILIES, type ModelSpec } from "../core/model-spec.js";
import type { LayerGroup, Placement, Policy } from "../core/policy.js";
import { formatBytes } from "../core/units.js";
import { capacityShortfalls } from "../planner/prediction.js";
import type { EngineKnobs, EngineModel, EnginePrediction, EngineRequest, EngineStep } from "./engine-model.js";
import { ratesUsed, resolveRates } from "./kernel-rates.js";
import { type GgufFileType, parseGgufFileType } from "./llama-cpp/gguf-file-types.js";
import { type GgufFile, type GgufTensor, ggufFile } from "./llama-cpp/gguf-tensors.js";
import { type GraphPricing, type GraphShape, graphChain } from "./llama-cpp/graph-step.js";
import { type LlamaCppPlacement, placeLayers, tensorDevice, tierBytes } from "./llama-cpp/placement.js";
import { largestTerm, totalSteps } from "./step-time.js";

/** common/common.h: n_ubatch = 512, the physical batch a graph carries. */
export const UBATCH_TOKENS = 512;
/** What an unset ggufType means: a 16-bit conversion (convert_hf_to_gguf.py --outtype auto). */
export const DEFAULT_GGUF_TYPE: GgufFileType = "F16";

const FAMILIES_WITHOUT_LLAMA_CPP: Readonly<Partial<Record<ModelSpec["family"], string>>> = {
  opt: "llama.cpp has no OPT architecture: src/llama-model.cpp llama_model_mapping lists none and convert_hf_to_gguf.py registers no OPTForCausalLM",
};

function unsupported(model: ModelSpec): string | undefined {
  return FAMILIES_WITHOUT_LLAMA_CPP[model.family];
}

interface Knobs {
  readonly fileType: GgufFileType;
  readonly nGpuLayers: number | undefined;
  readonly nCpuMoe: number;
  readonly noKvOffload: boolean;
  /** `-np`: sequences decoded as one batch (default the policy's gpuBatchSize x numGpuBatches). */
  readonly parallelSequences: number | undefined;
  /** `-ub`: tokens of one physical batch, i.e. of one graph (default 512). */
  readonly ubatchTokens: number;
}

function readKnobs(model: ModelSpec, knobs: EngineKnobs = {}): Knobs {
  const count = (value: number | undefined, field: string): number | undefined => {
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value < 0)
      throw new Error(`knobs.${field}: expected an integer >= 0, got ${value}`);
    return value;
  };
  const positive = (value: number | undefined, field: string): number | undefined => {
    if (value !== undefined && value < 1) throw new Error(`knobs.${field}: expected an integer >= 1, got ${value}`);
    return count(value, field);
  };
  const nGpuLayers = count(knobs.nGpuLayers, "nGpuLayers (-ngl)");
  const nCpuMoe = count(knobs.nCpuMoe, "nCpuMoe (--n-cpu-moe)") ?? 0;
  if (nCpuMoe > 0 && !MOE_FAMILIES.includes(model.family))
    throw new Error(`knobs.nCpuMoe (--n-cpu-moe): ${model.name} is dense; it has no routed experts to keep on the CPU`);
  return {
    fileType: parseGgufFileType(knobs.ggufType ?? DEFAULT_GGUF_TYPE, "knobs.ggufType"),
    // llama-model.cpp: act_gpu_layers = min(n_gpu_layers, n_layer + 1); the override loop's extra layers match nothing.
    nGpuLayers: nGpuLayers === undefined ? undefined : Math.min(nGpuLayers, model.numLayers + 1),
    nCpuMoe: Math.min(nCpuMoe, model.numLayers),
    noKvOffload: knobs.noKvOffload ?? false,
    parallelSequences: positive(knobs.parallelSequences, "parallelSequences (-np)"),
    ubatchTokens: positive(knobs.ubatchTokens, "ubatchTokens (-ub)") ?? UBATCH_TOKENS,
  };
}

const params = (t: GgufTensor) => t.shape[0] * t.shape[1] * t.shape[2];

function placementOf(gpuParams: number, allParams: number): Placement {
  const gpu = allParams > 0 ? gpuParams / allParams : 0;
  return { gpu, cpu: 1 - gpu, disk: 0 };
}

/** The placement as a policy: layer groups by device (MoE: experts' host share in each group's weights). */
function realized(request: EngineRequest, file: GgufFile, placement: LlamaCppPlacement): Policy {
  const L = request.model.numLayers;
  const groups: LayerGroup[] = [];
  let gpuParams = 0;
  let allParams = 0;
  file.layers.forEach((layer, l) => {
    const where = placement.layers[l]!;
    const onGpu = layer.filter((t) => tensorDevice(t, where) === "gpu").reduce((a, t) => a + params(t), 0);
    const all = layer.reduce((a, t) => a + params(t), 0);
    gpuParams += onGpu;
    allParams += all;
    const weights = placementOf(onGpu, all);
    const last = groups[groups.length - 1];
    if (last && last.compute === where.device && Math.abs(last.weights.gpu - weights.gpu) < 1e-12)
      groups[groups.length - 1] = { ...last, layers: last.layers + 1 };
    else groups.push({ layers: 1, weights, compute: where.device });
  });
  const gpuLayers = placement.layers.filter((l) => l.device === "gpu").length;
  const gpuKvLayers = placement.layers.filter((l) => l.kvDevice === "gpu").length;
  const anyGpu = gpuLayers > 0 || placement.outputDevice === "gpu";
  const outParams = file.output.reduce((a, t) => a + params(t), 0);
  return {
    ...request.policy,
    weights: placementOf(gpuParams, allParams),
    cache: { gpu: gpuKvLayers / L, cpu: 1 - gpuKvLayers / L, disk: 0 },
    activations: { gpu: anyGpu ? 1 : 0, cpu: anyGpu ? 0 : 1, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: gpuKvLayers < L,
    overlap: false,
    pinWeight: false,
    layerGroups: groups,
    embeddings: placementOf(placement.outputDevice === "gpu" ? outParams : 0, outParams + params(file.tokenEmbedding)),
    experts: undefined,
  };
}

function steps(request: EngineRequest, pricing: GraphPricing, sequences: number, ubatch: number): EngineStep[] {
  const { promptLen: s, genLen: n } = request.workload;
  const out: EngineStep[] = [];
  const promptTokens = sequences * s;
  const full = Math.floor(promptTokens / ubatch);
  const rest = promptTokens - full * ubatch;
  const prefill = (tokens: number): GraphShape => ({
    tokens,
    outputs: (sequences * tokens) / promptTokens,
    contextPerToken: (s + 1) / 2,
    kvCellsRead: (Math.max(1, tokens / s) * (s + 1)) / 2,
  });
  for (const [tokens, count] of [
    [ubatch, full],
    [rest, 1],
  ] as const) {
    if (tokens > 0 && count > 0)
      out.push({
        phase: "prefill",
        label: `prompt ubatch of ${tokens} tokens`,
        count,
        chains: [graphChain(pricing, prefill(tokens))],
      });
  }
  if (n > 1) {
    const graphs = Math.ceil(sequences / ubatch);
    const tokens = sequences / graphs;
    const context = s + n / 2;
    const shape: GraphShape = { tokens, outputs: tokens, contextPerToken: context, kvCellsRead: tokens * context };
    out.push({
      phase: "decode",
      label: `decode graph: one token of ${tokens} sequences`,
      count: (n - 1) * graphs,
      chains: [graphChain(pricing, shape)],
    });
  }
  return out;
}

function predict(request: EngineRequest): EnginePrediction {
  const { model, hardware, workload, policy } = request;
  const why = unsupported(model);
  if (why) throw new Error(`llama.cpp cannot run ${model.name}: ${why}`);
  const knobs = readKnobs(model, request.knobs);
  const resolved = resolveRates(hardware);
  const sequences = knobs.parallelSequences ?? policy.gpuBatchSize * policy.numGpuBatches;
  const kvCells = sequences * (workload.promptLen + workload.genLen);
  const file = ggufFile(model, knobs.fileType);
  const capacityBytes = {
    gpu: hardware.capacityBytes.gpu.value,
    cpu: hardware.capacityBytes.cpu.value,
    disk: hardware.capacityBytes.disk.value,
  };
  const memoryAt = (nGpuLayers: number) => {
    const placement = placeLayers(model.numLayers, nGpuLayers, knobs.nCpuMoe, knobs.noKvOffload);
    return { placement, bytes: tierBytes(model, file, placement, sequences, kvCells, knobs.ubatchTokens) };
  };
  // Unset -ngl: every slot that fits (common/arg.cpp --fit, on by default, lowers unset -ngl to fit device memory).
  let chosen = memoryAt(knobs.nGpuLayers ?? model.numLayers + 1);
  if (knobs.nGpuLayers === undefined)
    for (let ngl = model.numLayers; ngl >= 0 && chosen.bytes.peak.gpu > capacityBytes.gpu; ngl--)
      chosen = memoryAt(ngl);
  const { placement, bytes } = chosen;
  const pricing: GraphPricing = { model, rates: resolved.rates, file, placement };
  const allSteps = steps(request, pricing, sequences, knobs.ubatchTokens);
  const totals = totalSteps(allSteps);
  const totalSeconds = totals.prefillSeconds + totals.decodeSeconds;
  const infeasibleReasons = capacityShortfalls(bytes.peak, capacityBytes);
  const gpuLayers = placement.layers.filter((l) => l.device === "gpu").length;
  return {
    engine: "llama.cpp",
    throughputTokensPerSecond: (sequences * workload.genLen) / totalSeconds,
    prefillSeconds: totals.prefillSeconds,
    decodeSeconds: totals.decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    realizedPolicy: realized(request, file, placement),
    peakBytes: bytes.peak,
    capacityBytes,
    termSeconds: totals.termSeconds,
    laneSeconds: totals.laneSeconds,
    bottleneck: largestTerm(totals.termSeconds),
    steps: allSteps,
    rates: ratesUsed(resolved, [
      "gpuMemoryBytesPerSecond",
      "gpuFlopsPerSecond",
      "gpuKernelLaunchSeconds",
      "cpuStreamBytesPerSecond",
      "cpuFlopsPerSecond",
      "h2dPinnedBytesPerSecond",
      "h2dPageableBytesPerSecond",
      "h2dLatencySeconds",
      "d2hPinnedBytesPerSecond",
      "d2hLatencySeconds",
    ]),
    notes: [
      `${knobs.fileType} GGUF, ${formatBytes(file.totalBytes)}; -ngl ${placement.nGpuLayers}${knobs.nGpuLayers === undefined ? " (fitted)" : ""}: ` +
        `${gpuLayers} of ${model.numLayers} layers and the output layer ${placement.outputDevice === "gpu" ? "on" : "off"} the GPU` +
        (model.moe ? `; --n-cpu-moe ${knobs.nCpuMoe}` : "") +
        (knobs.noKvOffload ? "; -nkvo: every layer's KV cache in host memory, attention on the CPU" : ""),
      `GPU: weights ${formatBytes(bytes.weights.gpu)}, KV ${formatBytes(bytes.kv.gpu)}, compute buffer ${formatBytes(bytes.compute.gpu)}; ` +
        `host: weights ${formatBytes(bytes.weights.cpu)}, KV ${formatBytes(bytes.kv.cpu)}`,
      knobs.parallelSequences === undefined
        ? `-np ${sequences}: the policy's ${policy.gpuBatchSize} x ${policy.numGpuBatches} sequences decode as one batch; its placement fields are not llama.cpp's and are replaced`
        : `-np ${sequences}: that many sequences decode as one batch (a round of the policy's ${policy.gpuBatchSize} x ${policy.numGpuBatches}); its placement fields are not llama.cpp's and are replaced`,
      ...(knobs.ubatchTokens === UBATCH_TOKENS
        ? []
        : [`-ub ${knobs.ubatchTokens}: prompt graphs of ${knobs.ubatchTokens} tokens`]),
      ...(model.moe
        ? [
            "routed experts kept in host memory by --n-cpu-moe show as each layer group's CPU share of weights (no uniform expert policy expresses them)",
          ]
        : []),
    ],
  };
}

export const llamaCppEngine: EngineModel = {
  name: "llama.cpp",
  summary:
    "llama.cpp: GGUF bytes per tensor by file type, -ngl / --n-cpu-moe placement, one graph per ubatch or decode token (CPU and GPU splits in order), op offload of host weights for batches of 32+",
  unsupported,
  predict,
};
