/**
 * A schedule strategy: the semantics laid over the zig-zag walk (zigzag.ts). It decides what the
 * semantics decide, and nothing else: in what order a task graph issues the steps, where barriers go,
 * what a load into a double buffer waits for, and when compressed weights are dequantised. Executors
 * that issue eagerly keep their own one-step-ahead order and implement reuse waits with their buffers;
 * they honour the barriers.
 */
import type { ReuseWait } from "./steps.js";

export interface ScheduleStrategy {
  /** The schedule's name (the plan's and the CLI's `schedule`). */
  readonly name: string;
  /**
   * How a task graph orders the steps of a token:
   * - "dataflow": each load just before the step that needs it, stores just after (the order carries
   *   no meaning beyond ties: the waits do);
   * - "loop": FlexGen's loop, with the LM head as one more layer. Step (token, layer, batch) issues the
   *   next layer's weights (batch 0), the next step's loads, the previous step's stores, then computes.
   */
  readonly taskGraphWalk: "dataflow" | "loop";
  /** A barrier after every step: nothing of the next step starts before everything issued so far has finished. */
  readonly barrierAfterEachStep: boolean;
  /** Dequantise compressed weights as soon as they are in ("on-arrival"), or in the layer's first step. */
  readonly dequantize: "on-arrival" | "first-step";
  /** What loads into double buffers wait for besides their data (none: barriers order the reuse). */
  readonly reuseWaits: readonly ReuseWait[];
  /**
   * The largest single copy of a layer's weights (undefined: each load is one copy). Copying in pieces
   * lets a small copy on another stream (a CPU-attention output, a hidden state) wait on the copy
   * engine for one piece rather than for a whole layer.
   */
  readonly weightCopyChunkBytes?: number;
}
