/**
 * Hidden states off the GPU on the CUDA backend (run.ts's issueHidden / storeHidden): each step's in one
 * of two staging buffers, loaded from the batch's host array or offload file, stored back after the compute.
 */
import type { CudaBuffers, HiddenSlot } from "./cuda-buffers.js";
import type { CudaRunContext } from "./cuda-context.js";
import { readFiles, writeFiles } from "./offload-files.js";

export interface HiddenIn {
  readonly slot: HiddenSlot;
  readonly arrived: number;
}

/** Hidden states off the GPU on the CUDA backend: each step's in one of two staging buffers, loaded before it and stored after it. */
export function createCudaHidden(ctx: CudaRunContext, buffers: CudaBuffers) {
  const { native, disk, nb, tier, timeline, track, whenDone, activations } = ctx;
  const { hostHidden, hiddenSlots } = buffers;
  // Hidden states off the GPU (run.ts's issueHidden / storeHidden): each step's in a staging buffer,
  // loaded from the batch's host array or offload file, stored back after the compute.
  const hiddenKey = (k: number) => `hidden-${k}`;
  /** cpu: the copy that last stored each batch's hidden state into its host array. */
  const hiddenStored = new Array<number | undefined>(nb).fill(undefined);
  /** disk: the last write of each batch's hidden state to its file. */
  const hiddenWritten = Array.from({ length: nb }, (): Promise<void> => Promise.resolve());
  let nextHidden = 0;
  /** The next staging buffer (the two alternate step by step: the step before last has released it). */
  const takeHidden = (): HiddenSlot => {
    const slot = hiddenSlots[nextHidden];
    if (!slot) throw new Error("internal: a third hidden-state staging buffer asked for while two are in use");
    hiddenSlots[nextHidden] = undefined;
    nextHidden = 1 - nextHidden;
    return slot;
  };
  const releaseHidden = (
    slot: HiddenSlot,
    free: { deviceFree: number; pinnedFreeEvent?: number; pinnedFreeWrite?: Promise<void> },
  ) => {
    hiddenSlots[slot.index] = {
      index: slot.index,
      device: slot.device,
      ...(slot.pinned ? { pinned: slot.pinned } : {}),
      ...free,
    };
  };
  const issueHidden = (token: number, layer: number, k: number, values: number): Promise<HiddenIn> => {
    const where = { token, layer, batch: k };
    const slot = takeHidden();
    const bytes = values * 2;
    const hostStored = hiddenStored[k];
    const fileWritten = hiddenWritten[k]!;
    return track(
      (async (): Promise<HiddenIn> => {
        let src: Uint8Array;
        if (tier === "cpu") src = hostHidden[k]!.subarray(0, bytes);
        else {
          src = slot.pinned!.subarray(0, bytes);
          await fileWritten; // the file holds the batch's latest hidden state
          await slot.pinnedFreeWrite; // the pinned buffer's previous contents went out to their file...
          await whenDone(slot.pinnedFreeEvent); // ...or up to the device
          const startMs = performance.now();
          await readFiles([{ ...disk.readSource(hiddenKey(k), bytes), dst: src }]);
          timeline.host("read-hidden", "diskRead", bytes, where, startMs, performance.now());
        }
        if (slot.deviceFree !== undefined) native.streamWaitEvent(activations, slot.deviceFree);
        if (hostStored !== undefined) native.streamWaitEvent(activations, hostStored);
        const arrived = timeline.device("load-hidden", "h2d", activations, bytes, where, () =>
          native.memcpyHtoD(slot.device.pointer, src, activations),
        );
        return { slot, arrived };
      })(),
    );
  };
  /** Stores a step's output (in `slot`, written by the compute up to `computed`) to the batch's tier; releases the staging. */
  const storeHidden = async (
    token: number,
    layer: number,
    k: number,
    slot: HiddenSlot,
    computed: number,
    values: number,
  ): Promise<void> => {
    const where = { token, layer, batch: k };
    const bytes = values * 2;
    if (tier === "cpu") {
      native.streamWaitEvent(activations, computed);
      const end = timeline.device("store-hidden", "d2h", activations, bytes, where, () =>
        native.memcpyDtoH(hostHidden[k]!.subarray(0, bytes), slot.device.pointer, activations),
      );
      hiddenStored[k] = end;
      releaseHidden(slot, { deviceFree: end });
      return;
    }
    const staging = slot.pinned!.subarray(0, bytes);
    await slot.pinnedFreeWrite; // the pinned buffer's previous contents are in their file
    if (slot.pinnedFreeEvent !== undefined) native.streamWaitEvent(activations, slot.pinnedFreeEvent); // and the copy up out of it is done
    native.streamWaitEvent(activations, computed);
    const end = timeline.device("store-hidden", "d2h", activations, bytes, where, () =>
      native.memcpyDtoH(staging, slot.device.pointer, activations),
    );
    const target = disk.writeTarget(hiddenKey(k), bytes);
    const previous = hiddenWritten[k]!;
    const write = track(
      (async () => {
        await previous;
        await whenDone(end); // the hidden state has landed in the pinned buffer
        const startMs = performance.now();
        await writeFiles([{ ...target, src: staging }]);
        timeline.host("write-hidden", "diskWrite", bytes, where, startMs, performance.now());
      })(),
    );
    hiddenWritten[k] = write;
    releaseHidden(slot, { deviceFree: end, pinnedFreeWrite: write });
  };

  return { takeHidden, releaseHidden, issueHidden, storeHidden };
}
