/**
 * Shared memory between the main thread and the transfer workers: a ring of completion markers
 * (slot id % RING_SLOTS holds the last finished id there), failure flags, and start/end times (ms
 * since the epoch, performance.timeOrigin-based, so all threads share one clock).
 */
export const RING_SLOTS = 1 << 16;

export interface TransferRing {
  readonly done: SharedArrayBuffer;
  /** RING_SLOTS flags, then one more word: the id of the first failed transfer. */
  readonly failed: SharedArrayBuffer;
  readonly times: SharedArrayBuffer;
  /** uint32 length, then the UTF-8 message of the first failure. */
  readonly errorText: SharedArrayBuffer;
}

export function createTransferRing(): TransferRing {
  return {
    done: new SharedArrayBuffer(RING_SLOTS * 4),
    failed: new SharedArrayBuffer((RING_SLOTS + 1) * 4),
    times: new SharedArrayBuffer(RING_SLOTS * 16),
    errorText: new SharedArrayBuffer(1024),
  };
}

export function isTransferDone(done: Int32Array, id: number): boolean {
  return Atomics.load(done, id % RING_SLOTS) >= id;
}

/** Blocks the calling thread until transfer `id` has finished (false if `timeoutMs` passed first). */
export function waitForTransfer(done: Int32Array, id: number, timeoutMs = Infinity): boolean {
  const slot = id % RING_SLOTS;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seen = Atomics.load(done, slot);
    if (seen >= id) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(done, slot, seen, Math.min(1000, left));
  }
}
