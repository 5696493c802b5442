/**
 * Prediction for a Mixture-of-Experts policy (`policy.experts`): everything but the routed experts is
 * resident on the GPU; each layer keeps `cacheSize` experts there; a step's touched experts are hits
 * or misses by the routing profile's expected hit rate; misses are fetched over PCIe (from host memory,
 * or disk then host) after routing, unless a prefetcher brought them during the previous layer, or are
 * computed on the CPU where they live (Fiddler, llama.cpp decode). KV cache on the GPU, or on the CPU
 * with attention there. Every kernel is a roofline over its stored bytes; transfers cost latency plus
 * bytes over bandwidth. Closed form per layer and token step, summed like the dense model.
 */
import { type ExpertBits, type ExpertPolicy, STORED_BITS_PER_PARAM, storedBytes } from "../../core/expert-policy.js";
import { LINKS, type Link } from "../../core/links.js";
import { expertParams, kvDim, layerParams, type ModelSpec, type MoeSpec, qDim } from "../../core/model-spec.js";
import { moeWeightBytes } from "../../core/moe-weight-bytes.js";
import type { Policy } from "../../core/policy.js";
import { RESOURCES, type Resource } from "../../core/resources.js";
import type { Workload } from "../../core/workload.js";
import { cudaMoeDeviceBytes, lookaheadGuessWidth, moePassShape } from "../../runtime/moe/device-budget.js";
import { VariableSpace } from "../lp/affine.js";
import { capacityShortfalls, type Prediction, timeShortfalls } from "../prediction.js";
import { costConstants } from "../spillway/cost-constants.js";
import { type HardwareRates, matmulSecondsPerWeight } from "../spillway/hardware-rates.js";
import { StepCostModel } from "../spillway/step-costs.js";
import { expectedHitRate, type RoutingProfile, speculativeRecall, touchedExperts } from "./routing-profile.js";

export interface ExpertFigures {
  /** Expected share of touched experts already resident, per decode step. */
  readonly expectedHitRate: number;
  /** Experts a decode step touches per layer, expected. */
  readonly touchedPerLayer: number;
  /** Misses per layer per decode step fetched on demand (after routing: they stall the layer). */
  readonly demandFetchesPerLayer: number;
  /** Misses per layer per decode step a prefetch brought in time. */
  readonly prefetchedPerLayer: number;
  /** Prefetched experts per layer per decode step that were not needed. */
  readonly wastedPrefetchesPerLayer: number;
  /** Misses per layer per decode step computed on the CPU. */
  readonly cpuComputedPerLayer: number;
  /** Seconds per decode step the GPU waits for demand fetches (all layers). */
  readonly stallSecondsPerToken: number;
  /** Stored bytes of one routed expert at the policy's precision. */
  readonly expertBytes: number;
  readonly routingSource: string;
}

export interface MoePrediction extends Prediction {
  readonly experts: ExpertFigures;
  /** Seconds per decode step (one token for every sequence of the batch). */
  readonly decodeSecondsPerToken: number;
}

/** Params of one routed expert (SwiGLU: gate, up, down). */
export function routedExpertParams(model: ModelSpec, _moe?: MoeSpec): number {
  return expertParams(model);
}

/** Params of a layer outside its routed experts: attention, norms, router, shared experts. */
export function nonExpertLayerParams(model: ModelSpec, moe: MoeSpec): number {
  return layerParams(model) - moe.numExperts * routedExpertParams(model, moe);
}

/** A placement summary (share of all stored weight bytes per tier) for `policy.weights`. */
export function moeWeightShares(model: ModelSpec, experts: ExpertPolicy): { gpu: number; cpu: number; disk: number } {
  const b = moeWeightBytes(model, experts);
  const resident = b.nonExpertBytes + b.cachedExpertBytes;
  const total = resident + b.offloadedExpertBytes;
  return {
    gpu: resident / total,
    cpu: b.offloadTier === "cpu" ? b.offloadedExpertBytes / total : 0,
    disk: b.offloadTier === "disk" ? b.offloadedExpertBytes / total : 0,
  };
}

export interface StepFigures {
  readonly wallSeconds: number;
  readonly busy: Record<Resource, number>;
  readonly bytes: Record<Link, number>;
  readonly stallSeconds: number;
  /** The layer's compute by kind: attention, router and other resident weights; experts on the GPU; experts on the CPU. */
  readonly computeSeconds: { readonly nonExpert: number; readonly gpuExperts: number; readonly cpuExperts: number };
}

