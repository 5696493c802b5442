/**
 * Spillway's schedule: only true dependencies. A layer's weights go into one of two GPU buffers as
 * soon as the layer two back has finished with it (so they stream over the whole previous block); KV
 * and hidden states load into double buffers as soon as the step two back has finished; compressed
 * weights are dequantised as soon as the previous layer is done with the single fp16 buffer.
 */
import { REUSE_WAITS } from "../steps.js";
import type { ScheduleStrategy } from "../strategy.js";

export const spillwayStrategy = {
  name: "spillway",
  taskGraphWalk: "dataflow",
  barrierAfterEachStep: false,
  dequantize: "on-arrival",
  reuseWaits: REUSE_WAITS,
} as const satisfies ScheduleStrategy;
