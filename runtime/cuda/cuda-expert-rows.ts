/**
 * A layer's routed expert rows where they live on the CUDA device (cuda-mixtral-decoder.ts): the router
 * input and the experts' outputs by rank stay in device memory, so per layer only the gate logits come
 * back to the host (and the router input itself only where the executor reads it: speculative prefetch).
 *
 * - A device expert (cuda-expert-memory.ts, `device`): its token rows are copied device to device from
 *   the router input into the experts' input block, its outputs device to device into their (row,
 *   rank) slots of the outputs by rank that spw_moe_combine reads. Nothing crosses the bus.
 * - A CPU-computed miss (ExpertIo's gather and scatter): only its own rows come back (from the host
 *   copy of the router input when there is one, else row by row from the device), and only its
 *   outputs go up, row by row, into their slots.
 */
import { type ExpertIo, routedRows } from "../moe/mixtral-model.js";
import type { DecoderTracking } from "./decoder-tracking.js";
import type { CudaNative } from "./native-api.js";

/** What a device executor reads of the rows (cuda-expert-memory.ts). */
export interface DeviceExpertRows {
  /** The router input [rows, hidden] fp32 on the device. */
  readonly routerInput: number;
  /** The outputs by rank [rows, k, hidden] fp32 on the device. */
  readonly outputs: number;
  /** The token rows routed to `expert` (row order) and the (row, rank) slot of each: row * k + rank. */
  rows(expert: number): { readonly rows: readonly number[]; readonly slots: readonly number[] };
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
  shape: { readonly h: number; readonly k: number },
  device: { readonly routerInput: number; readonly outputs: number },
  /** Pinned: a CPU miss's rows [≤ m, h] and its outputs' staging [m · k, h] (reused after the layer's synchronisation). */
  pinned: { readonly rows: Float32Array; readonly outputs: Float32Array },
  at: ExpertRowsLayer,
): CudaExpertIo {
  const { h, k } = shape;
  const { layer, m, chosen, hostRouterInput } = at;
  const rowsOf = (expert: number) => {
    const { rows, ranks } = routedRows(layer, m, k, chosen, expert);
    return { rows, slots: rows.map((row, i) => row * k + ranks[i]!) };
  };
  const rowBytes = h * 4;
  return {
    device: { ...device, rows: rowsOf },
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