/** What happened to one layer's experts in one step: expected counts (planner) or counted ones (replay). */
export interface ExpertStepCounts {
  readonly touched: number;
  readonly hits: number;
  /** Misses brought to the GPU (on demand or prefetched in time). */
  readonly fetched: number;
  readonly onCpu: number;
  /** Of `fetched`, those a prefetch brought before the layer needed them. */
  readonly prefetched: number;
  /** Prefetched experts the layer did not use. */
  readonly wasted: number;
  readonly tokensPerExpert: number;
}

export interface MoeStepModel {
  /** One layer's wall time, busy time and traffic for one step, given what happened to its experts. */
  step(phase: "prefill" | "decode", context: number, counts: ExpertStepCounts): StepFigures;
  /** LM head of one token step (all sequences). */
  readonly headSeconds: number;
  readonly headGpuSeconds: number;
  readonly expertBytes: number;
  /** The dense step model's GPU working space of one batch through one layer (and the logits). */
  workingBytes(tokensPerSequence: number, context: number): number;
}

/**
 * Launches per sequence and layer of the CUDA MoE decoder's attention: its new K and V rows copied into its
 * cache (two device-to-device copies) and one GQA kernel. Held against the decoder's calls on the emulated
 * device (test/unit/moe-per-sequence-work.test.ts).
 */
export const MOE_ATTENTION_LAUNCHES_PER_SEQUENCE = 3;

/**
 * Bytes of a GPU's routing round trip through the host for one layer over `tokens` token rows: down, the
 * router's logits (and a pre-gate's) and a speculative lookahead's guesses (expert and weight per guess);
 * up, the chosen experts' gate weights.
 */
export function moeRoutingBytes(moe: MoeSpec, x: ExpertPolicy, tokens: number): { down: number; up: number } {
  const down = ((x.pregated ? 2 : 1) * tokens * moe.numExperts + 2 * tokens * lookaheadGuessWidth(x)) * 4;
  return { down, up: tokens * moe.expertsPerToken * 4 };
}

