/** SwiGLU's gate: gate[i] = silu(gate[i]) · up[i], with silu(x) = x / (1 + e^-x). */
export function siluGateInPlace(gate: Float32Array, up: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}
