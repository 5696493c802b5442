/**
 * Spillway's own runtime as an engine: today's cost model (planner/evaluate.ts), which describes what
 * `spillway run` does: the plan's placement realized once over the whole layer, dataflow between
 * streams, the next layer's weights prefetched under the whole block. Its simulator is Spillway's own
 * (simulator/simulate.ts), so the prediction carries no engine steps.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { realizedPolicy } from "../core/realize-placement.js";
import { RESOURCE_NAMES, RESOURCES } from "../core/resources.js";
import { evaluate } from "../planner/evaluate.js";
import { defaultRoutingProfile } from "../planner/moe/default-routing.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import type { EngineModel, EnginePrediction, EngineRequest } from "./engine-model.js";
import { type KernelRateName, ratesUsed, resolveRates } from "./kernel-rates.js";
import { emptyLaneSeconds } from "./step-time.js";

/**
 * Every scalar rate Spillway's cost model reads (planner/spillway/hardware-rates.ts): the optional
 * ones only where the profile has them (without them the model prices that work with rates listed
 * here). The GEMM curve, where the profile has one, is read beside them (calibrate fits it too).
 */
function spillwayRateNames(hardware: HardwareProfile): KernelRateName[] {
  return [
    "gpuFlopsPerSecond",
    "gpuMemoryBytesPerSecond",
    "gpuKernelLaunchSeconds",
    ...(hardware.gpu.dequantizeValuesPerSecond ? (["gpuDequantizeValuesPerSecond"] as const) : []),
    "cpuFlopsPerSecond",
    "cpuMemoryBytesPerSecond",
    "h2dPinnedBytesPerSecond",
    ...(hardware.hostToDevice.pageableBytesPerSecond ? (["h2dPageableBytesPerSecond"] as const) : []),
    "h2dLatencySeconds",
    "d2hPinnedBytesPerSecond",
    "d2hLatencySeconds",
    "diskReadBytesPerSecond",
    "diskWriteBytesPerSecond",
    "diskLatencySeconds",
  ];
}

function predict(request: EngineRequest): EnginePrediction {
  const { model, hardware, workload } = request;
  const policy = request.policy.experts ? request.policy : realizedPolicy(model, request.policy);
  const prediction = evaluate({
    model,
    rates: hardwareRates(hardware),
    workload,
    policy,
    ...(policy.experts ? { routing: request.routing ?? defaultRoutingProfile(model) } : {}),
  });
  const busy = RESOURCES.reduce((a, r) => a + prediction.busySeconds[r], 0);
  const scale = busy > 0 ? prediction.totalSeconds / busy : 0;
  const termSeconds = Object.fromEntries(RESOURCES.map((r) => [RESOURCE_NAMES[r], prediction.busySeconds[r] * scale]));
  const laneSeconds = emptyLaneSeconds();
  laneSeconds.gpu = prediction.busySeconds.gpu;
  laneSeconds.cpu = prediction.busySeconds.cpu;
  laneSeconds.h2d = prediction.busySeconds.h2d;
  laneSeconds.d2h = prediction.busySeconds.d2h;
  laneSeconds.diskRead = prediction.busySeconds.diskRead;
  laneSeconds.diskWrite = prediction.busySeconds.diskWrite;
  return {
    engine: "spillway",
    throughputTokensPerSecond: prediction.throughputTokensPerSecond,
    prefillSeconds: prediction.prefillSeconds,
    decodeSeconds: prediction.decodeSeconds,
    totalSeconds: prediction.totalSeconds,
    feasible: prediction.feasible,
    infeasibleReasons: prediction.infeasibleReasons,
    realizedPolicy: policy,
    peakBytes: prediction.peakBytes,
    capacityBytes: prediction.capacityBytes,
    termSeconds,
    laneSeconds,
    bottleneck: RESOURCE_NAMES[prediction.bottleneck],
    steps: [],
    rates: ratesUsed(resolveRates(hardware), spillwayRateNames(hardware)),
    notes: ["terms: each resource's busy seconds, scaled to the wall time (Spillway's runtime overlaps them)"],
  };
}

export const spillwayEngine: EngineModel = {
  name: "spillway",
  summary: "Spillway's own runtime (`spillway run`): Spillway's cost model",
  unsupported: () => undefined,
  predict,
};