export function moeStepModel(model: ModelSpec, rates: HardwareRates, workload: Workload, policy: Policy): MoeStepModel {
  const moe = model.moe;
  const x = policy.experts;
  if (!moe || !x) throw new Error("the MoE step model needs an MoE model and policy.experts");
  const E = moe.numExperts;
  const k = moe.expertsPerToken;
  const h = model.hiddenSize;
  const kv = kvDim(model);
  const B = policy.gpuBatchSize * policy.numGpuBatches;
  const s = workload.promptLen;
  const expertParams = routedExpertParams(model, moe);
  const expertBytes = storedBytes(expertParams, x.bits);
  const kvTokenBytes = 2 * kv * 2;
  const cacheOnCpu = policy.cache.cpu + policy.cache.disk;
  const cacheOnGpu = policy.cache.gpu;
  const cpuAttention = cacheOnCpu > 0 && policy.cpuAttention;
  const costModel = new StepCostModel(
    model,
    rates,
    workload,
    {
      gbs: B,
      nb: 1,
      compressWeight: false,
      compressCache: false,
      cpuAttention,
      activationTier: "gpu",
      pinWeight: true,
      overlap: true,
      schedule: "spillway",
    },
    costConstants(model, false),
    new VariableSpace([]),
  );

  /** The profile's measured GEMM curve for weights stored at `bits`, where it has one. */
  const curveAt = (bits: ExpertBits) => (bits === 16 ? rates.matmulCurve : rates.quantizedMatmulCurves?.[bits]);
  /** A GPU GEMM over weights stored at `bits`: the measured curve where the profile has one, else the roofline; plus a launch. */
  const gemm = (tokens: number, kIn: number, nOut: number, bits: ExpertBits) => {
    const curve = curveAt(bits);
    if (curve) return kIn * nOut * matmulSecondsPerWeight(curve, tokens) + rates.kernelLaunchSeconds;
    return (
      Math.max(
        (2 * tokens * kIn * nOut) / rates.gpuFlopsPerSecond,
        ((kIn * nOut * STORED_BITS_PER_PARAM[bits]) / 8 + 2 * tokens * (kIn + nOut)) / rates.gpuMemoryBytesPerSecond,
      ) + rates.kernelLaunchSeconds
    );
  };
  const h2dSeconds = (bytes: number, count = 1) => bytes / rates.h2dBytesPerSecond + count * rates.h2dLatencySeconds;
  const d2hSeconds = (bytes: number, count = 1) => bytes / rates.d2hBytesPerSecond + count * rates.d2hLatencySeconds;
  const diskSeconds = (bytes: number, count = 1) =>
    bytes / rates.diskReadBytesPerSecond + count * rates.diskLatencySeconds;

  const nonExpertParams = nonExpertLayerParams(model, moe);
  const q = qDim(model);
  const projectionParams = h * (q + 2 * kv) + q * h + h * E;
  const otherParams = Math.max(0, nonExpertParams - projectionParams); // shared experts, norms

  const step = (phase: "prefill" | "decode", context: number, counts: ExpertStepCounts): StepFigures => {
    const tokens = phase === "prefill" ? B * s : B;
    const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
    const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
    // Attention, router, shared experts: resident at attentionBits.
    let attention =
      gemm(tokens, h, q + 2 * kv, x.attentionBits) +
      gemm(tokens, q, h, x.attentionBits) +
      gemm(tokens, h, E, x.attentionBits);
    if (otherParams > h * 4) attention += gemm(tokens, h, otherParams / h, x.attentionBits);
    // Speculative prefetch applies layer l + a's router to layer l's router input: one more router GEMM.
    if (x.prefetchExperts > 0 && !x.pregated) attention += gemm(tokens, h, E, x.attentionBits);
    attention += (tokens * 10 * h * 2) / rates.gpuMemoryBytesPerSecond + 6 * rates.kernelLaunchSeconds;
    let cpuAttentionSeconds = 0;
    let kvLink = 0;
    // Attention goes sequence by sequence on the device (runtime/cuda/cuda-mixtral-decoder.ts attentionBlock):
    // per sequence its new K and V rows copied into its cache and one GQA kernel, three launches.
    const attendingOnGpu = phase === "prefill" ? B : B * (cacheOnGpu + (cpuAttention ? 0 : cacheOnCpu));
    attention += attendingOnGpu * MOE_ATTENTION_LAUNCHES_PER_SEQUENCE * rates.kernelLaunchSeconds;
    if (phase === "prefill") {
      attention += B * costModel.gpuAttentionSecondsPerSequence("prefill", s);
      if (cacheOnCpu > 0) {
        const stored = B * cacheOnCpu * s * kvTokenBytes;
        bytes.d2h += stored;
        kvLink += d2hSeconds(stored);
        busy.d2h += d2hSeconds(stored);
      }
    } else {
      attention += B * cacheOnGpu * costModel.gpuAttentionSecondsPerSequence("decode", context);
      if (cacheOnCpu > 0 && cpuAttention) {
        cpuAttentionSeconds = B * cacheOnCpu * costModel.cpuAttentionSecondsPerSequence(context);
        const qkv = B * cacheOnCpu * (q + 2 * kv) * 2;
        bytes.d2h += qkv;
        bytes.h2d += B * cacheOnCpu * q * 2;
        busy.d2h += d2hSeconds(qkv);
        busy.h2d += h2dSeconds(B * cacheOnCpu * q * 2);
      } else if (cacheOnCpu > 0) {
        const loaded = B * cacheOnCpu * (context - 1) * kvTokenBytes;
        bytes.h2d += loaded;
        bytes.d2h += B * cacheOnCpu * kvTokenBytes;
        kvLink += h2dSeconds(loaded);
        busy.h2d += h2dSeconds(loaded);
        busy.d2h += d2hSeconds(B * cacheOnCpu * kvTokenBytes);
        attention += B * cacheOnCpu * costModel.gpuAttentionSecondsPerSequence("decode", context);
      }
    }

    // Routed experts.
    const { touched, hits, fetched, onCpu, prefetched, wasted, tokensPerExpert } = counts;
    const demand = fetched - prefetched;
    const moved = fetched + wasted;
    const expertGpu = hits + fetched;
    const expertCurve = curveAt(x.bits);
    const expertGpuSeconds =
      expertGpu > 0 && touched > 0 && expertCurve
        ? expertGpu *
          (expertParams * matmulSecondsPerWeight(expertCurve, tokensPerExpert) + 3 * rates.kernelLaunchSeconds)
        : expertGpu > 0 && touched > 0
          ? Math.max(
              (2 * tokens * k * expertParams * (expertGpu / touched)) / rates.gpuFlopsPerSecond,
              (expertGpu * expertBytes) / rates.gpuMemoryBytesPerSecond,
            ) +
            expertGpu * 3 * rates.kernelLaunchSeconds
          : 0;
    const cpuCurve = x.bits === 16 ? rates.cpuMatmulCurve : rates.cpuQuantizedMatmulCurves?.[x.bits];
    const cpuExpertSeconds = cpuCurve
      ? onCpu * expertParams * matmulSecondsPerWeight(cpuCurve, tokensPerExpert)
      : onCpu *
        Math.max(
          (2 * tokensPerExpert * expertParams) / rates.cpuFlopsPerSecond,
          expertBytes / rates.cpuMemoryBytesPerSecond,
        );
    if (onCpu > 0) {
      // The routed tokens' hidden states go down and the experts' outputs come back.
      const activations = onCpu * tokensPerExpert * h * 2;
      bytes.d2h += activations;
      bytes.h2d += activations;
      busy.d2h += d2hSeconds(activations);
      busy.h2d += h2dSeconds(activations);
    }
    const fromDisk = x.offloadTier === "disk";
    const fetchOne = h2dSeconds(expertBytes, 3) + (fromDisk ? diskSeconds(expertBytes, 3) : 0);
    const linkSeconds = moved * h2dSeconds(expertBytes, 3);
    const diskBusy = fromDisk ? moved * diskSeconds(expertBytes, 3) : 0;
    bytes.h2d += moved * expertBytes;
    if (fromDisk) bytes.diskRead += moved * expertBytes;
    busy.h2d += linkSeconds;
    busy.diskRead += diskBusy;
    busy.gpu += attention + expertGpuSeconds;
    busy.cpu += cpuAttentionSeconds + cpuExpertSeconds;
    // A GPU routes through the host once per layer (cuda-mixtral-decoder.ts moeBlock): the router's logits (a
    // pre-gate's too) and a lookahead's guesses come down, the stream is synchronised, the host picks the
    // experts, and the gate weights go back up; the layer waits for the round trip. (The host's own time
    // for the choice is not counted: no measured rate.)
    let routing = 0;
    if (!rates.deviceSharesHostCores) {
      const { down, up } = moeRoutingBytes(moe, x, tokens);
      routing = d2hSeconds(down) + h2dSeconds(up);
      bytes.d2h += down;
      bytes.h2d += up;
      busy.d2h += d2hSeconds(down);
      busy.h2d += h2dSeconds(up);
    }

    let wall: number;
    let stall: number;
    if (rates.deviceSharesHostCores) {
      // The device is the host's cores (the CPU backend): one thread of control runs the layer's
      // kernels, the CPU-computed experts and every expert copy (demand, streamed, prefetched or
      // wasted: each a memcpy by the same cores, a disk read before it where the experts live on disk),
      // one after another.
      stall = moved * fetchOne;
      wall = attention + cpuAttentionSeconds + kvLink + stall + expertGpuSeconds + cpuExpertSeconds;
    } else if (phase === "prefill") {
      // Experts stream one after another behind the computation (first one exposed).
      stall = fetched > 0 ? fetchOne : 0;
      wall = Math.max(
        attention + routing + cpuAttentionSeconds + kvLink + stall + Math.max(expertGpuSeconds, cpuExpertSeconds),
        linkSeconds + kvLink,
        diskBusy,
      );
    } else {
      // Demand misses are known after routing: the layer waits for them, one after another.
      stall = demand * fetchOne;
      wall = Math.max(
        attention + routing + cpuAttentionSeconds + kvLink + stall + Math.max(expertGpuSeconds, cpuExpertSeconds),
        busy.h2d,
        diskBusy,
        busy.cpu,
      );
    }
    return {
      wallSeconds: wall,
      busy,
      bytes,
      stallSeconds: stall,
      computeSeconds: { nonExpert: attention, gpuExperts: expertGpuSeconds, cpuExperts: cpuExpertSeconds },
    };
  };

  const headGpuSeconds = gemm(B, h, model.vocabSize, 16);
  return {
    step,
    headGpuSeconds,
    headSeconds: headGpuSeconds + d2hSeconds(B * 4),
    expertBytes,
    workingBytes: (tokensPerSequence, context) => costModel.workingBytes(tokensPerSequence, context),
  };
}

