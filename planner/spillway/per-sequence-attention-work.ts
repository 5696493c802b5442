/**
 * What Spillway's runtime does once per sequence in a layer step (runtime/opt-forward.ts attendSequence,
 * runtime/cuda/cuda-layer.ts, runtime/cuda/cuda-kv.ts): attention and the KV cache are handled sequence by
 * sequence, not as one batched call, so a step of gbs sequences pays these launches and copy pieces gbs
 * times. Counted from the source and held against the runtime's own calls on the emulated device
 * (test/unit/per-sequence-attention-work.test.ts). Each launch costs the profile's gpu.kernelLaunchSeconds
 * and each copy piece its link's latency (an H200 run of the CUDA backend, 2026-12-04: a decode step of 32
 * sequences spent 1.66 ms in its layer's compute where the dense work was costed at 0.46 ms, and its
 * 72 KiB of new KV rows took 0.29 ms to copy down: 64 copies of 1.1 KiB).
 */

/** Kernel launches per sequence for attention on the GPU: two encodes of the new K and V rows (quantise or fp16 store), decodes of the stored rows to fp32, and the three attention kernels (scores, softmax, P·V). */
export const GPU_ATTENTION_LAUNCHES_PER_SEQUENCE = {
  /** No past rows: the new rows encoded (2) and decoded back (2), attention (3). */
  prefill: 7,
  /** Past and new rows of K and V decoded separately (4), the new rows encoded (2), attention (3). */
  decode: 9,
} as const;

/** Kernel launches per CPU-attended sequence in a decode step: its new K and V rows encoded as stored. */
export const CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE = 2;

/**
 * Copy pieces per off-GPU sequence: its K and V rows move separately (past rows up before a decode step,
 * new rows down after a step); with CPU attention, q and the new rows go down (2) and the output comes up (1).
 */
export const KV_COPY_PIECES_PER_SEQUENCE = 2;
export const CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE = 2;
export const CPU_ATTENTION_UP_PIECES_PER_SEQUENCE = 1;
