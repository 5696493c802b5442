/**
 * Spillway's own runtime as an engine: today's cost model (planner/evaluate.ts), which describes what
 * `spillway run` does: the plan's placement realized once over the whole layer, dataflow between
 * streams, the next layer's weights prefetched under the whole block. Its simulator is Spillway's own
 * (simulator/simulate.ts), so the prediction carries no engine steps.
 */
import { realizedPolicy } from "../core/realize-placement.js";
import { RESOURCE_NAMES, RESOURCES } from "../core/resources.js";
import { evaluate } from "../planner/evaluate.js";
import { defaultRoutingProfile } from "../planner/moe/default-routing.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import type { EngineModel, EnginePrediction, EngineRequest } from "./engine-model.js";
import { ratesUsed, resolveRates } from "./kernel-rates.js";
import { emptyLaneSeconds } from "./step-time.js";

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
    rates: ratesUsed(resolveRates(hardware), [
      "gpuFlopsPerSecond",
      "gpuMemoryBytesPerSecond",
      "cpuFlopsPerSecond",
      "h2dPinnedBytesPerSecond",
      "d2hPinnedBytesPerSecond",
      "diskReadBytesPerSecond",
      "diskWriteBytesPerSecond",
    ]),
    notes: ["terms: each resource's busy seconds, scaled to the wall time (Spillway's runtime overlaps them)"],
  };
}

export const spillwayEngine: EngineModel = {
  name: "spillway",
  summary: "Spillway's own runtime (`spillway run`): Spillway's cost model",
  unsupported: () => undefined,
  predict,
};
