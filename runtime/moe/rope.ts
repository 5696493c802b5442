/**
 * Rotary position embedding in Hugging Face's Llama/Mixtral convention ("rotate_half"): within each
 * head of width d, element i < d/2 pairs with element i + d/2 and the pair is rotated by the angle
 * position · theta^(-2i/d). Mixtral uses theta = 1e6 (config rope_theta).
 */
export class Rope {
  private readonly inverseFrequency: Float64Array;

  constructor(
    readonly headDim: number,
    readonly theta: number,
  ) {
    if (headDim % 2 !== 0) throw new Error(`rotary embedding needs an even head width, got ${headDim}`);
    const half = headDim / 2;
    this.inverseFrequency = Float64Array.from({ length: half }, (_, i) => theta ** (-(2 * i) / headDim));
  }

  /** Rotates, in place, every head of `heads` in row `row` of x ([rows, heads · headDim]) for absolute position `position`. */
  apply(x: Float32Array, row: number, heads: number, position: number): void {
    const d = this.headDim;
    const half = d / 2;
    const base = row * heads * d;
    for (let i = 0; i < half; i++) {
      const angle = position * this.inverseFrequency[i]!;
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      for (let hd = 0; hd < heads; hd++) {
        const a = base + hd * d + i;
        const b = a + half;
        const x1 = x[a]!;
        const x2 = x[b]!;
        x[a] = x1 * cos - x2 * sin;
        x[b] = x2 * cos + x1 * sin;
      }
    }
  }
}
