/**
 * The CPU backend's device memory: one ArrayBuffer of a hard byte capacity (the plan's GPU capacity)
 * with a first-fit allocator over 64-byte aligned blocks. Allocation beyond the capacity fails with a
 * message naming what was being allocated, and the peak in use is tracked: a real device would OOM
 * exactly where this does.
 */
import { type DeviceBlock, FirstFitAllocator } from "./first-fit-allocator.js";

export { type DeviceBlock, DeviceOutOfMemory } from "./first-fit-allocator.js";

const ALIGN = 64;

export class DeviceArena extends FirstFitAllocator {
  /** Shared, so the transfer workers can copy into and out of device memory. */
  readonly buffer: SharedArrayBuffer;

  constructor(capacityBytes: number) {
    const size = Math.floor(capacityBytes / ALIGN) * ALIGN;
    super(capacityBytes, size, ALIGN);
    this.buffer = new SharedArrayBuffer(Math.max(ALIGN, size));
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
