/** ReLU in place: OPT's FFN activation between fc1 and fc2. NaN stays NaN (as torch.relu). */
export function reluInPlace(x: Float32Array): void {
  const length = x.length;
  for (let i = 0; i < length; i++) if (x[i]! < 0) x[i] = 0;
}
