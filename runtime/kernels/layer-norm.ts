/**
 * Row-wise LayerNorm (OPT is pre-LN: every attention and FFN block normalises its input first, and a
 * final LayerNorm precedes the LM head).
 *
 *   out[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) · gamma[c] + beta[c]
 *
 * with the biased variance, as torch.nn.LayerNorm. Mean and variance are accumulated in float64 (JS
 * numbers) in two passes, which avoids the cancellation of the one-pass E[x²] - E[x]² form.
 * `out` may be `x` (in place): each row is read completely before it is written.
 */
export function layerNorm(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
  eps = 1e-5,
): void {
  if (x.length < rows * cols || out.length < rows * cols)
    throw new RangeError(`layerNorm: x and out need rows*cols = ${rows * cols} values`);
  if (gamma.length < cols || beta.length < cols)
    throw new RangeError(`layerNorm: gamma and beta need cols = ${cols} values`);
  for (let r = 0; r < rows; r++) {
    const start = r * cols;
    const end = start + cols;
    let sum = 0;
    for (let i = start; i < end; i++) sum += x[i]!;
    const mean = sum / cols;
    let squares = 0;
    for (let i = start; i < end; i++) {
      const d = x[i]! - mean;
      squares += d * d;
    }
    const inverseStd = 1 / Math.sqrt(squares / cols + eps);
    for (let c = 0; c < cols; c++) out[start + c] = (x[start + c]! - mean) * inverseStd * gamma[c]! + beta[c]!;
  }
}
