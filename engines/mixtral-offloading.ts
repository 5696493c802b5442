/**
 * mixtral-offloading (github.com/dvmazur/mixtral-offloading; Eliseev & Mazur, arXiv 2312.17238) as an
 * engine: Mixtral with HQQ-quantised attention resident on the GPU and a per-layer LRU cache of
 * `cacheSize` HQQ experts, the others in pinned host memory, swapped on a miss (copy in, write the
 * evicted one back) on the default stream. One forward of the batch's sequences at a time through
 * transformers' `generate`; no speculative prefetch (the public code has none). The layer's steps are
 * in mixtral-offloading/steps.ts, cut at the host synchronisations of its MoE block.
 */
import { type ExpertPolicy, storedBytes } from "../core/expert-policy.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import { defaultRoutingProfile } from "../planner/moe/default-routing.js";
import { expertCounts, routedExpertParams } from "../planner/moe/evaluate-moe-policy.js";
import { moePolicy } from "../planner/moe/moe-search.js";
import { capacityShortfalls } from "../planner/prediction.js";
import type { EngineModel, EnginePrediction, EngineRequest, EngineStep } from "./engine-model.js";
import { ratesUsed, resolveRates } from "./kernel-rates.js";
import { HQQ_LAYOUTS, type HqqBits, hqqStoredBitsPerValue, isHqqBits } from "./mixtral-offloading/hqq.js";
import { mixtralOffloadingPeaks } from "./mixtral-offloading/memory.js";
import { forwardStep, type LayerShape, layerSteps } from "./mixtral-offloading/steps.js";
import { largestTerm, totalSteps } from "./step-time.js";

/** `offload_per_layer = 4` in notebooks/demo.ipynb ("change this to 5 if you have only 12 GB"): 4 of 8 experts per layer on the GPU. */
const NOTEBOOK_OFFLOAD_PER_LAYER = 4;
/** The notebook's experts (ffn_config nbits 2) and attention (attn_config nbits 4). */
const NOTEBOOK_EXPERT_BITS: HqqBits = 2;
const NOTEBOOK_ATTENTION_BITS: HqqBits = 4;
/** Modelling choice: decode steps are costed in at most this many context chunks, each at its middle context. */
const DECODE_CHUNKS = 16;
/** Mixtral-8x7B's shape, the only one build_model names and the only one with a published HQQ checkpoint. */
const MIXTRAL_8X7B = { numLayers: 32, hiddenSize: 4096, expertFfnSize: 14336, numExperts: 8 };

function unsupported(model: ModelSpec, policy?: Policy): string | undefined {
  if (!model.moe)
    return (
      `${model.name} is a dense model; mixtral-offloading runs Mixture-of-Experts models only ` +
      "(its unit of offloading is one routed expert: src/expert_cache.py ExpertCache)"
    );
  if (model.family !== "mixtral")
    return (
      `${model.name} is a ${model.family} model; mixtral-offloading loads Mixtral only (src/build_model.py ` +
      "build_model builds transformers' MixtralForCausalLM from mistralai/Mixtral-8x7B-Instruct-v0.1's config, and " +
      "SparseMoeWrapper replaces Mixtral's block_sparse_moe)"
    );
  const x = policy?.experts;
  if (x && !isHqqBits(x.bits))
    return `experts at ${x.bits} bits: mixtral-offloading stores experts in HQQ only, and HQQLinearTritonSavable (src/custom_layers.py) asserts nbits in [2, 3, 4]`;
  if (x && !isHqqBits(x.attentionBits))
    return `attention at ${x.attentionBits} bits: mixtral-offloading replaces every attention projection by an HQQ layer (src/build_model.py replace_attn_layers), which asserts nbits in [2, 3, 4]`;
  return undefined;
}

interface Realized {
  readonly experts: ExpertPolicy;
  readonly batch: number;
  readonly notes: string[];
}