/**
 * `decodeSamples`: cost only this many evenly spaced decode steps, each standing for its share of the
 * steps (a step's time varies with its context through attention alone): the search's fast estimate.
 * Default: every step, exactly.
 */
export function evaluateMoePolicy(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  profile: RoutingProfile,
  decodeSamples?: number,
): MoePrediction {
  const moe = model.moe;
  const x = policy.experts;
  if (!moe || !x) throw new Error("evaluateMoePolicy needs an MoE model and policy.experts");
  const L = model.numLayers;
  const E = moe.numExperts;
  const kv = kvDim(model);
  const B = policy.gpuBatchSize * policy.numGpuBatches;
  const { promptLen: s, genLen: n } = workload;
  const kvTokenBytes = 2 * kv * 2;
  const cacheOnCpu = policy.cache.cpu + policy.cache.disk;
  const cacheOnGpu = policy.cache.gpu;
  const cpuAttention = cacheOnCpu > 0 && policy.cpuAttention;
  const model_ = moeStepModel(model, rates, workload, policy);
  const { expertBytes, headSeconds } = model_;

  const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  const add = (f: StepFigures, times: number) => {
    for (const r of RESOURCES) busy[r] += times * f.busy[r];
    for (const l of LINKS) bytes[l] += times * f.bytes[l];
  };
  const prefill = model_.step("prefill", s, expertCounts(model, moe, x, profile, B * s, "prefill"));
  add(prefill, L);
  busy.gpu += n * model_.headGpuSeconds;
  const prefillSeconds = L * prefill.wallSeconds + headSeconds;
  let decodeSeconds = 0;
  let stallSeconds = 0;
  const decodeCounts = expertCounts(model, moe, x, profile, B, "decode");
  const steps = n - 1;
  const samples = decodeSamples === undefined ? steps : Math.min(steps, Math.max(1, decodeSamples));
  for (let j = 0; j < samples; j++) {
    // Sample j stands for the steps [j*steps/samples, (j+1)*steps/samples), costed at their middle.
    const weight = steps / samples;
    const i = samples === steps ? j + 1 : 1 + Math.min(steps - 1, Math.floor((j + 0.5) * weight));
    for (const { probability, counts } of hitDistribution(decodeCounts, decodeSamples === undefined)) {
      const d = model_.step("decode", s + i, counts);
      add(d, L * weight * probability);
      decodeSeconds += weight * probability * L * d.wallSeconds;
      stallSeconds += weight * probability * L * d.stallSeconds;
    }
    decodeSeconds += weight * headSeconds;
  }
  const decodeSteps = Math.max(1, n - 1);

  // Memory. The GPU holds exactly what the CUDA backend's device pool holds for this pass, block by
  // block (runtime/moe/device-budget.ts, which the runtime allocates from): non-expert weights, the
  // fp32 KV cache's GPU share, the expert slots, staging block and prefetch buffers, and the decoder's
  // and the experts' activations.
  const kvBytes = L * B * (s + n) * kvTokenBytes;
  const gpuPeak = cudaMoeDeviceBytes(model, x, moePassShape(B, s, n), cacheOnGpu).totalBytes;
  const homeBytes = L * E * expertBytes;
  const cpuPeak =
    (x.offloadTier === "cpu" ? homeBytes : 2 * expertBytes) +
    cacheOnCpu * kvBytes +
    (cpuAttention ? B * cacheOnCpu * model.numHeads * (s + n) * 4 * 2 : 0);
  const diskPeak = x.offloadTier === "disk" ? homeBytes : 0;
  const peakBytes = { gpu: gpuPeak, cpu: cpuPeak, disk: diskPeak };
  const capacityBytes = rates.capacityBytes;
  const totalSeconds = prefillSeconds + decodeSeconds;
  const infeasibleReasons = [...capacityShortfalls(peakBytes, capacityBytes), ...timeShortfalls(totalSeconds)];
  const bottleneck = RESOURCES.reduce((a, r) => (busy[r] > busy[a] ? r : a), "gpu" as Resource);

  return {
    throughputTokensPerSecond: (B * n) / totalSeconds,
    prefillSeconds,
    decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    peakBytes,
    capacityBytes,
    bytes,
    busySeconds: busy,
    bottleneck,
    decodeSecondsPerToken: decodeSeconds / decodeSteps,
    experts: {
      expectedHitRate: decodeCounts.hitRate,
      touchedPerLayer: decodeCounts.touched,
      demandFetchesPerLayer: decodeCounts.fetched - decodeCounts.prefetched,
      prefetchedPerLayer: decodeCounts.prefetched,
      wastedPrefetchesPerLayer: decodeCounts.wasted,
      cpuComputedPerLayer: decodeCounts.onCpu,
      stallSecondsPerToken: stallSeconds / decodeSteps,
      expertBytes,
      routingSource: profile.source,
    },
  };
}

