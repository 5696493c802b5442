/**
 * Causal grouped-query attention of one sequence over its KV cache (Mixtral: 32 query heads share 8
 * key/value heads; query head hd reads key/value head floor(hd / (numHeads / numKvHeads))).
 *
 * q: [t, numHeads · d] (already rotated); kCache, vCache: [≥ past + t, numKvHeads · d] with the t new
 * rows already appended; out: [t, numHeads · d]. New token i sits at position past + i and attends to
 * rows 0 .. past + i. Scores are scaled by d^-0.5; the softmax subtracts the row maximum.
 */
export function gqaAttention(
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  out: Float32Array,
  t: number,
  past: number,
  numHeads: number,
  numKvHeads: number,
  d: number,
  scores: Float32Array,
): void {
  const group = numHeads / numKvHeads;
  const qWidth = numHeads * d;
  const kvWidth = numKvHeads * d;
  const scale = 1 / Math.sqrt(d);
  for (let i = 0; i < t; i++) {
    const visible = past + i + 1;
    for (let hd = 0; hd < numHeads; hd++) {
      const qBase = i * qWidth + hd * d;
      const kvOffset = Math.floor(hd / group) * d;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        const kBase = j * kvWidth + kvOffset;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[qBase + c]! * kCache[kBase + c]!;
        const s = dot * scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        const e = Math.exp(scores[j]! - max);
        scores[j] = e;
        sum += e;
      }
      const outBase = i * qWidth + hd * d;
      out.fill(0, outBase, outBase + d);
      for (let j = 0; j < visible; j++) {
        const p = scores[j]! / sum;
        const vBase = j * kvWidth + kvOffset;
        for (let c = 0; c < d; c++) out[outBase + c]! += p * vCache[vBase + c]!;
      }
    }
  }
}
