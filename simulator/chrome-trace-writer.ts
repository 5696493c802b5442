/**
 * Streams Chrome Trace Event JSON (what Perfetto and chrome://tracing open) to a file as the simulation
 * runs, so memory does not grow with the trace: `X` events with `ts`/`dur` in microseconds, one process
 * per device or link and one thread per stream, and `C` counter events for memory in use per tier.
 * Written to a temporary file and renamed at the end, so an interrupted run leaves no half trace.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";
import type { Task } from "./task.js";

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

export class ChromeTraceWriter {
  private readonly fd: number;
  private readonly temporary: string;
  private buffer: string[] = [];
  private bufferedChars = 0;
  private first = true;
  events = 0;

  constructor(private readonly path: string) {
    this.temporary = `${path}.tmp-${process.pid}`;
    this.fd = openSync(this.temporary, "w");
    writeSync(this.fd, '{"displayTimeUnit":"ms","traceEvents":[\n');
    const seen = new Set<number>();
    for (const lane of Object.values(TRACE_LANES)) {
      if (!seen.has(lane.pid)) {
        seen.add(lane.pid);
        this.emit({ ph: "M", name: "process_name", pid: lane.pid, tid: 0, args: { name: lane.process } });
        this.emit({ ph: "M", name: "process_sort_index", pid: lane.pid, tid: 0, args: { sort_index: lane.pid } });
      }
      this.emit({ ph: "M", name: "thread_name", pid: lane.pid, tid: lane.tid, args: { name: lane.thread } });
    }
    this.emit({ ph: "M", name: "process_name", pid: MEMORY_PID, tid: 0, args: { name: "Memory in use" } });
  }

  private emit(event: object): void {
    const text = (this.first ? "" : ",\n") + JSON.stringify(event);
    this.first = false;
    this.buffer.push(text);
    this.bufferedChars += text.length;
    this.events++;
    if (this.bufferedChars > 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    writeSync(this.fd, this.buffer.join(""));
    this.buffer = [];
    this.bufferedChars = 0;
  }

  task(task: Task): void {
    if (task.resource === "none") return;
    this.slice(task.kind, task.resource, task.start, task.end, task.bytes, task);
  }

  /** One `X` event: a task of `kind` on `resource` from `start` to `end` seconds. */
  slice(kind: string, resource: Resource, start: number, end: number, bytes: number, where: { token: number; layer: number; batch: number }): void {
    const lane = TRACE_LANES[resource];
    const args: Record<string, number | string> = { token: where.token, layer: where.layer, batch: where.batch };
    if (bytes > 0) args.bytes = bytes;
    this.emit({ ph: "X", name: kind, cat: resource, pid: lane.pid, tid: lane.tid, ts: start * 1e6, dur: (end - start) * 1e6, args });
  }

  memory(seconds: number, tier: Tier, bytes: number): void {
    this.emit({ ph: "C", name: `${tier} bytes`, pid: MEMORY_PID, tid: 0, ts: seconds * 1e6, args: { bytes } });
  }

  close(): void {
    this.flush();
    writeSync(this.fd, "\n]}\n");
    closeSync(this.fd);
    renameSync(this.temporary, this.path);
  }

  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    rmSync(this.temporary, { force: true });
  }
}
