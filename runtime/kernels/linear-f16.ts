/**
 * A linear layer with fp16 weights: out[m, n] = x[m, k] · w[n, k]ᵀ + bias. The weights stay fp16 in
 * device memory; each call decodes them a tile of rows at a time into a small fp32 scratch and runs the
 * fp32 GEMM on the tile, as a GPU kernel would dequantise in registers.
 */
import { fromFloat16Array } from "../fp16.js";
import { matmulBias } from "./matmul.js";

/** Weight rows decoded per GEMM call: small, so the decode scratch stays a sliver of working space. */
export const LINEAR_TILE_ROWS = 16;

/** Float32 values of scratch (decoded tile) and tile output that linearF16 needs. */
export function linearScratchLength(m: number, k: number): { tile: number; out: number } {
  return { tile: LINEAR_TILE_ROWS * k, out: m * LINEAR_TILE_ROWS };
}

export function linearF16(
  x: Float32Array,
  w: Uint16Array,
  bias: Float32Array | undefined,
  out: Float32Array,
  m: number,
  k: number,
  n: number,
  tileScratch: Float32Array,
  tileOut: Float32Array,
): void {
  for (let n0 = 0; n0 < n; n0 += LINEAR_TILE_ROWS) {
    const rows = Math.min(LINEAR_TILE_ROWS, n - n0);
    const tile = tileScratch.subarray(0, rows * k);
    fromFloat16Array(w.subarray(n0 * k, (n0 + rows) * k), tile);
    const part = tileOut.subarray(0, m * rows);
    matmulBias(x, tile, bias?.subarray(n0, n0 + rows), part, m, k, rows);
    for (let i = 0; i < m; i++) out.set(part.subarray(i * rows, (i + 1) * rows), i * n + n0);
  }
}
