/**
 * FlexGen (FMInference/FlexGen, `python -m flexgen.flex_opt`) as an engine: its own placement rule,
 * the operations each step performs counted from flexgen/flex_opt.py, pytorch_backend.py and
 * compression.py (engines/flexgen/step-operations.ts), its schedule (per-step sync, next sub-layer's
 * weights under the first GPU batch only, hidden states on the default stream) and, with `fewerBatch`,
 * the benchmark suite's projection protocol. docs/engines/flexgen.md lists every operation and term.
 */

import type { HardwareProfile } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Placement, Policy } from "../core/policy.js";
import { TIERS } from "../core/tiers.js";
import { capacityShortfalls } from "../planner/prediction.js";
import type { EngineModel, EnginePrediction, EngineRequest } from "./engine-model.js";
import { flexgenPeakBytes } from "./flexgen/memory.js";
import { flexgenSchedule } from "./flexgen/schedule.js";
import { type FlexgenSetup, flexgenSetup } from "./flexgen/setup.js";
import { bytesOnTier } from "./flexgen/sub-layers.js";
import { ratesUsed, resolveRates } from "./kernel-rates.js";
import { largestTerm, totalSteps } from "./step-time.js";

function unsupported(model: ModelSpec, policy?: Policy): string | undefined {
  if (model.family !== "opt")
    return `FlexGen's runtime (flexgen/flex_opt.py) runs OPT models only; ${model.name} is a ${model.family} model`;
  if (policy?.layerGroups)
    return "FlexGen applies one placement to every layer; per-layer placement cannot be expressed";
  if (policy?.experts) return "FlexGen does not run Mixture-of-Experts models";
  if (policy) {
    const a = policy.activations;
    if (a.gpu !== 1 && a.cpu !== 1 && a.disk !== 1)
      return "FlexGen keeps activations 100% on one tier (OptLM.__init__ raises NotImplementedError otherwise)";
    const c = policy.cache;
    if (policy.compressCache && c.gpu !== 1 && c.cpu !== 1 && c.disk !== 1)
      return "FlexGen cannot compress a KV cache split over tiers (init_cache_one_gpu_batch asserts a single device)";
  }
  return undefined;
}

function memoryOf(setup: FlexgenSetup, hardware: HardwareProfile, fewerBatch: boolean) {
  const peakBytes = flexgenPeakBytes(setup, fewerBatch);
  const capacityBytes = {
    gpu: hardware.capacityBytes.gpu.value,
    cpu: hardware.capacityBytes.cpu.value,
    disk: hardware.capacityBytes.disk.value,
  };
  return { peakBytes, capacityBytes, infeasibleReasons: capacityShortfalls(peakBytes, capacityBytes) };
}

/**
 * Whether FlexGen's allocations for the request fit the profile's capacities: the memory rule of
 * `predict` alone (a millisecond where the whole prediction takes tens), for searches to drop
 * candidates that cannot fit before they are timed. False when FlexGen cannot run the policy at all.
 */
function fits(request: EngineRequest): boolean {
  if (unsupported(request.model, request.policy)) return false;
  const setup = flexgenSetup(request.model, request.policy, request.workload, resolveRates(request.hardware).rates);
  return memoryOf(setup, request.hardware, request.knobs?.fewerBatch ?? false).infeasibleReasons.length === 0;
}

function predict(request: EngineRequest): EnginePrediction {
  const { model, hardware, workload, policy } = request;
  const reason = unsupported(model, policy);
  if (reason) throw new Error(reason);
  const resolved = resolveRates(hardware);
  const setup = flexgenSetup(model, policy, workload, resolved.rates);
  const fewerBatch = request.knobs?.fewerBatch ?? false;
  const steps = flexgenSchedule(setup, fewerBatch);
  const total = totalSteps(steps);
  const totalSeconds = total.prefillSeconds + total.decodeSeconds;
  const sequences = policy.gpuBatchSize * policy.numGpuBatches;
  const { peakBytes, capacityBytes, infeasibleReasons } = memoryOf(setup, hardware, fewerBatch);
  const layerBytes = (tier: (typeof TIERS)[number]) =>
    bytesOnTier(setup.subLayers.attention, tier) + bytesOnTier(setup.subLayers.mlp, tier);
  const layerTotal = TIERS.reduce((a, t) => a + layerBytes(t), 0);
  const weights: Placement = {
    gpu: layerBytes("gpu") / layerTotal,
    cpu: layerBytes("cpu") / layerTotal,
    disk: layerBytes("disk") / layerTotal,
  };
  const seqs = setup.cacheSequences;
  const realizedPolicy: Policy = {
    ...policy,
    weights,
    cache: {
      gpu: seqs.gpu / policy.gpuBatchSize,
      cpu: seqs.cpu / policy.gpuBatchSize,
      disk: seqs.disk / policy.gpuBatchSize,
    },
  };
  const notes = [
    "placement realized as FlexGen's init_weight_list does: attention and MLP each split by the midpoint rule (the weight fractions are of stored bytes)",
  ];
  if (fewerBatch)
    notes.push(
      "decode time as FlexGen's --debug-mode fewer_batch reports it: 10 timed sub-layer steps of the first decode token, projected to every token",
    );
  return {
    engine: "flexgen",
    throughputTokensPerSecond: (sequences * workload.genLen) / totalSeconds,
    prefillSeconds: total.prefillSeconds,
    decodeSeconds: total.decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    realizedPolicy,
    peakBytes,
    capacityBytes,
    termSeconds: total.termSeconds,
    laneSeconds: total.laneSeconds,
    bottleneck: largestTerm(total.termSeconds),
    steps,
    rates: ratesUsed(resolved, [
      "gpuFlopsPerSecond",
      "gpuMemoryBytesPerSecond",
      "gpuElementwiseBytesPerSecond",
      "gpuStridedBytesPerSecond",
      "gpuKernelLaunchSeconds",
      "cpuStreamBytesPerSecond",
      "cpuFlopsPerSecond",
      "cpuFp16ToFp32ValuesPerSecond",
      "cpuFirstTouchBytesPerSecond",
      "pageableRelayBytesPerSecond",
      "eagerDispatchSeconds",
      "h2dPinnedBytesPerSecond",
      "d2hPinnedBytesPerSecond",
      "diskMmapReadBytesPerSecond",
      "diskWriteBytesPerSecond",
    ]),
    ...(fewerBatch
      ? {
          protocol:
            "fewer_batch: decode projected from 10 timed sub-layer steps of the first decode token (flex_opt.py generation_loop_debug_*)",
        }
      : {}),
    notes,
  };
}

export const flexgenEngine: EngineModel = {
  name: "flexgen",
  summary:
    "FlexGen's runtime (flexgen.flex_opt), counted from its source: per-step sync, sub-layer placement, pageable relays, CPU attention in fp32, unfused 4-bit decompression",
  unsupported,
  predict,
  fits,
  // FlexGen's own benchmark protocol (--debug-mode fewer_batch: decode projected from the first decode
  // token's steps), a tenth of the full prediction's work.
  rankingRequest: (request) =>
    request.knobs?.fewerBatch ? undefined : { ...request, knobs: { ...request.knobs, fewerBatch: true } },
};
