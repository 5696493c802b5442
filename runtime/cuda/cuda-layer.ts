/**
 * One GPU batch through one decoder layer on the CUDA backend: fp32 activations in the working space,
 * KV rows encoded as stored and decoded before attention. A CPU-attention step has the host attend for
 * the off-GPU sequences between the layer's two halves.
 */
import { CpuDeviceOps } from "../cpu-device-ops.js";
import {
  attendOverStoredRows,
  attendSequence,
  attentionInputs,
  attentionOutputs,
  encodeNewRows,
  layerChunk,
  layerWeightsOf,
  type OptLayerShape,
} from "../opt-forward.js";
import type { CudaBuffers } from "./cuda-buffers.js";
import type { CudaRunContext } from "./cuda-context.js";
import type { CudaBufferTypes } from "./cuda-device-ops.js";
import type { CacheIn, CudaKv } from "./cuda-kv.js";
import type { ReadyWeights } from "./cuda-weights.js";

/** One GPU batch through one decoder layer on the CUDA backend (with CPU attention, the host attends between its two halves). */
export function createCudaLayer(ctx: CudaRunContext, buffers: CudaBuffers, kv: CudaKv) {
  const {
    native,
    s,
    h,
    f,
    nh,
    hd,
    gbs,
    maxContext,
    kvEncoding,
    rowBytes,
    gpuSeqs,
    offSeqs,
    cpuSeqs,
    diskSeqs,
    timeline,
    whenDone,
    compute,
    kvLoad,
    kvStore,
  } = ctx;
  const {
    ops,
    deviceCache,
    hostCache,
    kvStaging,
    newRows,
    diskNewStaging,
    hostAttends,
    qDown,
    rowsDown,
    outUp,
    hostK,
    hostV,
    hostScratch,
    chunkOf,
    working,
  } = buffers;
  const { kvStagingFree, newRowsFree, diskNewFree, outUpFree, stored, hostPast, appendRows } = kv;
  /** CPU attention: the forward pass's operations on the host. */
  const hostOps = new CpuDeviceOps(hostScratch ? { attention: hostScratch } : {});
  const shape: OptLayerShape = { h, f, heads: nh, headDim: hd };
  const deviceWork = { kAll: working.kAll.pointer, vAll: working.vAll.pointer };

  /**
   * Batch k of `layer` at `token`, its hidden state (fp16 at `hiddenAt`) updated in place; returns the
   * event after its compute. A CPU-attention step has the host attend for the off-GPU sequences
   * between the layer's two halves.
   */
  const computeStep = async (
    ready: ReadyWeights,
    layer: number,
    k: number,
    token: number,
    slot: number,
    cacheIn: CacheIn | undefined,
    hiddenAt: number,
  ): Promise<number> => {
    const where = { token, layer, batch: k };
    const t = token === 0 ? s : 1;
    const past = token === 0 ? 0 : s + token - 1;
    const pastBytes = past * rowBytes;
    const ctx = past + t;
    const weights = layerWeightsOf<CudaBufferTypes>(ready.matrices, ready.vectors, layer);
    // As the CPU runner: off-GPU sequences attend on the host in decode steps only.
    const onHost = hostAttends && token > 0;
    if (cacheIn?.arrived !== undefined) native.streamWaitEvent(compute, cacheIn.arrived);
    if (newRowsFree[slot] !== undefined) native.streamWaitEvent(compute, newRowsFree[slot]!);
    const chunk = chunkOf(t, ctx);
    if (onHost && chunk !== gbs) throw new Error("internal: a CPU-attention step computes its batch in one chunk");
    const { x, y } = working;
    /** The working space for a chunk of `count` sequences: q, k, v and o side by side, the FFN's intermediate over them. */
    const at = (count: number) => {
      const r = count * t;
      const q = working.shared.pointer,
        kk = q + r * h * 4,
        vv = kk + r * h * 4,
        o = vv + r * h * 4;
      return { r, x: x.pointer, y: y.pointer, q, k: kk, v: vv, o, ffn: q };
    };
    const hiddenOf = (first: number) => hiddenAt + first * t * h * 2;
    const beforeAttention = (first: number, count: number) => {
      const b = at(count);
      attentionInputs(ops, weights, shape, hiddenOf(first), b.r, b);
    };
    /** Where sequence `seq`'s K (0) or V (1) rows are: past ones and the slot for its new ones. */
    const rowsAt = (seq: number, which: 0 | 1) => {
      if (seq < gpuSeqs) {
        const base = deviceCache[layer]![k]!.pointer + (seq * 2 + which) * maxContext * rowBytes;
        return { past: base, fresh: base + past * rowBytes };
      }
      const local = seq - gpuSeqs;
      // Past rows were staged by issueCache (none before the first decode step).
      return {
        past: past > 0 ? kvStaging[slot]!.pointer + (2 * local + which) * past * rowBytes : 0,
        fresh: newRows[slot]!.pointer + (2 * local + which) * t * rowBytes,
      };
    };
    /** Attention on the device for sequence `seq`, row c of a chunk of `count` sequences. */
    const deviceAttention = (seq: number, c: number, count: number) =>
      attendSequence(ops, shape, kvEncoding, at(count), c, t, past, rowsAt(seq, 0), rowsAt(seq, 1), deviceWork);
    const afterAttention = (first: number, count: number) => {
      const b = at(count);
      attentionOutputs(ops, weights, shape, b.r, b, hiddenOf(first));
    };

    let done: number;
    if (!onHost) {
      done = timeline.device("compute", "gpu", compute, 0, where, () => {
        for (let first = 0; first < gbs; first += chunk) {
          const count = Math.min(chunk, gbs - first);
          layerChunk(ops, weights, shape, hiddenOf(first), count, t, at(count), (c) =>
            deviceAttention(first + c, c, count),
          );
        }
      });
    } else {
      const all = at(gbs);
      const { q, o } = all;
      let qkvReady = 0;
      timeline.device("compute", "gpu", compute, 0, where, () => {
        beforeAttention(0, gbs);
        // The off-GPU sequences' new rows, encoded as they will be stored; then the GPU sequences attend.
        const freshRows = (c: number, which: 0 | 1) => ({
          past: 0,
          fresh: newRows[slot]!.pointer + (2 * c + which) * t * rowBytes,
        });
        for (let c = 0; c < offSeqs; c++)
          encodeNewRows(ops, shape, kvEncoding, all, gpuSeqs + c, t, freshRows(c, 0), freshRows(c, 1));
        qkvReady = timeline.mark(compute);
        for (let seq = 0; seq < gpuSeqs; seq++) deviceAttention(seq, seq, gbs);
      });
      // q (fp32), k and v (as stored) of each off-GPU sequence down, recorded as the CPU runner does.
      native.streamWaitEvent(kvStore, qkvReady);
      let sent = 0;
      for (let c = 0; c < offSeqs; c++) {
        sent = timeline.device("send-qkv", "d2h", kvStore, 3 * t * h * 2, where, () => {
          native.memcpyDtoH(qDown!.subarray(c * t * h, (c + 1) * t * h), q + (gpuSeqs + c) * t * h * 4, kvStore);
          native.memcpyDtoH(
            rowsDown!.subarray(2 * c * t * rowBytes, (2 * c + 2) * t * rowBytes),
            newRows[slot]!.pointer + 2 * c * t * rowBytes,
            kvStore,
          );
        });
      }
      newRowsFree[slot] = sent;
      const out = outUp[slot]!;
      await whenDone(sent); // q, k and v are in host memory
      await whenDone(stored[layer]![k]); // the prompt's rows have landed in the host cache
      await whenDone(outUpFree[slot]); // the copy up out of this output buffer (two steps ago) has finished
      for (let c = 0; c < offSeqs; c++) {
        const startMs = performance.now();
        const fresh = (which: 0 | 1) =>
          rowsDown!.subarray((2 * c + which) * t * rowBytes, (2 * c + which + 1) * t * rowBytes);
        const pastRows = (which: 0 | 1) =>
          c < cpuSeqs
            ? hostPast(layer, k, c, which, pastBytes)
            : cacheIn!.diskPast!.subarray(
                (2 * (c - cpuSeqs) + which) * pastBytes,
                (2 * (c - cpuSeqs) + which + 1) * pastBytes,
              );
        const rows = (which: 0 | 1) => ({ past: pastRows(which), fresh: fresh(which) });
        attendOverStoredRows(
          hostOps,
          shape,
          kvEncoding,
          qDown!.subarray(c * t * h),
          rows(0),
          rows(1),
          out.subarray(c * t * h),
          t,
          past,
          { kAll: hostK!, vAll: hostV! },
        );
        timeline.host("cpu-attention", "cpu", 0, where, startMs, performance.now());
      }
      // The new rows: the host writes CPU sequences' into its cache and appends disk sequences' to their files.
      for (let c = 0; c < cpuSeqs; c++) {
        for (const which of [0, 1] as const)
          hostCache[layer]![k]!.set(
            rowsDown!.subarray((2 * c + which) * t * rowBytes, (2 * c + which + 1) * t * rowBytes),
            (c * 2 + which) * maxContext * rowBytes + pastBytes,
          );
      }
      if (diskSeqs > 0) {
        await diskNewFree[slot]; // the staging's previous rows are in their files
        diskNewStaging[slot]!.set(rowsDown!.subarray(2 * cpuSeqs * t * rowBytes, 2 * offSeqs * t * rowBytes));
        appendRows(layer, k, where, slot, t, undefined);
      }
      // The attention output back up, then the rest of the layer.
      let returned = 0;
      for (let c = 0; c < offSeqs; c++) {
        returned = timeline.device("return-attention", "h2d", kvLoad, t * h * 2, where, () =>
          native.memcpyHtoD(o + (gpuSeqs + c) * t * h * 4, out.subarray(c * t * h, (c + 1) * t * h), kvLoad),
        );
      }
      outUpFree[slot] = returned;
      native.streamWaitEvent(compute, returned);
      done = timeline.device("compute", "gpu", compute, 0, where, () => afterAttention(0, gbs));
    }
    if (kvStaging.length > 0) kvStagingFree[slot] = done;
    if (offSeqs > 0 && !onHost) {
      // New rows down: CPU sequences' into the host cache, disk sequences' into pinned staging and on to their files.
      const appended = t * rowBytes;
      if (diskSeqs > 0) await diskNewFree[slot]; // the staging's previous rows are in their files
      native.streamWaitEvent(kvStore, done);
      const end = timeline.device("store-cache", "d2h", kvStore, offSeqs * 2 * appended, where, () => {
        for (let c = 0; c < offSeqs; c++) {
          for (const which of [0, 1] as const) {
            const hostAt = (c * 2 + which) * maxContext * rowBytes + pastBytes;
            const stagedAt = (2 * (c - cpuSeqs) + which) * appended;
            const dst =
              c < cpuSeqs
                ? hostCache[layer]![k]!.subarray(hostAt, hostAt + appended)
                : diskNewStaging[slot]!.subarray(stagedAt, stagedAt + appended);
            native.memcpyDtoH(dst, newRows[slot]!.pointer + (2 * c + which) * appended, kvStore);
          }
        }
      });
      if (cpuSeqs > 0) stored[layer]![k] = end;
      newRowsFree[slot] = end;
      if (diskSeqs > 0) appendRows(layer, k, where, slot, t, end);
    }
    return done;
  };

  return { computeStep };
}
