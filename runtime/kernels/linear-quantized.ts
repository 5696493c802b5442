/**
 * A linear layer whose weight is stored group-wise quantised (runtime/moe/expert-quantization.ts, any
 * of 16, 8, 4, 3, 2 bits): out[m, n] = x[m, k] · w[n, k]ᵀ. The weight stays packed; each call
 * dequantises a tile of LINEAR_TILE_ROWS rows at a time into the fp32 scratch and runs the fp32 GEMM on
 * it, as linearF16 does for fp16 weights (and, at 16 bits, with the same values and so the same result).
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import { dequantizeGroupwise } from "../moe/expert-quantization.js";
import { linearByTiles, linearF16 } from "./linear-f16.js";

/** The weight [n, k] stored at `bits`, and the product's rows m. */
export interface QuantizedLinearShape {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly bits: ExpertBits;
}

export function linearQuantized(
  x: Float32Array,
  stored: Uint8Array,
  out: Float32Array,
  shape: QuantizedLinearShape,
  scratch: { readonly tile: Float32Array; readonly out: Float32Array },
  bias?: Float32Array,
): void {
  const { k, n, bits } = shape;
  const decodeRows = (n0: number, rows: number, tile: Float32Array) =>
    dequantizeGroupwise(stored, bits, n * k, n0 * k, (n0 + rows) * k, tile);
  linearByTiles(x, decodeRows, bias, out, shape, scratch);
}

/**
 * A linear layer over a weight as the MoE runtime holds it: a Uint16Array of fp16 values (16 bits) or a
 * view of its stored group-wise bytes (below 16); fp16 weights take linearF16, the others linearQuantized.
 */
export function linearAtBits(
  x: Float32Array,
  w: Uint16Array,
  bias: Float32Array | undefined,
  out: Float32Array,
  shape: QuantizedLinearShape,
  scratch: { readonly tile: Float32Array; readonly out: Float32Array },
): void {
  const { m, k, n, bits } = shape;
  if (bits === 16) linearF16(x, w, bias, out, m, k, n, scratch.tile, scratch.out);
  else linearQuantized(x, new Uint8Array(w.buffer, w.byteOffset, w.byteLength), out, shape, scratch, bias);
}