/** The policy as the engine can run it: its LRU in pinned host memory, HQQ bits, everything else on the GPU. */
function realize(model: ModelSpec, policy: Policy): Realized {
  const E = model.moe!.numExperts;
  const notes: string[] = [];
  const asked = policy.experts;
  if (!asked)
    notes.push(
      `no expert policy given: the notebook's configuration (offload_per_layer ${NOTEBOOK_OFFLOAD_PER_LAYER}, ` +
        `${NOTEBOOK_EXPERT_BITS}-bit experts, ${NOTEBOOK_ATTENTION_BITS}-bit attention)`,
    );
  const wanted = asked?.cacheSize ?? E - NOTEBOOK_OFFLOAD_PER_LAYER;
  const cacheSize = Math.min(E, Math.max(1, Math.round(wanted)));
  if (cacheSize !== wanted)
    notes.push(
      `cacheSize ${wanted} realized as ${cacheSize}: main_size per layer is num_experts - offload_per_layer, and ` +
        "load_experts needs at least one slot (its load window is min(buffers - 1, slots, misses))",
    );
  if (asked && asked.eviction !== "lru")
    notes.push(`eviction ${asked.eviction} realized as lru: EvictionGroupInfo.choose_expert_to_evict is LRU only`);
  if (asked && asked.offloadTier !== "cpu")
    notes.push(`offloadTier ${asked.offloadTier} realized as cpu: offloaded experts live in pinned host storages`);
  if (asked && asked.prefetchExperts > 0)
    notes.push(
      `prefetchExperts ${asked.prefetchExperts}: mixtral-offloading does not prefetch (README "Work in progress: ` +
        'speculative expert prefetching"; src/ has no prefetcher): modelled without',
    );
  if (asked?.pregated) notes.push("pregated: mixtral-offloading has no pre-gating: modelled without");
  if (asked && asked.compute !== "gpu")
    notes.push(`compute ${asked.compute} realized as gpu: every selected expert is swapped in and runs on the GPU`);
  if (policy.cache.gpu < 1)
    notes.push("KV cache realized on the GPU: transformers' DynamicCache keeps it beside the model");
  if (policy.numGpuBatches > 1)
    notes.push(
      `${policy.gpuBatchSize} x ${policy.numGpuBatches} sequences realized as one forward of ` +
        `${policy.gpuBatchSize * policy.numGpuBatches}: generate has no GPU-batch loop`,
    );
  const experts: ExpertPolicy = {
    cacheSize,
    eviction: "lru",
    offloadTier: "cpu",
    bits: asked?.bits ?? NOTEBOOK_EXPERT_BITS,
    attentionBits: asked?.attentionBits ?? NOTEBOOK_ATTENTION_BITS,
    prefetchExperts: 0,
    prefetchLayers: 1,
    pregated: false,
    compute: "gpu",
    cpuThresholdTokens: 0,
  };
  return { experts, batch: policy.gpuBatchSize * policy.numGpuBatches, notes };
}

