/**
 * Superseded for plans and exports by engines/llama-cpp/moe-advice.ts (the llama.cpp engine model's count of
 * the GGUF file, KV cache and compute buffer, and its decode); kept for the library API (internals.ts).
 *
 * The question llama.cpp users keep asking for MoE models: which `--n-cpu-moe` (with `-ngl` at every
 * layer) fits their GPU and how fast it decodes. llama.cpp keeps attention, routers, shared experts and
 * embeddings on the GPU, the routed experts of the first N layers in host memory, computed on the CPU
 * in decode (copied to the GPU for prompt batches of 32 tokens or more), and every other layer's
 * experts on the GPU. Costed with the MoE step model at one sequence and a Q4-class GGUF (4.5 bits per
 * weight): a layer with CPU experts costs as the all-CPU policy's layer, the others as the all-resident
 * policy's, and GPU memory drops by one layer's experts for every layer moved to the CPU.
 *
 * GPU memory is llama.cpp's, not Spillway's CUDA runtime's (which the MoE planner counts): every
 * weight as stored, an fp16 KV cache of prompt + generated positions, two experts' staging for the
 * CPU layers' prompt batches, and one layer's working space (the dense step model's).
 */
import { type ExpertBits, storedBytes } from "../../core/expert-policy.js";
import { expertParams, kvDim, type ModelSpec } from "../../core/model-spec.js";
import { moeWeightBytes } from "../../core/moe-weight-bytes.js";
import type { Workload } from "../../core/workload.js";
import type { HardwareRates } from "../spillway/hardware-rates.js";
import { evaluateMoePolicy, moeStepModel } from "./evaluate-moe-policy.js";
import { llamaCppThresholdTokens, moePolicy } from "./moe-search.js";
import type { RoutingProfile } from "./routing-profile.js";

export interface LlamaCppMoeAdvice {
  /** `-ngl`: every layer (and the output layer) on the GPU. */
  readonly nGpuLayers: number;
  /** `--n-cpu-moe`: the layers whose routed experts stay in host memory; undefined when nothing fits. */
  readonly nCpuMoe: number | undefined;
  readonly bits: ExpertBits;
  /** The GGUF file type the advice was costed for (engines/llama-cpp/moe-advice.ts); absent: a Q4-class file at 4.5 bits per weight. */
  readonly ggufType?: string;
  /** Predicted decode speed of one sequence, token/s. */
  readonly decodeTokensPerSecond: number | undefined;
  readonly gpuPeakBytes: number | undefined;
  readonly reason?: string;
}

export function llamaCppMoeAdvice(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  profile: RoutingProfile,
  bits: ExpertBits = 4,
): LlamaCppMoeAdvice {
  const moe = model.moe!;
  const L = model.numLayers;
  const E = moe.numExperts;
  const common = {
    eviction: "static" as const,
    offloadTier: "cpu" as const,
    bits,
    attentionBits: bits,
    prefetchExperts: 0,
    prefetchLayers: 1,
    pregated: false,
  };
  const gpuPolicy = moePolicy(model, 1, { ...common, cacheSize: E, compute: "gpu", cpuThresholdTokens: 0 }, false);
  const onGpu = evaluateMoePolicy(model, rates, workload, gpuPolicy, profile);
  const stepModel = moeStepModel(model, rates, workload, gpuPolicy);
  const { promptLen: s, genLen: n } = workload;
  const weights = moeWeightBytes(model, gpuPolicy.experts!);
  const allOnGpuBytes =
    weights.nonExpertBytes +
    weights.cachedExpertBytes +
    L * (s + n) * 2 * kvDim(model) * 2 +
    Math.max(stepModel.workingBytes(s, s), stepModel.workingBytes(1, s + n));
  const onCpu = evaluateMoePolicy(
    model,
    rates,
    workload,
    moePolicy(
      model,
      1,
      { ...common, cacheSize: 0, compute: "auto", cpuThresholdTokens: llamaCppThresholdTokens(moe) },
      false,
    ),
    profile,
  );
  // A decode step is every layer plus the LM head, which both policies share.
  const headSeconds = stepModel.headSeconds;
  const layerSeconds = (p: typeof onGpu) => (p.decodeSecondsPerToken - headSeconds) / L;
  const layerExpertBytes = E * storedBytes(expertParams(model), bits);
  const stagingBytes = 2 * storedBytes(expertParams(model), bits);
  const gpuPeak = (cpuLayers: number) =>
    allOnGpuBytes - cpuLayers * layerExpertBytes + (cpuLayers > 0 ? stagingBytes : 0);
  const capacity = rates.capacityBytes.gpu;
  let cpuLayers = 0;
  while (cpuLayers <= L && gpuPeak(cpuLayers) > capacity) cpuLayers++;
  if (cpuLayers > L) {
    return {
      nGpuLayers: L + 1,
      nCpuMoe: undefined,
      bits,
      decodeTokensPerSecond: undefined,
      gpuPeakBytes: undefined,
      reason: "attention, routers and embeddings alone do not fit on the GPU: lower -ngl as for a dense model",
    };
  }
  const step = cpuLayers * layerSeconds(onCpu) + (L - cpuLayers) * layerSeconds(onGpu) + headSeconds;
  return {
    nGpuLayers: L + 1,
    nCpuMoe: cpuLayers,
    bits,
    decodeTokensPerSecond: 1 / step,
    gpuPeakBytes: gpuPeak(cpuLayers),
  };
}
