/**
 * The Chrome Trace Event format (what Perfetto and chrome://tracing open) that the trace sinks write:
 * `X` events with `ts`/`dur` in microseconds, one process per device or link and one thread per stream,
 * and `C` counter events for memory in use per tier. FileTraceSink streams these events to a file,
 * MemoryTraceSink keeps them as objects.
 */
import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";
import type { Task } from "./task.js";
import type { TraceOtherData, TraceSink, TraceWhere } from "./trace-sink.js";

/** Process and thread for each resource: devices and links as processes, streams as threads. */
export const TRACE_LANES: Record<Resource, { pid: number; process: string; tid: number; thread: string }> = {
  gpu: { pid: 1, process: "GPU", tid: 1, thread: "compute" },
  cpu: { pid: 2, process: "CPU", tid: 1, thread: "attention" },
  h2d: { pid: 3, process: "PCIe", tid: 1, thread: "host→GPU" },
  d2h: { pid: 3, process: "PCIe", tid: 2, thread: "GPU→host" },
  diskRead: { pid: 4, process: "Disk", tid: 1, thread: "read" },
  diskWrite: { pid: 4, process: "Disk", tid: 2, thread: "write" },
};
const MEMORY_PID = 5;

/** The sink interface under the name the executors take it by. */
export type ChromeTraceWriter = TraceSink;

/** One Chrome trace event: metadata (`M`), a complete slice (`X`) or a counter (`C`). */
export interface ChromeTraceEvent {
  readonly ph: "M" | "X" | "C";
  readonly name: string;
  readonly cat?: string;
  readonly pid: number;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly args: Readonly<Record<string, number | string>>;
}

/** A whole trace file's content. */
export interface ChromeTraceDocument {
  readonly displayTimeUnit: "ms";
  readonly traceEvents: readonly ChromeTraceEvent[];
  readonly otherData?: TraceOtherData;
}

/** The process and thread names (and process order) every trace starts with. */
export function traceMetadataEvents(): ChromeTraceEvent[] {
  const events: ChromeTraceEvent[] = [];
  const seen = new Set<number>();
  for (const lane of Object.values(TRACE_LANES)) {
    if (!seen.has(lane.pid)) {
      seen.add(lane.pid);
      events.push({ ph: "M", name: "process_name", pid: lane.pid, tid: 0, args: { name: lane.process } });
      events.push({ ph: "M", name: "process_sort_index", pid: lane.pid, tid: 0, args: { sort_index: lane.pid } });
    }
    events.push({ ph: "M", name: "thread_name", pid: lane.pid, tid: lane.tid, args: { name: lane.thread } });
  }
  events.push({ ph: "M", name: "process_name", pid: MEMORY_PID, tid: 0, args: { name: "Memory in use" } });
  return events;
}

/** One `X` event: a task of `kind` on `resource` from `start` to `end` seconds. */
export function sliceEvent(
  kind: string,
  resource: Resource,
  start: number,
  end: number,
  bytes: number,
  where: TraceWhere,
): ChromeTraceEvent {
  const lane = TRACE_LANES[resource];
  const args: Record<string, number | string> = { token: where.token, layer: where.layer, batch: where.batch };
  if (bytes > 0) args.bytes = bytes;
  return {
    ph: "X",
    name: kind,
    cat: resource,
    pid: lane.pid,
    tid: lane.tid,
    ts: start * 1e6,
    dur: (end - start) * 1e6,
    args,
  };
}

/** A simulated task's `X` event; none for tasks on no resource (barriers). */
export function taskEvent(task: Task): ChromeTraceEvent | undefined {
  if (task.resource === "none") return undefined;
  return sliceEvent(task.kind, task.resource, task.start, task.end, task.bytes, task);
}

/** A `C` event: `bytes` in use on `tier` from `seconds` on. */
export function memoryEvent(seconds: number, tier: Tier, bytes: number): ChromeTraceEvent {
  return { ph: "C", name: `${tier} bytes`, pid: MEMORY_PID, tid: 0, ts: seconds * 1e6, args: { bytes } };
}
