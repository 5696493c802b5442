/**
 * Where a simulation or a run reports what happened as it happens: task slices on a resource's lane and
 * memory in use per tier. Three sinks: a Chrome trace file (FileTraceSink, written atomically), the
 * events in memory (MemoryTraceSink) and nothing (NoTraceSink). A sink serves one simulation or run,
 * which ends it: close() when it finished, abort() when it failed (a file sink then leaves no file, a
 * memory sink drops what it held).
 */

import type { PlanIdentity } from "../core/plan-identity.js";
import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";
import type { Task } from "./task.js";

/**
 * The trace file's `otherData` (the Trace Event Format's dictionary of metadata): who wrote it and, when
 * a plan was executed, which plan (model, workload, policy), so readers can tell files of different plans apart.
 */
export interface TraceOtherData {
  readonly source: "simulate" | "run";
  readonly plan?: PlanIdentity;
}

/** Which decode step (0 is the prefill), layer and GPU batch a slice belongs to. */
export interface TraceWhere {
  readonly token: number;
  readonly layer: number;
  readonly batch: number;
}

export interface TraceSink {
  /** Events recorded so far (for a Chrome trace: its metadata events included). */
  readonly events: number;
  /** A simulated task as a slice on its resource's lane (tasks on no resource are left out). */
  task(task: Task): void;
  /** A slice: `kind` on `resource` from `start` to `end` seconds, moving `bytes` (0 for compute). */
  slice(kind: string, resource: Resource, start: number, end: number, bytes: number, where: TraceWhere): void;
  /** Memory in use on `tier` from `seconds` on. */
  memory(seconds: number, tier: Tier, bytes: number): void;
  /** Who writes the trace and from which plan (the file's `otherData`; the last call wins). */
  describe(otherData: TraceOtherData): void;
  /** The simulation or run finished: the trace is complete. */
  close(): void;
  /** The simulation or run failed: drop what was recorded. */
  abort(): void;
}

/** Records nothing. */
export class NoTraceSink implements TraceSink {
  readonly events = 0;
  task(): void {}
  slice(): void {}
  memory(): void {}
  describe(): void {}
  close(): void {}
  abort(): void {}
}