function predict(request: EngineRequest): EnginePrediction {
  const { model, hardware, workload } = request;
  const reason = unsupported(model, request.policy);
  if (reason) throw new Error(`mixtral-offloading cannot run this: ${reason}`);
  const moe = model.moe!;
  const L = model.numLayers;
  const { experts, batch, notes } = realize(model, request.policy);
  const resolved = resolveRates(hardware);
  const routing = request.routing ?? defaultRoutingProfile(model);
  const expertLayout = HQQ_LAYOUTS[experts.bits as HqqBits];
  const shape: LayerShape = {
    model,
    rates: resolved.rates,
    attention: HQQ_LAYOUTS[experts.attentionBits as HqqBits],
    experts: expertLayout,
    expertBytes: storedBytes(routedExpertParams(model), experts.bits),
    batch,
  };
  const { promptLen: s, genLen: n } = workload;

  const prefill = expertCounts(model, moe, experts, routing, batch * s, "prefill");
  const steps: EngineStep[] = [
    ...layerSteps(shape, {
      phase: "prefill",
      tokensPerSequence: s,
      context: s,
      touched: prefill.touched,
      misses: prefill.fetched,
      tokensPerExpert: prefill.tokensPerExpert,
      repeat: L,
    }),
    forwardStep(shape, "prefill", s, s, 1),
  ];
  const decode = expertCounts(model, moe, experts, routing, batch, "decode");
  const decodeTokens = Math.max(0, n - 1);
  const chunks = Math.min(decodeTokens, DECODE_CHUNKS);
  for (let c = 0; c < chunks; c++) {
    const first = Math.floor((c * decodeTokens) / chunks) + 1;
    const last = Math.floor(((c + 1) * decodeTokens) / chunks);
    const tokens = last - first + 1;
    const context = s + (first + last) / 2;
    steps.push(
      ...layerSteps(shape, {
        phase: "decode",
        tokensPerSequence: 1,
        context,
        touched: decode.touched,
        misses: decode.fetched,
        tokensPerExpert: decode.tokensPerExpert,
        repeat: L * tokens,
      }),
      forwardStep(shape, "decode", 1, context, tokens),
    );
  }
  const totals = totalSteps(steps);
  const totalSeconds = totals.prefillSeconds + totals.decodeSeconds;

  const peakBytes = mixtralOffloadingPeaks(model, experts, batch, workload);
  const capacityBytes = {
    gpu: hardware.capacityBytes.gpu.value,
    cpu: hardware.capacityBytes.cpu.value,
    disk: hardware.capacityBytes.disk.value,
  };
  const infeasibleReasons = capacityShortfalls(peakBytes, capacityBytes);

  notes.push(
    "no speculative expert prefetch: the public repository lists it as work in progress (README.md); every miss waits for its swap",
    `expected misses per layer: ${decode.fetched.toFixed(3)} per decode token of ${decode.touched.toFixed(3)} selected ` +
      `experts (LRU hit rate ${decode.hitRate.toFixed(3)} with ${experts.cacheSize} slots), ` +
      `${prefill.fetched.toFixed(3)} in the prompt; routing: ${routing.source}`,
    `expert bytes: storedBytes at ${experts.bits} bits (the planner's figure); HQQ as this engine stores it holds ` +
      `${hqqStoredBitsPerValue(expertLayout).toFixed(3)} bits per weight (${expertLayout.source})`,
    "between host synchronisations a step lasts the longer of the host's dispatching and the GPU's work in it " +
      "(a lower bound; Python-only host work is not counted)",
  );
  if (
    L !== MIXTRAL_8X7B.numLayers ||
    model.hiddenSize !== MIXTRAL_8X7B.hiddenSize ||
    moe.expertFfnSize !== MIXTRAL_8X7B.expertFfnSize ||
    moe.numExperts !== MIXTRAL_8X7B.numExperts
  )
    notes.push(
      `${model.name}: build_model hard-codes mistralai/Mixtral-8x7B-Instruct-v0.1 and the only published checkpoint ` +
        "in its layout is that model's; this shape assumes both were changed",
    );

  return {
    engine: "mixtral-offloading",
    throughputTokensPerSecond: (batch * n) / totalSeconds,
    prefillSeconds: totals.prefillSeconds,
    decodeSeconds: totals.decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    realizedPolicy: moePolicy(model, batch, experts, false),
    peakBytes,
    capacityBytes,
    termSeconds: totals.termSeconds,
    laneSeconds: totals.laneSeconds,
    bottleneck: largestTerm(totals.termSeconds),
    steps,
    rates: ratesUsed(resolved, [
      "gpuMemoryBytesPerSecond",
      "gpuFlopsPerSecond",
      "gpuKernelLaunchSeconds",
      "gpuElementwiseBytesPerSecond",
      "gpuStridedBytesPerSecond",
      "eagerDispatchSeconds",
      "h2dPinnedBytesPerSecond",
      "h2dLatencySeconds",
      "d2hPinnedBytesPerSecond",
      "d2hLatencySeconds",
    ]),
    protocol:
      "The repository's demo notebook streams the reply and reports no speed. The paper (arXiv 2312.17238, " +
      "section 4.3, Table 2) reports the average tokens generated per second at batch 1, sampling OpenAssistant " +
      "conversations without temperature or nucleus sampling. This prediction's throughput is batch x genLen / " +
      "(prefill + decode) seconds.",
    notes,
  };
}

export const mixtralOffloadingEngine: EngineModel = {
  name: "mixtral-offloading",
  summary:
    "mixtral-offloading (dvmazur): HQQ Mixtral, per-layer LRU expert cache on the GPU, misses swapped from pinned host " +
    "memory on the default stream, host synchronisations in every MoE block, no prefetch",
  unsupported,
  predict,
};
