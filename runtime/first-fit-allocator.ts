/**
 * First-fit allocation of aligned blocks out of a fixed byte range: the device memory of both backends
 * (the CPU backend's arena, device-arena.ts, and the CUDA backend's pool, cuda/device-pool.ts).
 * Allocation beyond the range fails with DeviceOutOfMemory naming what was being allocated; freed
 * blocks merge with their neighbours so a long run does not fragment; the peak in use is tracked.
 */
export class DeviceOutOfMemory extends Error {
  override readonly name = "DeviceOutOfMemory";
}

export interface DeviceBlock {
  readonly offset: number;
  readonly bytes: number;
  readonly what: string;
}

export class FirstFitAllocator {
  private free: { offset: number; bytes: number }[];
  private inUseBytes = 0;
  private peak = 0;
  private readonly live = new Map<number, DeviceBlock>();

  /** `capacityBytes` is reported in messages; `usableBytes` (a multiple of `align`) is handed out. */
  constructor(
    readonly capacityBytes: number,
    usableBytes: number,
    private readonly align: number,
  ) {
    this.free = [{ offset: 0, bytes: usableBytes }];
  }

  get usedBytes(): number {
    return this.inUseBytes;
  }

  get peakBytes(): number {
    return this.peak;
  }

  allocate(bytes: number, what: string): DeviceBlock {
    const size = Math.max(this.align, Math.ceil(bytes / this.align) * this.align);
    const index = this.free.findIndex((f) => f.bytes >= size);
    if (index < 0) {
      const largest = this.free.reduce((m, f) => Math.max(m, f.bytes), 0);
      throw new DeviceOutOfMemory(
        `device memory exhausted allocating ${what} (${bytes} bytes): ${this.inUseBytes} of ${this.capacityBytes} bytes in use, largest free block ${largest}`,
      );
    }
    const slot = this.free[index]!;
    const block = { offset: slot.offset, bytes: size, what };
    if (slot.bytes === size) this.free.splice(index, 1);
    else this.free[index] = { offset: slot.offset + size, bytes: slot.bytes - size };
    this.inUseBytes += size;
    this.peak = Math.max(this.peak, this.inUseBytes);
    this.live.set(block.offset, block);
    return block;
  }

  release(block: DeviceBlock): void {
    if (this.live.get(block.offset) !== block) throw new Error(`double free of ${block.what}`);
    this.live.delete(block.offset);
    this.inUseBytes -= block.bytes;
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
}
