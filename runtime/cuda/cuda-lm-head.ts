/** The input embedding and the LM head on the CUDA backend (streaming an off-device token table in chunks). */
import { OPT_POSITION_OFFSET } from "../kernels/embedding.js";
import { embedSequence, headFeatures, scoreHeadChunk } from "../opt-forward.js";
import { decodeRange, rowChunkBytes } from "../tensor-codec.js";
import type { CudaBuffers } from "./cuda-buffers.js";
import type { CudaRunContext } from "./cuda-context.js";
import type { CudaPlacement } from "./cuda-placement.js";
import type { Embeddings } from "./cuda-weights.js";

/** The input embedding and the LM head on the CUDA backend. */
export function createCudaLmHead(ctx: CudaRunContext, placed: CudaPlacement, buffers: CudaBuffers) {
  const { native, model, s, h, L, vocab, d, gbs, nb, timeline, compute, weightsStream } = ctx;
  const { table } = placed;
  const {
    ops,
    features,
    nextIds,
    nextIdsHost,
    streamedHead,
    rowsPerChunk,
    logits,
    bestLogits,
    headSlots,
    headDequant,
    working,
  } = buffers;
  /** Batch k's input hidden states (fp16, at `hiddenAt`) on the compute stream; returns the event after them. */
  const embed = (e: Embeddings, ids: Int32Array, token: number, k: number, hiddenAt: number): number => {
    const t = token === 0 ? s : 1;
    const start = token === 0 ? 0 : s + token - 1;
    const positions = new Int32Array(t);
    for (let i = 0; i < t; i++) positions[i] = start + i + OPT_POSITION_OFFSET;
    native.memcpyHtoD(working.positions.pointer, positions, compute);
    const positionTable = e.at.get("model.decoder.embed_positions.weight")!;
    const rows = new Float32Array(t * d);
    return timeline.device("compute", "gpu", compute, 0, { token, layer: -1, batch: k }, () => {
      for (let q = 0; q < gbs; q++) {
        const seqIds = ids.subarray(q * t, (q + 1) * t);
        for (const id of seqIds)
          if (id < 0 || id >= vocab) throw new Error(`token id ${id} outside the vocabulary (0..${vocab - 1})`);
        if (table.tier === "gpu" && table.encoding === "f16") {
          native.memcpyHtoD(working.ids.pointer, seqIds.slice(), compute);
          native.embedding(table.device!.pointer, working.ids.pointer, t, d, vocab, working.x.pointer, compute);
        } else {
          // The lookup happens where the table is: rows gathered on the host, sent up in fp32.
          for (let i = 0; i < t; i++)
            decodeRange(
              e.hostTable!,
              table.encoding,
              table.values,
              seqIds[i]! * d,
              d,
              rows.subarray(i * d, (i + 1) * d),
            );
          native.memcpyHtoD(working.x.pointer, rows, compute);
        }
        native.embedding(
          positionTable,
          working.positions.pointer,
          t,
          h,
          model.maxPositions + OPT_POSITION_OFFSET,
          working.y.pointer,
          compute,
        );
        // The rows were gathered into x itself (the CUDA backend runs no embedding projection).
        embedSequence(
          ops,
          working.x.pointer,
          working.y.pointer,
          undefined,
          t,
          d,
          h,
          working.x.pointer,
          hiddenAt + q * t * h * 2,
        );
      }
    });
  };
  const lmFeatures = (e: Embeddings, token: number, k: number, hiddenAt: number) => {
    const t = token === 0 ? s : 1;
    timeline.device("lm-head", "gpu", compute, 0, { token, layer: L, batch: k }, () => {
      const gamma = e.vectors.get("model.decoder.final_layer_norm.weight")!;
      const beta = e.vectors.get("model.decoder.final_layer_norm.bias")!;
      const batchFeatures = features.pointer + k * gbs * d * 4;
      headFeatures(
        ops,
        hiddenAt,
        gbs,
        t,
        h,
        d,
        gamma,
        beta,
        undefined,
        working.lastRows.pointer,
        batchFeatures,
        batchFeatures,
      );
    });
  };
  const headFree: (number | undefined)[] = [undefined, undefined];
  const finishHeads = (e: Embeddings, token: number): Int32Array[] => {
    const where = (batch: number) => ({ token, layer: L, batch });
    /** Batch k's features against token-table rows firstRow.. (fp16 at `rowsAt`), merged into its running best. */
    const score = (k: number, rowsAt: number, firstRow: number, rows: number) =>
      scoreHeadChunk(
        ops,
        features.pointer + k * gbs * d * 4,
        gbs,
        d,
        rowsAt,
        firstRow,
        rows,
        logits.pointer,
        bestLogits.pointer + k * gbs * 4,
        nextIds.pointer + k * gbs * 4,
      );
    if (!streamedHead) {
      for (let k = 0; k < nb; k++) {
        timeline.device("lm-head", "gpu", compute, 0, where(k), () => score(k, table.device!.pointer, 0, vocab));
      }
    } else {
      let chunkIndex = 0;
      for (let firstRow = 0; firstRow < vocab; firstRow += rowsPerChunk, chunkIndex++) {
        const rows = Math.min(rowsPerChunk, vocab - firstRow);
        const slot = chunkIndex % 2;
        const source = table.tier === "gpu" ? undefined : e.hostTable!;
        if (headFree[slot] !== undefined) native.streamWaitEvent(weightsStream, headFree[slot]!);
        let chunkPointer = headSlots[slot]!.pointer;
        let arrived: number;
        if (source) {
          const parts = rowChunkBytes(source, table.encoding, table.values, d, firstRow, rows);
          arrived = timeline.device(
            "load-head",
            "h2d",
            weightsStream,
            parts.reduce((sum, p) => sum + p.byteLength, 0),
            where(-1),
            () => {
              let offset = 0;
              for (const p of parts) {
                native.memcpyHtoD(chunkPointer + offset, p, weightsStream);
                offset += p.byteLength;
              }
            },
          );
        } else {
          // A resident 4-bit table: its chunk's codes, scales and minimums gathered into one compact tensor.
          const groups = Math.ceil(table.values / 64);
          const g0 = (firstRow * d) / 64;
          const g1 = ((firstRow + rows) * d) / 64;
          const base = table.device!.pointer;
          arrived = timeline.device("lm-head", "gpu", weightsStream, 0, where(-1), () => {
            native.memcpyDtoD(chunkPointer, base + g0 * 32, (g1 - g0) * 32, weightsStream);
            native.memcpyDtoD(chunkPointer + (g1 - g0) * 32, base + groups * 32 + g0 * 2, (g1 - g0) * 2, weightsStream);
            native.memcpyDtoD(chunkPointer + (g1 - g0) * 34, base + groups * 34 + g0 * 2, (g1 - g0) * 2, weightsStream);
          });
        }
        native.streamWaitEvent(compute, arrived);
        if (table.encoding === "q4") {
          ops.dequantizeF16(chunkPointer, rows * d, headDequant!.pointer);
          chunkPointer = headDequant!.pointer;
        }
        for (let k = 0; k < nb; k++) {
          // One chunk's logits at a time; each row's running best merges as the CPU backend's does.
          timeline.device("lm-head", "gpu", compute, 0, where(k), () => score(k, chunkPointer, firstRow, rows));
        }
        headFree[slot] = timeline.mark(compute);
      }
    }
    for (let k = 0; k < nb; k++) {
      timeline.device("store-tokens", "d2h", compute, gbs * 4, where(k), () =>
        native.memcpyDtoH(nextIdsHost.subarray(k * gbs, (k + 1) * gbs), nextIds.pointer + k * gbs * 4, compute),
      );
    }
    native.streamSynchronize(compute);
    return Array.from({ length: nb }, (_, k) => nextIdsHost.slice(k * gbs, (k + 1) * gbs));
  };

  return { embed, lmFeatures, finishHeads };
}
