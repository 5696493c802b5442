/**
 * The disk tier: tensors written to and read from files in an offload directory with real file I/O.
 * The directory is removed when the run ends, on error, and on Ctrl-C or a kill (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT; the process then exits with 128 + the signal's number), so an interrupted run leaves no
 * offload files behind.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { InputError } from "../core/input-error.js";
import { executeTransferActions } from "./transfer-action.js";

const liveDirectories = new Set<string>();
let handlersInstalled = false;

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const cleanup = () => {
    // Transfer workers may still be creating files while the folder is removed: retry until it is gone
    // (once it is, they cannot create any more there).
    for (const dir of liveDirectories) removeDirectory(dir);
    liveDirectories.clear();
  };
  process.once("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(128 + constants.signals[signal]);
    });
  }
}

function removeDirectory(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 2 });
      return;
    } catch (error) {
      if (attempt >= 20) throw error;
    }
  }
}

export class DiskStore {
  readonly directory: string;
  private readonly files = new Map<string, { path: string; bytes: number }>();
  bytesWritten = 0;
  bytesRead = 0;
  inUseBytes = 0;
  peakBytes = 0;

  constructor(parent: string) {
    installSignalHandlers();
    try {
      this.directory = mkdtempSync(join(parent, "spillway-offload-"));
    } catch (error) {
      throw new InputError(
        parent,
        undefined,
        `cannot make the disk tier's offload folder here: ${(error as Error).message}`,
      );
    }
    liveDirectories.add(this.directory);
  }

  /** Writes a whole tensor file now (placement, profiling). */
  write(key: string, data: Uint8Array): void {
    executeTransferActions([{ type: "write", ...this.writeTarget(key, data.byteLength), src: data }]);
  }

  /**
   * Where a whole-file write of `bytes` to `key` goes, for a transfer to perform: the bookkeeping
   * (size, peak, bytes written) is done now, the bytes are written by the transfer.
   */
  writeTarget(key: string, bytes: number): { path: string; position: number; truncate: boolean } {
    const existing = this.files.get(key);
    const path =
      existing?.path ?? join(this.directory, `${this.files.size}-${key.replace(/[^A-Za-z0-9_.-]/g, "_")}.bin`);
    this.inUseBytes += bytes - (existing?.bytes ?? 0);
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.files.set(key, { path, bytes });
    this.bytesWritten += bytes;
    return { path, position: 0, truncate: true };
  }

  /** Where an append of `bytes` to `key` goes, for a transfer to perform (bookkeeping done now). */
  appendTarget(key: string, bytes: number): { path: string; position: number; truncate: boolean } {
    const existing = this.files.get(key);
    if (!existing) return this.writeTarget(key, bytes);
    this.files.set(key, { path: existing.path, bytes: existing.bytes + bytes });
    this.inUseBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.bytesWritten += bytes;
    return { path: existing.path, position: existing.bytes, truncate: false };
  }

  /** Where `key`'s bytes are (the first `bytes`, default all), for a transfer to read. */
  readSource(key: string, bytes?: number): { path: string; position: number; bytes: number } {
    const file = this.files.get(key);
    if (!file) throw new Error(`offload file for ${key} is missing`);
    const length = bytes ?? file.bytes;
    if (length > file.bytes) throw new Error(`offload file for ${key} holds ${file.bytes} bytes, ${length} wanted`);
    this.bytesRead += length;
    return { path: file.path, position: 0, bytes: length };
  }

  /** Reads a whole tensor file now, into `into` when given. */
  read(key: string, into?: Uint8Array): Uint8Array {
    const source = this.readSource(key);
    const dst = (into ?? new Uint8Array(source.bytes)).subarray(0, source.bytes);
    executeTransferActions([{ type: "read", path: source.path, position: source.position, dst }]);
    return dst;
  }

  close(): void {
    removeDirectory(this.directory);
    liveDirectories.delete(this.directory);
    this.files.clear();
  }
}
