/**
 * FlexGen's schedule: its loop, synchronised after every step. Step (token, layer, batch) issues the
 * next layer's weights (batch 0 only), the next step's KV and hidden loads, the previous step's stores
 * and this step's compute (dequantising the layer's weights in its first step), then waits for all of
 * it; the LM head is one more layer of the loop. The barriers order every buffer's reuse.
 */
import type { ScheduleStrategy } from "../strategy.js";

export const flexgenStrategy = {
  name: "flexgen",
  taskGraphWalk: "loop",
  barrierAfterEachStep: true,
  dequantize: "first-step",
  reuseWaits: [],
} as const satisfies ScheduleStrategy;
