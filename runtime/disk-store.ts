/**
 * The disk tier: tensors written to and read from files in an offload directory with real file I/O.
 * The directory is removed when the run ends, on error, and on Ctrl-C (SIGINT/SIGTERM), so an
 * interrupted run leaves no offload files behind.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

const liveDirectories = new Set<string>();
let handlersInstalled = false;

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const cleanup = () => {
    for (const dir of liveDirectories) rmSync(dir, { recursive: true, force: true });
    liveDirectories.clear();
  };
  process.once("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
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
    this.directory = mkdtempSync(join(parent, "spillway-offload-"));
    liveDirectories.add(this.directory);
  }

  write(key: string, data: Uint8Array): void {
    const path = join(this.directory, `${this.files.size}-${key.replace(/[^A-Za-z0-9_.-]/g, "_")}.bin`);
    const existing = this.files.get(key);
    const target = existing?.path ?? path;
    const fd = openSync(target, "w");
    try {
      writeSync(fd, data, 0, data.byteLength, 0);
    } finally {
      closeSync(fd);
    }
    this.inUseBytes += data.byteLength - (existing?.bytes ?? 0);
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.files.set(key, { path: target, bytes: data.byteLength });
    this.bytesWritten += data.byteLength;
  }

  /** Appends bytes to a tensor file (KV cache growing token by token). */
  append(key: string, data: Uint8Array): void {
    const existing = this.files.get(key);
    if (!existing) return this.write(key, data);
    const fd = openSync(existing.path, "r+");
    try {
      writeSync(fd, data, 0, data.byteLength, existing.bytes);
    } finally {
      closeSync(fd);
    }
    this.files.set(key, { path: existing.path, bytes: existing.bytes + data.byteLength });
    this.inUseBytes += data.byteLength;
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.bytesWritten += data.byteLength;
  }

  read(key: string, into?: Uint8Array): Uint8Array {
    const file = this.files.get(key);
    if (!file) throw new Error(`offload file for ${key} is missing`);
    const out = into ?? new Uint8Array(file.bytes);
    const fd = openSync(file.path, "r");
    try {
      let done = 0;
      while (done < file.bytes) done += readSync(fd, out, done, file.bytes - done, done);
    } finally {
      closeSync(fd);
    }
    this.bytesRead += file.bytes;
    return out.subarray(0, file.bytes);
  }

  close(): void {
    rmSync(this.directory, { recursive: true, force: true });
    liveDirectories.delete(this.directory);
    this.files.clear();
  }
}
