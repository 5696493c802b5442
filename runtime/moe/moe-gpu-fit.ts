/**
 * Whether an MoE plan's pass fits the GPU it is run with, checked before any pass runs: the bytes the
 * CUDA backend's device pool allocates for it (device-budget.ts's cudaMoeDeviceBytes, which the planner
 * predicts as peakBytes.gpu), against the GPU capacity the run is given. The CPU backend's arena holds
 * a subset of those blocks (no activations), so a plan that passes fits either backend.
 */
import type { Plan } from "../../core/plan.js";
import { formatBytes } from "../../core/units.js";
import { cudaMoeDeviceBytes, moePassShape } from "./device-budget.js";

/** Why `plan` (with policy.experts) does not fit `gpuCapacityBytes`, naming what is counted; undefined when it fits. */
export function moeGpuShortfall(plan: Plan, gpuCapacityBytes: number): string | undefined {
  const x = plan.policy.experts;
  if (!x) return undefined;
  const { promptLen, genLen } = plan.workload;
  const batch = plan.policy.gpuBatchSize * plan.policy.numGpuBatches;
  const b = cudaMoeDeviceBytes(plan.modelSpec, x, moePassShape(batch, promptLen, genLen), plan.policy.cache.gpu);
  if (b.totalBytes <= gpuCapacityBytes) return undefined;
  const parts = [
    `weights ${formatBytes(b.weightBytes)}`,
    `KV cache ${formatBytes(b.kvCacheBytes)}`,
    `expert slots, staging and prefetch buffers ${formatBytes(b.expertCacheBytes + b.stagingBytes + b.prefetchBytes)}`,
    `activations ${formatBytes(b.decoderActivationBytes + b.expertActivationBytes)}`,
  ];
  return `the plan needs ${b.totalBytes} bytes (${formatBytes(b.totalBytes)}) of GPU memory (${parts.join(", ")}) for batch ${batch}, prompt ${promptLen} and ${genLen} generated tokens, but the run has ${gpuCapacityBytes} bytes (${formatBytes(gpuCapacityBytes)}): plan again for this GPU`;
}
