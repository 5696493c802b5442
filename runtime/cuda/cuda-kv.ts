/**
 * KV of off-GPU sequences on the CUDA backend: past rows up into a staging slot before a step (disk
 * sequences' read from their files into pinned staging first), new rows appended to the disk
 * sequences' files after it. With CPU attention, decode steps leave past rows on the host.
 */
import type { Where } from "../opt-runner.js";
import type { CudaBuffers } from "./cuda-buffers.js";
import type { CudaRunContext } from "./cuda-context.js";
import { readFiles, writeFiles } from "./offload-files.js";

export interface CacheIn {
  /** GPU attention: the copy up of the off-GPU past rows into kvStaging. */
  readonly arrived?: number;
  /** The disk sequences' past rows, read into pinned staging (k then v per sequence). */
  readonly diskPast?: Uint8Array;
}

/** KV of off-GPU sequences on the CUDA backend: past rows in before a step, new rows out after it. */
export function createCudaKv(ctx: CudaRunContext, buffers: CudaBuffers) {
  const {
    native,
    policy,
    disk,
    s,
    L,
    nb,
    maxContext,
    rowBytes,
    gpuSeqs,
    offSeqs,
    cpuSeqs,
    diskSeqs,
    timeline,
    track,
    whenDone,
    kvLoad,
  } = ctx;
  const kvKey = (layer: number, k: number, seq: number, which: 0 | 1) => `kv-${layer}-${k}-${seq}-${which ? "v" : "k"}`;
  const { hostCache, kvStaging, diskPastStaging, diskNewStaging } = buffers;
  // KV of off-GPU sequences: past rows up into a staging slot before the step (disk sequences' read
  // from their files into pinned staging first), new rows down after it (disk sequences' then
  // appended to their files). With CPU attention, decode steps leave past rows on the host.
  const kvStagingFree: (number | undefined)[] = [undefined, undefined];
  const newRowsFree: (number | undefined)[] = [undefined, undefined];
  /** The copy up out of each pinned disk staging buffer of past rows (it is refilled once that is done). */
  const diskPastFree: (number | undefined)[] = [undefined, undefined];
  /** The file writes out of each pinned staging buffer of new rows. */
  const diskNewFree: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  /** The copy up out of each pinned buffer of CPU attention output. */
  const outUpFree: (number | undefined)[] = [undefined, undefined];
  /** [layer][batch]: the last copy of new rows into the host cache, and the last append to the disk sequences' files. */
  const stored: (number | undefined)[][] = Array.from({ length: L }, () =>
    new Array<number | undefined>(nb).fill(undefined),
  );
  const written: Promise<void>[][] = Array.from({ length: L }, () =>
    Array.from({ length: nb }, () => Promise.resolve()),
  );
  /** Host bytes of a CPU sequence's past K (0) or V (1) rows. */
  const hostPast = (layer: number, k: number, local: number, which: 0 | 1, pastBytes: number): Uint8Array => {
    const base = (local * 2 + which) * maxContext * rowBytes;
    return hostCache[layer]![k]!.subarray(base, base + pastBytes);
  };
  const issueCache = (layer: number, k: number, token: number, slot: number): Promise<CacheIn> | undefined => {
    const past = token === 0 ? 0 : s + token - 1;
    if (offSeqs === 0 || past === 0) return undefined;
    const where = { token, layer, batch: k };
    const pastBytes = past * rowBytes;
    // What this step's transfers must follow, as of now (later steps move these on).
    const stagingFree = kvStagingFree[slot];
    const hostStored = stored[layer]![k];
    const pastFree = diskPastFree[slot];
    const filesWritten = written[layer]![k]!;
    return track(
      (async (): Promise<CacheIn> => {
        let diskPast: Uint8Array | undefined;
        if (diskSeqs > 0) {
          const staging = diskPastStaging[slot]!;
          await filesWritten; // the previous token's rows are in the files
          await whenDone(pastFree); // the copy up out of this staging (two steps ago) has finished
          const reads: { path: string; position: number; bytes: number; dst: Uint8Array }[] = [];
          for (let d = 0; d < diskSeqs; d++) {
            for (const which of [0, 1] as const) {
              const at = (2 * d + which) * pastBytes;
              reads.push({
                ...disk.readSource(kvKey(layer, k, gpuSeqs + cpuSeqs + d, which), pastBytes),
                dst: staging.subarray(at, at + pastBytes),
              });
            }
          }
          const startMs = performance.now();
          await readFiles(reads);
          timeline.host("read-cache", "diskRead", diskSeqs * 2 * pastBytes, where, startMs, performance.now());
          diskPast = staging;
        }
        if (policy.cpuAttention) return diskPast ? { diskPast } : {};
        if (stagingFree !== undefined) native.streamWaitEvent(kvLoad, stagingFree);
        if (hostStored !== undefined) native.streamWaitEvent(kvLoad, hostStored);
        const arrived = timeline.device("load-cache", "h2d", kvLoad, offSeqs * 2 * pastBytes, where, () => {
          for (let c = 0; c < offSeqs; c++) {
            for (const which of [0, 1] as const) {
              const at = (2 * (c - cpuSeqs) + which) * pastBytes;
              const src =
                c < cpuSeqs ? hostPast(layer, k, c, which, pastBytes) : diskPast!.subarray(at, at + pastBytes);
              native.memcpyHtoD(kvStaging[slot]!.pointer + (2 * c + which) * pastBytes, src, kvLoad);
            }
          }
        });
        if (diskSeqs > 0) diskPastFree[slot] = arrived;
        return { arrived, ...(diskPast ? { diskPast } : {}) };
      })(),
    );
  };
  /** Appends the disk sequences' new rows (diskNewStaging[slot], k then v per sequence) to their files once `copied` has completed. */
  const appendRows = (layer: number, k: number, where: Where, slot: number, t: number, copied: number | undefined) => {
    const appended = t * rowBytes;
    const staging = diskNewStaging[slot]!;
    // The files' bookkeeping now, in schedule order (positions, disk peak); the bytes once they are in.
    const writes: { path: string; position: number; truncate: boolean; src: Uint8Array }[] = [];
    for (let d = 0; d < diskSeqs; d++) {
      for (const which of [0, 1] as const) {
        const at = (2 * d + which) * appended;
        writes.push({
          ...disk.appendTarget(kvKey(layer, k, gpuSeqs + cpuSeqs + d, which), appended),
          src: staging.subarray(at, at + appended),
        });
      }
    }
    const previous = written[layer]![k]!;
    const write = track(
      (async () => {
        await previous;
        await whenDone(copied); // the rows have landed in the pinned staging
        const startMs = performance.now();
        await writeFiles(writes);
        timeline.host("write-cache", "diskWrite", diskSeqs * 2 * appended, where, startMs, performance.now());
      })(),
    );
    written[layer]![k] = write;
    diskNewFree[slot] = write;
  };
  return { kvStagingFree, newRowsFree, diskNewFree, outUpFree, stored, hostPast, issueCache, appendRows };
}

export type CudaKv = ReturnType<typeof createCudaKv>;
