/**
 * A trace sink that keeps the Chrome trace events as objects, for a caller that reads the trace in the
 * same process (the report's charts): document() is what a FileTraceSink would have written.
 */

import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";
import {
  type ChromeTraceDocument,
  type ChromeTraceEvent,
  memoryEvent,
  sliceEvent,
  taskEvent,
  traceMetadataEvents,
} from "./chrome-trace-writer.js";
import type { Task } from "./task.js";
import type { TraceOtherData, TraceSink, TraceWhere } from "./trace-sink.js";

export class MemoryTraceSink implements TraceSink {
  private recorded: ChromeTraceEvent[] = traceMetadataEvents();
  private finished = false;
  private otherData: TraceOtherData | undefined;

  get events(): number {
    return this.recorded.length;
  }

  /** The events so far, metadata first. */
  get traceEvents(): readonly ChromeTraceEvent[] {
    return this.recorded;
  }

  /** Whether the simulation or run that wrote here finished (close() was called). */
  get complete(): boolean {
    return this.finished;
  }

  /** The trace as a Chrome trace file's content. */
  document(): ChromeTraceDocument {
    return {
      displayTimeUnit: "ms",
      traceEvents: this.recorded,
      ...(this.otherData ? { otherData: this.otherData } : {}),
    };
  }

  describe(otherData: TraceOtherData): void {
    this.otherData = otherData;
  }

  task(task: Task): void {
    const event = taskEvent(task);
    if (event) this.recorded.push(event);
  }

  slice(kind: string, resource: Resource, start: number, end: number, bytes: number, where: TraceWhere): void {
    this.recorded.push(sliceEvent(kind, resource, start, end, bytes, where));
  }

  memory(seconds: number, tier: Tier, bytes: number): void {
    this.recorded.push(memoryEvent(seconds, tier, bytes));
  }

  close(): void {
    this.finished = true;
  }

  abort(): void {
    this.recorded = [];
  }
}