/**
 * Expected per-layer expert counts of one step: touched experts, hits, misses fetched or computed on
 * the CPU, and how many of the fetched ones a prefetcher brought in time (pre-gated: the next layer's
 * exact experts, except the first layer's; speculative: m guesses, each right as often as the routing
 * profile says, or as chance when the batch touches most experts; a guess of an expert already
 * resident moves nothing) and how many it brought for nothing.
 */
/**
 * A layer's hits vary from step to step around the expected count, and a layer waits for its slowest
 * part (misses on the CPU beside hits on the GPU), so the mean of the times is not the time of the mean
 * counts. When exact (and the touched experts are few), the hits are taken as binomial over the touched
 * experts with the expected hit rate, and every other count scales with the misses; else the expected
 * counts alone.
 */
export function hitDistribution(
  expected: ExpertStepCounts & { readonly hitRate: number },
  exact: boolean,
): { probability: number; counts: ExpertStepCounts }[] {
  const D = Math.round(expected.touched);
  const misses = expected.touched - expected.hits;
  if (!exact || D < 1 || D > 32 || Math.abs(D - expected.touched) > 1e-9 || misses <= 0 || expected.hits <= 0)
    return [{ probability: 1, counts: expected }];
  const p = expected.hitRate;
  const out: { probability: number; counts: ExpertStepCounts }[] = [];
  let coefficient = 1;
  for (let j = 0; j <= D; j++) {
    if (j > 0) coefficient = (coefficient * (D - j + 1)) / j;
    const probability = coefficient * p ** j * (1 - p) ** (D - j);
    const scale = (D - j) / misses;
    out.push({
      probability,
      counts: {
        ...expected,
        hits: j,
        fetched: expected.fetched * scale,
        onCpu: expected.onCpu * scale,
        prefetched: expected.prefetched * scale,
        wasted: expected.wasted,
      },
    });
  }
  return out;
}

