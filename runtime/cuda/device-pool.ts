/**
 * The CUDA backend's device memory: one cudaMalloc of the plan's GPU capacity, carved first-fit into
 * 256-byte aligned blocks by the allocator the CPU backend's arena uses, so over-allocation fails
 * with the same DeviceOutOfMemory naming what was being allocated, and the peak in use is tracked.
 */
import { type DeviceBlock, FirstFitAllocator } from "../first-fit-allocator.js";
import type { CudaNative } from "./native-api.js";

/** Every block starts at and is rounded up to this (runtime/moe/device-budget.ts counts blocks so). */
export const DEVICE_POOL_ALIGN_BYTES = 256;
const ALIGN = DEVICE_POOL_ALIGN_BYTES;

export interface DevicePointer {
  readonly pointer: number;
  readonly bytes: number;
  readonly what: string;
  readonly block: DeviceBlock;
}

export class DevicePool {
  readonly base: number;
  private readonly blocks: FirstFitAllocator;

  constructor(
    private readonly native: CudaNative,
    readonly capacityBytes: number,
  ) {
    const size = Math.max(ALIGN, Math.floor(capacityBytes / ALIGN) * ALIGN);
    this.blocks = new FirstFitAllocator(capacityBytes, size, ALIGN);
    this.base = native.malloc(size);
  }

  get usedBytes(): number {
    return this.blocks.usedBytes;
  }

  get peakBytes(): number {
    return this.blocks.peakBytes;
  }

  allocate(bytes: number, what: string): DevicePointer {
    const block = this.blocks.allocate(bytes, what);
    return { pointer: this.base + block.offset, bytes: block.bytes, what, block };
  }

  /** Returns a block to the pool. The caller orders this after every stream's last use of it. */
  release(pointer: DevicePointer): void {
    this.blocks.release(pointer.block);
  }

  close(): void {
    this.native.free(this.base);
  }
}
