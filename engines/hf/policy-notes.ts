/**
 * What a policy asks for that no engine running transformers' generate() can express: the KV cache and
 * activations live on the GPU (the execution device), attention runs there, weights and cache stay in the
 * model's dtype, and a block of GPU batches is one generate() batch.
 */
import { PLACEMENT_TOLERANCE, type Policy } from "../../core/policy.js";

/** One note per such request in `policy`; `batch` is the one generate() batch the engine runs. */
export function generateInexpressibleNotes(policy: Policy, batch: number): string[] {
  const notes: string[] = [];
  if (policy.numGpuBatches > 1)
    notes.push(
      `${policy.numGpuBatches} GPU batches of ${policy.gpuBatchSize} run as one generate() batch of ${batch} (no block schedule)`,
    );
  if (policy.cache.gpu < 1 - PLACEMENT_TOLERANCE)
    notes.push("KV cache off the GPU cannot be expressed: transformers keeps it on the execution device (GPU)");
  if (policy.activations.gpu < 1 - PLACEMENT_TOLERANCE)
    notes.push("activations off the GPU cannot be expressed: they live on the execution device (GPU)");
  if (policy.cpuAttention) notes.push("CPU attention cannot be expressed: attention runs on the GPU");
  if (policy.compressWeight || policy.compressCache)
    notes.push("4-bit group-wise compression cannot be expressed: weights and KV cache stay in the model's dtype");
  if (policy.experts) notes.push("the expert policy is ignored: the model has no routed experts here");
  return notes;
}