export function expertCounts(
  model: ModelSpec,
  moe: MoeSpec,
  x: ExpertPolicy,
  profile: RoutingProfile,
  tokens: number,
  phase: "prefill" | "decode",
) {
  const E = moe.numExperts;
  const k = moe.expertsPerToken;
  const slots = Math.min(E, x.cacheSize);
  const touched = touchedExperts(moe, tokens);
  const hitRate = phase === "prefill" ? slots / E : expectedHitRate(profile, moe, slots, x.eviction, tokens);
  const hits = touched * hitRate;
  const misses = touched - hits;
  const tokensPerExpert = (tokens * k) / touched;
  const onCpu = x.compute === "cpu" || (x.compute === "auto" && tokensPerExpert <= x.cpuThresholdTokens) ? misses : 0;
  const fetched = misses - onCpu;
  let prefetched = 0;
  let wasted = 0;
  if (fetched > 0 && x.pregated) prefetched = (fetched * (model.numLayers - 1)) / model.numLayers;
  else if (fetched > 0 && x.prefetchExperts > 0) {
    const m = x.prefetchExperts;
    const perGuessRight = Math.max(
      (speculativeRecall(profile, moe, m, x.prefetchLayers) * Math.min(m, k)) / m,
      touched / E,
    );
    prefetched = fetched * (Math.min(touched, m * perGuessRight) / touched);
    wasted = Math.max(0, m * (1 - hitRate) - prefetched);
  }
  return { touched, hitRate, hits, fetched, onCpu, prefetched, wasted, tokensPerExpert };
}
