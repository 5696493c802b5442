/**
 * A layer's routed expert rows where they live on the CUDA device (cuda-mixtral-decoder.ts): the router
 * input and the experts' outputs by rank stay in device memory, so per layer only the gate logits come
 * back to the host (and the router input itself only where the executor reads it: speculative prefetch).
 *
 * - A device expert (cuda-expert-memory.ts, `device`): its token rows are gathered on the device from
 *   the router input into the experts' input block by index (spw_gather_rows), its outputs scattered
 *   into their (row, rank) slots of the outputs by rank that spw_moe_combine reads (spw_scatter_rows).
 *   The layer's indices (two int32 per routed row: router input row and slot, laid out expert by
 *   expert) go up once, before the layer's first device expert; nothing else crosses the bus.
 * - A CPU-computed miss (ExpertIo's gather and scatter): only its own rows come back (from the host
 *   copy of the router input when there is one, else row by row from the device), and only its
 *   outputs go up, row by row, into their slots.
 */
import { type ExpertIo, routedRows } from "../moe/mixtral-model.js";
import type { DecoderTracking } from "./decoder-tracking.js";
import type { CudaNative } from "./native-api.js";

/** What a device executor reads of the rows (cuda-expert-memory.ts: spw_gather_rows, spw_scatter_rows). */
export interface DeviceExpertRows {
  /** The router input [routerRows, hidden] fp32 on the device. */
  readonly routerInput: number;
  readonly routerRows: number;
  /** The outputs by rank [slots, hidden] fp32 on the device (slot row * k + rank). */
  readonly outputs: number;
  readonly slots: number;
  /**
   * `expert`'s token rows: `count` entries from `offset` of two int32 index arrays on the device, the
   * router input rows (`sourceRows`, row order) and the output slot of each (`outputSlots`).
   */
  rows(expert: number): {
    readonly offset: number;
    readonly count: number;
    readonly sourceRows: number;
    readonly outputSlots: number;
  };
}

/** An ExpertIo with the device's rows (cuda-expert-memory.ts runs device experts from `device`). */
export interface CudaExpertIo extends ExpertIo {
  readonly device: DeviceExpertRows;
}

export const isCudaExpertIo = (io: ExpertIo | undefined): io is CudaExpertIo =>
  io !== undefined && "device" in io && typeof (io as CudaExpertIo).device === "object";

/** Per layer: `layer`, `m` token rows, the routing `chosen` [m, k], and the host router input when it came back. */
export interface ExpertRowsLayer {
  readonly layer: number;
  readonly m: number;
  readonly chosen: Int32Array;
  readonly hostRouterInput: Float32Array | undefined;
}

export function cudaExpertRows(
  native: CudaNative,
  stream: number,
  tracking: DecoderTracking,
  shape: { readonly h: number; readonly k: number; readonly experts: number },
  /** Device: the router input, the outputs by rank, and the index arrays [2 · m · k] int32. */
  device: { readonly routerInput: number; readonly outputs: number; readonly indices: number },
  /**
   * Pinned: a CPU miss's rows [≤ m, h], its outputs' staging [m · k, h] and the indices' [2 · m · k]
   * (reused after the next layer's synchronisation).
   */
  pinned: { readonly rows: Float32Array; readonly outputs: Float32Array; readonly indices: Int32Array },
  at: ExpertRowsLayer,
): CudaExpertIo {
  const { h, k, experts } = shape;
  const { layer, m, chosen, hostRouterInput } = at;
  const routed = m * k;
  // The layout by expert: expert e's rows from offsets[e], in row order.
  const offsets = new Int32Array(experts + 1);
  for (let i = 0; i < routed; i++) offsets[chosen[i]! + 1]!++;
  for (let e = 0; e < experts; e++) offsets[e + 1]! += offsets[e]!;
  let uploaded = false;
  const upload = () => {
    const next = offsets.slice(0, experts);
    for (let slot = 0; slot < routed; slot++) {
      const p = next[chosen[slot]!]!++;
      pinned.indices[p] = Math.floor(slot / k);
      pinned.indices[routed + p] = slot;
    }
    tracking.copy("h2d", layer, 2 * routed * 4, () =>
      native.memcpyHtoD(device.indices, pinned.indices.subarray(0, 2 * routed), stream),
    );
    uploaded = true;
  };
  const rowsOf = (expert: number) => {
    const { rows, ranks } = routedRows(layer, m, k, chosen, expert);
    return { rows, slots: rows.map((row, i) => row * k + ranks[i]!) };
  };
  const rowBytes = h * 4;
  return {
    device: {
      routerInput: device.routerInput,
      routerRows: m,
      outputs: device.outputs,
      slots: routed,
      rows(expert) {
        if (!uploaded) upload();
        const count = offsets[expert + 1]! - offsets[expert]!;
        if (count === 0) throw new Error(`layer ${layer}: expert ${expert} was run but no token routes to it`);
        return {
          offset: offsets[expert]!,
          count,
          sourceRows: device.indices,
          outputSlots: device.indices + routed * 4,
        };
      },
    },
    gather(expert) {
      const { rows } = rowsOf(expert);
      const input = pinned.rows.subarray(0, rows.length * h);
      if (hostRouterInput) {
        for (const [i, row] of rows.entries()) input.set(hostRouterInput.subarray(row * h, (row + 1) * h), i * h);
      } else {
        tracking.copy("d2h", layer, rows.length * rowBytes, () => {
          for (const [i, row] of rows.entries())
            native.memcpyDtoH(input.subarray(i * h, (i + 1) * h), device.routerInput + row * rowBytes, stream);
        });
        native.streamSynchronize(stream);
      }
      return { input, rows: rows.length };
    },
    scatter(expert, output) {
      const { slots } = rowsOf(expert);
      tracking.copy("h2d", layer, slots.length * rowBytes, () => {
        for (const [i, slot] of slots.entries()) {
          const staged = pinned.outputs.subarray(slot * h, (slot + 1) * h);
          staged.set(output.subarray(i * h, (i + 1) * h));
          native.memcpyHtoD(device.outputs + slot * rowBytes, staged, stream);
        }
      });
    },
  };
}
