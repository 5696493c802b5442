/**
 * The `--n-cpu-moe` a plan advises for llama.cpp, from the llama.cpp engine model (engines/llama-cpp.ts):
 * every layer and the output layer on the GPU (`-ngl n_layer + 1`), a Q4_K_M GGUF file (the 4-bit file most
 * MoE GGUFs are published as), and the fewest layers whose routed experts stay in host memory for which the
 * engine's GPU peak (its weights as llama-quantize writes them, the KV cache, the compute buffer with room for
 * one layer's uploaded experts) fits the profile's GPU capacity. The speed is the engine's decode of one
 * sequence over the plan's workload. This replaces the estimate from Spillway's own MoE step model at 4.5 bits
 * per weight (planner/moe/llama-cpp-moe.ts), which counted neither the file's mixture of types (Mixtral
 * Q4_K_M: 26.5 GiB, not 24.6) nor llama.cpp's compute buffer, and so advised settings that do not fit.
 */
import type { HardwareProfile } from "../../core/hardware-profile.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { Workload } from "../../core/workload.js";
import type { LlamaCppMoeAdvice } from "../../planner/moe/llama-cpp-moe.js";
import { llamaCppEngine } from "../llama-cpp.js";
import type { GgufFileType } from "./gguf-file-types.js";

/** The GGUF type the advice is for, and the bits per routed-expert weight it stands for in LlamaCppMoeAdvice. */
export const ADVICE_GGUF_TYPE: GgufFileType = "Q4_K_M";

/** One sequence with everything on the GPU: the policy the advice is costed with (llama.cpp places by its knobs). */
export const ONE_SEQUENCE: Policy = {
  gpuBatchSize: 1,
  numGpuBatches: 1,
  weights: { gpu: 1, cpu: 0, disk: 0 },
  cache: { gpu: 1, cpu: 0, disk: 0 },
  activations: { gpu: 1, cpu: 0, disk: 0 },
  compressWeight: false,
  compressCache: false,
  cpuAttention: false,
  overlap: false,
  pinWeight: false,
};

export function llamaCppEngineMoeAdvice(
  model: ModelSpec,
  hardware: HardwareProfile,
  workload: Workload,
): LlamaCppMoeAdvice {
  const L = model.numLayers;
  // One decode step at least, so a speed exists even for a workload that generates a single token.
  const decodeWorkload = { promptLen: workload.promptLen, genLen: Math.max(workload.genLen, 2) };
  const predictAt = (nCpuMoe: number) =>
    llamaCppEngine.predict({
      model,
      hardware,
      workload: decodeWorkload,
      policy: ONE_SEQUENCE,
      knobs: { ggufType: ADVICE_GGUF_TYPE, nGpuLayers: L + 1, nCpuMoe },
    });
  // More layers' experts in host memory never need more GPU memory, so the fewest that fit is found by
  // bisection over 0..L (L + 1 candidates, about log2(L) predictions instead of up to L + 1).
  const fits = (p: ReturnType<typeof predictAt>) => p.peakBytes.gpu <= p.capacityBytes.gpu;
  let best = predictAt(L);
  if (fits(best)) {
    let bestN = L;
    let lo = 0;
    let hi = L;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const p = predictAt(mid);
      if (fits(p)) {
        hi = mid;
        bestN = mid;
        best = p;
      } else lo = mid + 1;
    }
    return {
      nGpuLayers: L + 1,
      nCpuMoe: bestN,
      bits: 4,
      ggufType: ADVICE_GGUF_TYPE,
      decodeTokensPerSecond: (decodeWorkload.genLen - 1) / best.decodeSeconds,
      gpuPeakBytes: best.peakBytes.gpu,
    };
  }
  return {
    nGpuLayers: L + 1,
    nCpuMoe: undefined,
    bits: 4,
    ggufType: ADVICE_GGUF_TYPE,
    decodeTokensPerSecond: undefined,
    gpuPeakBytes: undefined,
    reason: `attention, routers and embeddings of the ${ADVICE_GGUF_TYPE} file do not fit on the GPU even with every routed expert in host memory: lower -ngl as for a dense model`,
  };
}
