/**
 * Argmax over the last dimension, for greedy decoding. Ties go to the lowest index (strict `>`),
 * matching torch.argmax on CPU. NaNs are skipped (a row of only NaNs gives 0).
 */

/** Index (relative to `offset`) of the largest of x[offset .. offset + length). */
export function argmax(x: Float32Array, offset = 0, length = x.length - offset): number {
  if (length <= 0 || offset < 0 || offset + length > x.length)
    throw new RangeError(`argmax: span ${offset}..${offset + length} invalid for ${x.length} values`);
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = x[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Argmax of each of `rows` rows of `cols` values (e.g. logits [tokens, vocab]). */
export function argmaxRows(
  x: Float32Array,
  rows: number,
  cols: number,
  out: Int32Array = new Int32Array(rows),
): Int32Array {
  if (x.length < rows * cols)
    throw new RangeError(`argmaxRows: x has ${x.length} values, needs rows*cols = ${rows * cols}`);
  for (let r = 0; r < rows; r++) out[r] = argmax(x, r * cols, cols);
  return out;
}
