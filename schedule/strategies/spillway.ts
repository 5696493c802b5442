/**
 * Spillway's schedule: only true dependencies. A layer's weights go into one of two GPU buffers as
 * soon as the layer two back has finished with it (so they stream over the whole previous block); KV
 * and hidden states load into double buffers as soon as the step two back has finished; compressed
 * weights are dequantised as soon as the previous layer is done with the single fp16 buffer. Weights
 * are copied in pieces (core/weight-copy-chunk.ts), so a CPU-attention output or a hidden state never
 * waits behind a whole layer's copy.
 */
import { WEIGHT_COPY_CHUNK_BYTES } from "../../core/weight-copy-chunk.js";
import { REUSE_WAITS } from "../steps.js";
import type { ScheduleStrategy } from "../strategy.js";

export const spillwayStrategy = {
  name: "spillway",
  taskGraphWalk: "dataflow",
  barrierAfterEachStep: false,
  dequantize: "on-arrival",
  reuseWaits: REUSE_WAITS,
  weightCopyChunkBytes: WEIGHT_COPY_CHUNK_BYTES,
} as const satisfies ScheduleStrategy;
