/** RMSNorm (Llama/Mixtral): out = x / sqrt(mean(x²) + eps) · weight, per row; the mean is accumulated in float64. */
export function rmsNorm(
  x: Float32Array,
  weight: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += x[base + c]! * x[base + c]!;
    const scale = 1 / Math.sqrt(sum / cols + eps);
    for (let c = 0; c < cols; c++) out[base + c] = x[base + c]! * scale * weight[c]!;
  }
}
