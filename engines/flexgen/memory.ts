/**
 * Peak memory of a FlexGen run per tier, from what its code allocates: resident weights by the
 * midpoint rule; two sub-layers' weight read buffers (current and next) and, with compression, one
 * sub-layer's decompressed fp16 matrices; the KV cache homes (prompt + generation - 1 positions,
 * `init_cache_one_gpu_batch`); the fp32 CPU attention workspace (`init_attention_compute_workspace`);
 * the hidden states of one sub-layer's batches in their home; the prefill working set of the largest
 * sub-layer (attention scores, mask and softmax copies, the MLP's hidden activations, the logits of
 * every prompt position); and the copy threads' pinned relays (`copy_worker_func`: 4 threads x 1 Gi
 * fp16 values). Under the benchmark's fewer_batch protocol only the prompt and the first generated
 * position of the host and disk KV homes are ever written, and pageable memory and sparse files hold
 * only pages written, so those homes count s + 1 positions (GPU allocations are real at once).
 */
import type { Tier } from "../../core/tiers.js";
import { compressedCacheBytes } from "./kernels.js";
import type { FlexgenSetup } from "./setup.js";
import { bytesOnTier, SUB_LAYER_KINDS } from "./sub-layers.js";

export const COPY_THREADS = 4;
export const COPY_THREAD_RELAY_BYTES = 2 * 2 ** 30;

export function flexgenPeakBytes(setup: FlexgenSetup, fewerBatch: boolean): Record<Tier, number> {
  const { model, b, nb, s, n } = setup;
  const L = model.numLayers;
  const h = model.hiddenSize;
  const sub = setup.subLayers;
  const perModel = (tier: Tier) =>
    L * (bytesOnTier(sub.attention, tier) + bytesOnTier(sub.mlp, tier)) +
    bytesOnTier(sub.inputEmbed, tier) +
    bytesOnTier(sub.outputEmbed, tier);
  const offGpu = (kind: (typeof SUB_LAYER_KINDS)[number]) =>
    bytesOnTier(sub[kind], "cpu") + bytesOnTier(sub[kind], "disk");
  const readBuffers = 2 * Math.max(...SUB_LAYER_KINDS.map(offGpu));
  const decompressed = Math.max(
    ...SUB_LAYER_KINDS.map((k) => sub[k].tensors.filter((t) => t.compressed).reduce((a, t) => a + t.values * 2, 0)),
  );
  const positions = s + n - 1;
  const kvBytes = (seqs: number, rows: number) => {
    const values = 2 * seqs * rows * h;
    return setup.compressCache ? compressedCacheBytes(values) : values * 2;
  };
  const written = fewerBatch ? Math.min(positions, s + 1) : positions;
  const kv = (tier: Tier) => L * nb * kvBytes(setup.cacheSequences[tier], tier === "gpu" ? positions : written);
  const hidden = nb * b * s * h * 2;
  const prefillWorking = Math.max(
    3 * b * model.numHeads * s * s * 2 + 4 * b * s * h * 2,
    b * s * model.ffnSize * 2 + 2 * b * s * h * 2,
    b * s * model.vocabSize * 2,
  );
  const gpuKvWorking = setup.cpuAttention ? 0 : 2 * b * (s + n) * h * 2;
  const workspace = setup.cpuAttention && setup.cacheSequences.gpu < b ? 2 * positions * b * h * 4 : 0;
  return {
    gpu:
      perModel("gpu") +
      readBuffers +
      decompressed +
      kv("gpu") +
      gpuKvWorking +
      (setup.activationHome === "gpu" ? hidden : b * s * h * 2 * 2) +
      prefillWorking,
    cpu:
      perModel("cpu") +
      kv("cpu") +
      workspace +
      (setup.activationHome === "cpu" ? hidden : 0) +
      COPY_THREADS * COPY_THREAD_RELAY_BYTES,
    disk: perModel("disk") + kv("disk") + (setup.activationHome === "disk" ? hidden : 0),
  };
}
