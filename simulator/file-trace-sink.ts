/**
 * A trace sink that streams Chrome Trace Event JSON to a file as the simulation or run goes, so memory
 * does not grow with the trace. Written to a temporary file beside the target and renamed on close(),
 * so an interrupted or failed run leaves no half trace. The temporary file is made by open(), or by
 * the first write when the sink was not opened: a sink made but never used leaves nothing behind. The
 * temporary is named by temporaryPathFor and removed on SIGINT/SIGTERM/SIGHUP; one left by a killed
 * run is removed when the same target is written again (core/temporary-files.ts).
 */
import { closeSync, renameSync, rmSync, writeSync } from "node:fs";
import { InputError } from "../core/input-error.js";
import type { Resource } from "../core/resources.js";
import { removeOnSignal, removeStaleTemporaries, temporaryPathFor } from "../core/temporary-files.js";
import type { Tier } from "../core/tiers.js";
import { checkOutputPath, openTemporaryExclusively } from "../core/write-file-atomic.js";
import {
  type ChromeTraceEvent,
  memoryEvent,
  sliceEvent,
  taskEvent,
  traceMetadataEvents,
} from "./chrome-trace-writer.js";
import type { Task } from "./task.js";
import type { TraceOtherData, TraceSink, TraceWhere } from "./trace-sink.js";

export class FileTraceSink implements TraceSink {
  private fd: number | undefined;
  private readonly temporary: string;
  private forget: (() => void) | undefined;
  private buffer: string[] = [];
  private bufferedChars = 0;
  private first = true;
  private otherData: TraceOtherData | undefined;
  events = 0;

  constructor(readonly path: string) {
    this.temporary = temporaryPathFor(path);
    for (const event of traceMetadataEvents()) this.emit(event);
  }

  /**
   * Makes the temporary file now, so a path that cannot be written fails before the work starts: the
   * target must be absent or a regular file (checkOutputPath: never a link, a folder, a pipe or a
   * device), whose permission bits the trace keeps; the temporary is created exclusively, never through a link.
   */
  open(): this {
    this.file();
    return this;
  }

  private file(): number {
    if (this.fd === undefined) {
      const { mode } = checkOutputPath(this.path);
      removeStaleTemporaries(this.path);
      this.forget = removeOnSignal(this.temporary);
      try {
        this.fd = openTemporaryExclusively(this.temporary, mode);
      } catch (error) {
        this.forget();
        throw new InputError(this.path, undefined, `cannot write: ${(error as Error).message}`);
      }
      writeSync(this.fd, '{"displayTimeUnit":"ms","traceEvents":[\n');
    }
    return this.fd;
  }

  private emit(event: ChromeTraceEvent): void {
    const text = (this.first ? "" : ",\n") + JSON.stringify(event);
    this.first = false;
    this.buffer.push(text);
    this.bufferedChars += text.length;
    this.events++;
    if (this.bufferedChars > 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    writeSync(this.file(), this.buffer.join(""));
    this.buffer = [];
    this.bufferedChars = 0;
  }

  task(task: Task): void {
    const event = taskEvent(task);
    if (event) this.emit(event);
  }

  slice(kind: string, resource: Resource, start: number, end: number, bytes: number, where: TraceWhere): void {
    this.emit(sliceEvent(kind, resource, start, end, bytes, where));
  }

  memory(seconds: number, tier: Tier, bytes: number): void {
    this.emit(memoryEvent(seconds, tier, bytes));
  }

  describe(otherData: TraceOtherData): void {
    this.otherData = otherData;
  }

  close(): void {
    this.flush();
    const fd = this.file();
    writeSync(fd, this.otherData ? `\n],"otherData":${JSON.stringify(this.otherData)}}\n` : "\n]}\n");
    closeSync(fd);
    renameSync(this.temporary, this.path);
    this.forget?.();
  }

  abort(): void {
    this.buffer = [];
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    rmSync(this.temporary, { force: true });
    this.forget?.();
  }
}
