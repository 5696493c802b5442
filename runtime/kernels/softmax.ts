/**
 * Numerically stable softmax in place: subtracting the row maximum keeps exp() from overflowing and
 * leaves the result unchanged. The normalising sum is accumulated in float64.
 */

/** Softmax of x[offset .. offset + length) in place. A span with no finite maximum (all -∞) becomes zeros. */
export function softmaxSpanInPlace(x: Float32Array, offset: number, length: number): void {
  const end = offset + length;
  if (offset < 0 || end > x.length) throw new RangeError(`softmax: span ${offset}..${end} outside ${x.length} values`);
  let max = -Infinity;
  for (let i = offset; i < end; i++) if (x[i]! > max) max = x[i]!;
  if (max === -Infinity) {
    // Fully masked: there is nothing to attend to; zeros are safer than the NaNs exp(-∞ - -∞) gives.
    x.fill(0, offset, end);
    return;
  }
  let sum = 0;
  for (let i = offset; i < end; i++) {
    const e = Math.exp(x[i]! - max);
    x[i] = e;
    sum += e;
  }
  const inverse = 1 / sum;
  for (let i = offset; i < end; i++) x[i] = x[i]! * inverse;
}

/** Softmax of each of `rows` rows of `cols` values, in place. */
export function softmaxRowsInPlace(x: Float32Array, rows: number, cols: number): void {
  if (x.length < rows * cols)
    throw new RangeError(`softmax: x has ${x.length} values, needs rows*cols = ${rows * cols}`);
  for (let r = 0; r < rows; r++) softmaxSpanInPlace(x, r * cols, cols);
}
