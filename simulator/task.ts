/**
 * A task of the simulated schedule: one transfer or one kernel on one resource. A resource serves one
 * task at a time; a task starts when its resource is free and every dependency has finished. Memory
 * effects happen when the task starts (allocations) and when it ends (frees).
 */
import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";

export interface MemoryEffect {
  readonly tier: Tier;
  readonly bytes: number;
  /** What the bytes hold, for overflow messages and the trace. */
  readonly what: string;
}

export type TaskKind =
  | "load-weights"
  | "read-weights"
  | "dequantize-weights"
  | "read-cache"
  | "load-cache"
  | "store-cache"
  | "write-cache"
  | "read-hidden"
  | "load-hidden"
  | "store-hidden"
  | "write-hidden"
  | "move-hidden"
  | "compute"
  | "compute-pre"
  | "compute-post"
  | "cpu-attention"
  | "send-qkv"
  | "return-attention"
  | "lm-head"
  | "load-head"
  | "read-head"
  | "store-tokens"
  | "barrier";

export interface Task {
  readonly id: number;
  readonly kind: TaskKind;
  readonly resource: Resource | "none";
  readonly seconds: number;
  /** Bytes moved (transfers only). */
  readonly bytes: number;
  readonly token: number;
  readonly layer: number;
  readonly batch: number;
  deps: readonly Task[];
  readonly allocate: readonly MemoryEffect[];
  readonly free: readonly MemoryEffect[];
  // Filled in by the engine.
  pending: number;
  dependents: Task[];
  start: number;
  end: number;
  done: boolean;
}
