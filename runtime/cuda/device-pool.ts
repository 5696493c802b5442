/**
 * The CUDA backend's device memory: one cudaMalloc of the plan's GPU capacity, carved first-fit into
 * 256-byte aligned blocks. Over-allocation fails with DeviceOutOfMemory naming what was being
 * allocated, exactly as the CPU backend's arena does, and the peak in use is tracked.
 */
import { DeviceOutOfMemory } from "../device-arena.js";
import type { CudaNative } from "./native-api.js";

const ALIGN = 256;

export interface DevicePointer {
  readonly pointer: number;
  readonly bytes: number;
  readonly what: string;
}

export class DevicePool {
  readonly base: number;
  private free: { offset: number; bytes: number }[];
  private readonly live = new Map<number, DevicePointer>();
  private inUseBytes = 0;
  peakBytes = 0;

  constructor(private readonly native: CudaNative, readonly capacityBytes: number) {
    const size = Math.max(ALIGN, Math.floor(capacityBytes / ALIGN) * ALIGN);
    this.base = native.malloc(size);
    this.free = [{ offset: 0, bytes: size }];
  }

  get usedBytes(): number {
    return this.inUseBytes;
  }

  allocate(bytes: number, what: string): DevicePointer {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const index = this.free.findIndex((f) => f.bytes >= size);
    if (index < 0) {
      const largest = this.free.reduce((m, f) => Math.max(m, f.bytes), 0);
      throw new DeviceOutOfMemory(`device memory exhausted allocating ${what} (${bytes} bytes): ${this.inUseBytes} of ${this.capacityBytes} bytes in use, largest free block ${largest}`);
    }
    const slot = this.free[index]!;
    const block = { pointer: this.base + slot.offset, bytes: size, what };
    if (slot.bytes === size) this.free.splice(index, 1);
    else this.free[index] = { offset: slot.offset + size, bytes: slot.bytes - size };
    this.inUseBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.live.set(block.pointer, block);
    return block;
  }

  /** Returns a block to the pool. The caller orders this after every stream's last use of it. */
  release(block: DevicePointer): void {
    if (this.live.get(block.pointer) !== block) throw new Error(`double free of ${block.what}`);
    this.live.delete(block.pointer);
    this.inUseBytes -= block.bytes;
    let i = 0;
    const offset = block.pointer - this.base;
    while (i < this.free.length && this.free[i]!.offset < offset) i++;
    this.free.splice(i, 0, { offset, bytes: block.bytes });
    const merged: { offset: number; bytes: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.offset + last.bytes === f.offset) last.bytes += f.bytes;
      else merged.push({ ...f });
    }
    this.free = merged;
  }

  close(): void {
    this.native.free(this.base);
  }
}
