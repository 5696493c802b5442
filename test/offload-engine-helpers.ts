/** Shared by the Accelerate and DeepSpeed engine-model tests: policies, catalogue models, lane traffic. */
import type { ModelSpec } from "../core/model-spec.js";
import type { Placement, Policy } from "../core/policy.js";
import type { EnginePrediction, Lane } from "../engines/engine-model.js";
import { findCatalogueModel } from "../models/catalogue.js";

export const model = (name: string): ModelSpec => findCatalogueModel(name)!;
export const W = (gpu: number, cpu: number, disk: number): Placement => ({ gpu, cpu, disk });

/** A one-block policy with everything but `weights` on the GPU (what both engines run). */
export function policy(gbs: number, weights: Placement, extra: Partial<Policy> = {}): Policy {
  return {
    gpuBatchSize: gbs,
    numGpuBatches: 1,
    weights,
    cache: W(1, 0, 0),
    activations: W(1, 0, 0),
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: true,
    pinWeight: true,
    ...extra,
  };
}

/** Bytes moved by every operation on `lane` over the whole run. */
export function laneBytes(p: EnginePrediction, lane: Lane): number {
  let bytes = 0;
  for (const step of p.steps)
    for (const chain of step.chains) for (const o of chain) if (o.lane === lane) bytes += o.bytes * step.count;
  return bytes;
}
