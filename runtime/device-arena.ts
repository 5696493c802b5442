/**
 * The CPU backend's device memory: one ArrayBuffer of a hard byte capacity (the plan's GPU capacity)
 * with a first-fit allocator over 64-byte aligned blocks. Allocation beyond the capacity fails with a
 * message naming what was being allocated, and the peak in use is tracked: a real device would OOM
 * exactly where this does.
 */
export class DeviceOutOfMemory extends Error {
  override readonly name = "DeviceOutOfMemory";
}

export interface DeviceBlock {
  readonly offset: number;
  readonly bytes: number;
  readonly what: string;
}

const ALIGN = 64;

export class DeviceArena {
  /** Shared, so the transfer workers can copy into and out of device memory. */
  readonly buffer: SharedArrayBuffer;
  private free: { offset: number; bytes: number }[];
  private inUseBytes = 0;
  peakBytes = 0;
  private readonly live = new Map<number, DeviceBlock>();

  constructor(readonly capacityBytes: number) {
    const size = Math.floor(capacityBytes / ALIGN) * ALIGN;
    this.buffer = new SharedArrayBuffer(Math.max(ALIGN, size));
    this.free = [{ offset: 0, bytes: size }];
  }

  get usedBytes(): number {
    return this.inUseBytes;
  }

  allocate(bytes: number, what: string): DeviceBlock {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const index = this.free.findIndex((f) => f.bytes >= size);
    if (index < 0) {
      const largest = this.free.reduce((m, f) => Math.max(m, f.bytes), 0);
      throw new DeviceOutOfMemory(`device memory exhausted allocating ${what} (${bytes} bytes): ${this.inUseBytes} of ${this.capacityBytes} bytes in use, largest free block ${largest}`);
    }
    const slot = this.free[index]!;
    const block = { offset: slot.offset, bytes: size, what };
    if (slot.bytes === size) this.free.splice(index, 1);
    else this.free[index] = { offset: slot.offset + size, bytes: slot.bytes - size };
    this.inUseBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
    this.live.set(block.offset, block);
    return block;
  }

  release(block: DeviceBlock): void {
    if (this.live.get(block.offset) !== block) throw new Error(`double free of ${block.what}`);
    this.live.delete(block.offset);
    this.inUseBytes -= block.bytes;
    // Insert sorted and merge with neighbours so the arena does not fragment over a long run.
    let i = 0;
    while (i < this.free.length && this.free[i]!.offset < block.offset) i++;
    this.free.splice(i, 0, { offset: block.offset, bytes: block.bytes });
    const merged: { offset: number; bytes: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.offset + last.bytes === f.offset) last.bytes += f.bytes;
      else merged.push({ ...f });
    }
    this.free = merged;
  }

  float32(block: DeviceBlock, length: number): Float32Array {
    return new Float32Array(this.buffer, block.offset, length);
  }

  uint16(block: DeviceBlock, length: number): Uint16Array {
    return new Uint16Array(this.buffer, block.offset, length);
  }

  uint8(block: DeviceBlock, length: number): Uint8Array {
    return new Uint8Array(this.buffer, block.offset, length);
  }
}
