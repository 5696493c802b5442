/**
 * The typed steps of the zig-zag block schedule (token → layer → GPU batch), as zigzag.ts yields
 * them: what to issue, compute, store or release, where in the schedule, and what it waits for.
 * Every consumer (the simulator's task graph, the CPU executor, the CUDA executor) turns the same
 * steps into its own tasks, transfers or stream work.
 */

/**
 * Where a step sits. `layer` is the decoder layer; numLayers stands for the LM head (and, for weights,
 * the embeddings that go with it), -1 for the embedding of a batch's input. `batch` is the GPU batch,
 * -1 for a step of the whole layer (its weights).
 */
export interface StepAt {
  readonly token: number;
  readonly layer: number;
  readonly batch: number;
}

/**
 * What a step waits for, in executor-neutral terms. Data waits are what the bytes need; reuse waits
 * are a strategy's choice of how double buffers are refilled (without them, a barrier orders the reuse).
 */
export type Wait =
  // Data.
  /** The previous token's store of this (layer, batch)'s KV. */
  | "kv-stored"
  /** The hidden state this step reads: the previous layer's output, or the token's input. */
  | "input-stored"
  // Reuse of double buffers.
  /** The layer two back has finished with the weight buffer this load fills. */
  | "weight-buffer-free"
  /** The disk load two back has emptied the pinned staging this read fills. */
  | "weight-staging-free"
  /** The previous layer has finished with the single buffer of dequantised weights. */
  | "dequant-buffer-free"
  /** The step two back has finished with the KV / hidden-state buffers this load fills. */
  | "step-buffer-free"
  /** The step two back has consumed the pinned KV staging this disk read fills. */
  | "kv-staging-free"
  /** The previous token's LM head has finished with the LM-head buffer. */
  | "head-buffer-free"
  // Order.
  /** Everything issued before the last barrier has finished. */
  | "barrier";

/** The reuse waits, which strategies choose among. */
export const REUSE_WAITS = [
  "weight-buffer-free",
  "weight-staging-free",
  "dequant-buffer-free",
  "step-buffer-free",
  "kv-staging-free",
  "head-buffer-free",
] as const satisfies readonly Wait[];
export type ReuseWait = (typeof REUSE_WAITS)[number];

export type StepKind =
  /** Executors: the batch's input tokens embedded into its first hidden state (stored off the GPU if hidden states live there). */
  | "embed"
  /** A layer's weights start towards the GPU (layer numLayers: the LM head's and the embeddings'). */
  | "issue-weights"
  /** The layer's weights become usable by its compute: arrived, and dequantised if stored 4-bit. */
  | "ready-weights"
  /** The step's off-GPU KV starts towards where attention reads it. */
  | "issue-kv"
  /** The step's off-GPU hidden state starts towards the GPU. */
  | "issue-hidden"
  /** One GPU batch through one layer. */
  | "compute"
  /** The step's outputs leave for their tiers: new KV rows, and the hidden state the next layer reads. */
  | "store"
  /** The LM head of one GPU batch (executors: its features; "next-tokens" scores them). */
  | "lm-head"
  /** Executors: logits over the vocabulary and the greedy next token of every batch of the token. */
  | "next-tokens"
  /** Executors: the layer's weight buffers are given back. */
  | "release-weights"
  /** Everything issued so far finishes before anything issued later starts. */
  | "barrier"
  /** Every step of the token has been yielded. */
  | "token-end";

export interface ScheduleStep {
  readonly kind: StepKind;
  readonly at: StepAt;
  readonly after: readonly Wait[];
  /** "store": whether the step's output hidden state goes on to the next layer (false: the LM head reads it where it is). */
  readonly outputToNextLayer?: boolean;
}

export function waitsFor(step: ScheduleStep, wait: Wait): boolean {
  return step.after.includes(wait);
}
