/**
 * Timing of the CUDA backend's work: trace slices timed by device events (device work) or the host
 * clock (file I/O, CPU attention) on one origin, with the bytes each link moved.
 */

import { RESOURCES, type Resource } from "../../core/resources.js";
import type { ChromeTraceWriter } from "../../simulator/chrome-trace-writer.js";
import type { TaskKind } from "../../simulator/task.js";
import type { Where } from "../opt-runner.js";
import type { CudaNative } from "./native-api.js";

interface Slice {
  readonly kind: TaskKind;
  readonly resource: Resource;
  readonly bytes: number;
  readonly where: Where;
  readonly start: { event: number } | { hostMs: number };
  readonly end: { event: number } | { hostMs: number };
}

/** Trace slices timed by device events (device work) or the host clock (disk reads), on one origin. */
export class DeviceTimeline {
  readonly bytes = { h2d: 0, d2h: 0, diskRead: 0, diskWrite: 0 };
  private readonly slices: Slice[] = [];
  private readonly events: number[] = [];
  private origin = 0;
  private originMs = 0;

  constructor(private readonly native: CudaNative) {}

  start(stream: number): void {
    this.native.deviceSynchronize();
    this.origin = this.mark(stream);
    this.native.eventSynchronize(this.origin);
    this.originMs = performance.now();
  }

  mark(stream: number): number {
    const event = this.native.eventCreate(true);
    this.events.push(event);
    this.native.eventRecord(event, stream);
    return event;
  }

  /** Enqueues `work` on `stream` between two timing events; returns the end event. */
  device(kind: TaskKind, resource: Resource, stream: number, bytes: number, where: Where, work: () => void): number {
    const start = this.mark(stream);
    work();
    const end = this.mark(stream);
    this.slices.push({ kind, resource, bytes, where, start: { event: start }, end: { event: end } });
    if (resource !== "gpu" && resource !== "cpu") this.bytes[resource] += bytes;
    return end;
  }

  host(kind: TaskKind, resource: Resource, bytes: number, where: Where, startMs: number, endMs: number): void {
    this.slices.push({ kind, resource, bytes, where, start: { hostMs: startMs }, end: { hostMs: endMs } });
    if (resource !== "gpu" && resource !== "cpu") this.bytes[resource] += bytes;
  }

  /** Seconds since the origin of a finished point (the device must have passed every recorded event). */
  private seconds(point: { event: number } | { hostMs: number }): number {
    return "event" in point
      ? this.native.eventElapsedMs(this.origin, point.event) / 1000
      : (point.hostMs - this.originMs) / 1000;
  }

  nowSeconds(): number {
    return (performance.now() - this.originMs) / 1000;
  }

  /** After a device synchronise: busy time per resource, trace slices written, events destroyed. */
  finish(trace: ChromeTraceWriter | undefined): { busy: Record<Resource, number>; events: number } {
    const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
    for (const s of this.slices) {
      const start = this.seconds(s.start);
      const end = Math.max(start, this.seconds(s.end));
      busy[s.resource] += end - start;
      trace?.slice(s.kind, s.resource, start, end, s.bytes, s.where);
    }
    this.destroy();
    return { busy, events: this.slices.length };
  }

  destroy(): void {
    for (const e of this.events.splice(0)) this.native.eventDestroy(e);
  }
}
