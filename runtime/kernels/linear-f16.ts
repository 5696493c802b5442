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
  const decodeRows = (n0: number, rows: number, tile: Float32Array) =>
    fromFloat16Array(w.subarray(n0 * k, (n0 + rows) * k), tile);
  linearByTiles(x, decodeRows, bias, out, { m, k, n }, { tile: tileScratch, out: tileOut });
}

/**
 * out[m, n] = x[m, k] · wᵀ + bias with w given by `decodeRows(n0, rows, tile)`, which writes weight rows
 * n0 .. n0 + rows − 1 (rows × k values) to `tile` as fp32: any stored format, decoded a tile at a time
 * into `scratch` (linearScratchLength's sizes).
 */
export function linearByTiles(
  x: Float32Array,
  decodeRows: (n0: number, rows: number, tile: Float32Array) => void,
  bias: Float32Array | undefined,
  out: Float32Array,
  { m, k, n }: { readonly m: number; readonly k: number; readonly n: number },
  scratch: { readonly tile: Float32Array; readonly out: Float32Array },
): void {
  for (let n0 = 0; n0 < n; n0 += LINEAR_TILE_ROWS) {
    const rows = Math.min(LINEAR_TILE_ROWS, n - n0);
    const tile = scratch.tile.subarray(0, rows * k);
    decodeRows(n0, rows, tile);
    const part = scratch.out.subarray(0, m * rows);
    matmulBias(x, tile, bias?.subarray(n0, n0 + rows), part, m, k, rows);
    for (let i = 0; i < m; i++) out.set(part.subarray(i * rows, (i + 1) * rows), i * n + n0);
  }
}
