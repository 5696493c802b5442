/**
 * One transfer stream of the CPU backend (h2d, d2h, disk read or disk write) as a worker thread. It
 * serves its stream's transfers in submission order; a transfer first waits for the transfers it
 * depends on (on any stream) through the shared completion ring, then runs and publishes its times.
 */
import { parentPort, workerData } from "node:worker_threads";
import { executeTransferActions, type TransferAction } from "./transfer-action.js";
import { RING_SLOTS, type TransferRing, waitForTransfer } from "./transfer-ring.js";

interface Job {
  readonly id: number;
  readonly deps: readonly number[];
  readonly actions: readonly TransferAction[];
}

const ring = workerData as TransferRing;
const done = new Int32Array(ring.done);
const failed = new Int32Array(ring.failed);
const times = new Float64Array(ring.times);
const errorText = new Uint8Array(ring.errorText);

parentPort!.on("message", (job: Job) => {
  const slot = job.id % RING_SLOTS;
  let error: string | undefined;
  for (const dep of job.deps) {
    waitForTransfer(done, dep);
    if (Atomics.load(failed, dep % RING_SLOTS) !== 0) error ??= `a transfer it depends on (#${dep}) failed`;
  }
  const start = performance.timeOrigin + performance.now();
  if (!error) {
    try {
      executeTransferActions(job.actions);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
  }
  const end = performance.timeOrigin + performance.now();
  times[2 * slot] = start;
  times[2 * slot + 1] = end;
  if (error !== undefined) {
    // The first failure's message is kept for the main thread's error.
    if (Atomics.compareExchange(failed, RING_SLOTS, 0, job.id) === 0) {
      const bytes = new TextEncoder().encode(error.slice(0, 1000));
      errorText.set(bytes.subarray(0, errorText.byteLength - 4), 4);
      new DataView(ring.errorText).setUint32(0, Math.min(bytes.byteLength, errorText.byteLength - 4), true);
    }
    Atomics.store(failed, slot, 1);
  } else Atomics.store(failed, slot, 0);
  Atomics.store(done, slot, job.id);
  Atomics.notify(done, slot);
});
