/**
 * Multi-head causal self-attention of one OPT layer over a KV cache, for one sequence.
 *
 * Layout: hidden size h = numHeads · headDim; head `hd` owns columns hd·headDim .. (hd+1)·headDim of
 * q, the caches and out (the split of OPTAttention._shape). The caches hold past + t rows: the `past`
 * tokens seen before, then the t new ones, whose k and v the caller has already appended.
 *
 * Scaling: `q` is the raw q_proj output (bias included, NOT scaled). As OPTAttention does
 * (`q_proj(x) * scaling`), the kernel multiplies q by headDim^-0.5 once, before the product with K,
 * rather than scaling each of the ctx scores.
 *
 * New token i sits at absolute position past + i and attends to cache rows 0 .. past + i (causal).
 *
 * Two paths give the same result:
 * - direct loops, for decoding (t small): per new token, dot products of each head's q slice with
 *   the same slice of every visible K row (rows read in order, all heads at once), softmax, then the
 *   weighted sum of V rows;
 * - for prefill (t ≥ MATMUL_MIN_TOKENS), per head S = Q·Kᵀ and O = P·V through the SIMD `matmulBias`
 *   on gathered per-head copies. It computes the masked upper triangle too (up to 2× the necessary
 *   work when past = 0), which the matmul's ~10× speed over scalar loops more than repays.
 */
import { matmulBias } from "./matmul.js";
import { softmaxSpanInPlace } from "./softmax.js";

/**
 * From this many new tokens on, attention goes through matmulBias. Measured (12 heads × 64): t = 1
 * direct 1.1 ms vs matmul 1.8 ms at past 512 (4.3 vs 9.2 at past 2000: gathering and transposing the
 * caches dominates); t = 2 about even; t = 3 direct 3.3 ms vs matmul 2.1 ms at past 512.
 */
export const MATMUL_MIN_TOKENS = 3;

/** Float32 values of scratch that `attention` needs for these shapes (it allocates its own when none is passed). */
export function attentionScratchLength(t: number, past: number, numHeads: number, headDim: number): number {
  return t >= MATMUL_MIN_TOKENS
    ? matmulScratchLength(t, past, numHeads, headDim)
    : directScratchLength(t, past, numHeads, headDim);
}

/** attentionDirect's work: scores numHeads×ctx, the scaled q row and the output accumulator (h each), 1/Σexp per head. */
function directScratchLength(t: number, past: number, numHeads: number, headDim: number): number {
  return numHeads * (past + t) + 2 * numHeads * headDim + numHeads;
}

/** attentionByMatmul's work: Qh t×headDim, Kh ctx×headDim, S t×ctx, Vhᵀ headDim×ctx, Oh t×headDim. */
function matmulScratchLength(t: number, past: number, _numHeads: number, headDim: number): number {
  const ctx = past + t;
  return 2 * t * headDim + 2 * ctx * headDim + t * ctx;
}

/** One of attention's two paths: q, the caches and out as `attention` takes them; `work` its scratch. */
type AttentionPath = (
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  t: number,
  past: number,
  numHeads: number,
  headDim: number,
  work: Float32Array,
) => void;

let sharedScratch = new Float32Array(0);

function scratchFor(length: number, given: Float32Array | undefined): Float32Array {
  if (given) {
    if (given.length < length) throw new RangeError(`attention: scratch has ${given.length} values, needs ${length}`);
    return given;
  }
  if (sharedScratch.length < length) sharedScratch = new Float32Array(length);
  return sharedScratch;
}

export function attention(
  q: Float32Array /* [t, h], not scaled */,
  kCache: Float32Array /* [≥ past + t, h] */,
  vCache: Float32Array /* [≥ past + t, h] */,
  out: Float32Array /* [t, h] */,
  t: number /* new tokens */,
  past: number /* tokens in the cache before these t */,
  numHeads: number,
  headDim: number,
  scratch?: Float32Array /* ≥ attentionScratchLength(t, past, numHeads, headDim) values */,
): void {
  const h = numHeads * headDim;
  const ctx = past + t;
  if (q.length < t * h || out.length < t * h) throw new RangeError(`attention: q and out need t*h = ${t * h} values`);
  if (kCache.length < ctx * h || vCache.length < ctx * h)
    throw new RangeError(`attention: caches need (past + t)*h = ${ctx * h} values`);
  if (t === 0) return;
  const work = scratchFor(attentionScratchLength(t, past, numHeads, headDim), scratch);
  if (t >= MATMUL_MIN_TOKENS) attentionByMatmul(q, kCache, vCache, out, t, past, numHeads, headDim, work);
  else attentionDirect(q, kCache, vCache, out, t, past, numHeads, headDim, work);
}

const attentionDirect: AttentionPath = (q, k, v, out, t, past, numHeads, headDim, work) => {
  const h = numHeads * headDim;
  const ctx = past + t;
  const scale = 1 / Math.sqrt(headDim);
  // work = [scores: numHeads×ctx | scaled q row: h | output accumulator: h | 1/Σexp per head: numHeads].
  // Separate views keep the hot loops' index arithmetic minimal (measured ~1.4× faster than offsets into one array).
  const scores = work.subarray(0, numHeads * ctx);
  const qScaled = work.subarray(numHeads * ctx, numHeads * ctx + h);
  const acc = work.subarray(numHeads * ctx + h, numHeads * ctx + 2 * h);
  const inverseSums = work.subarray(numHeads * ctx + 2 * h, numHeads * ctx + 2 * h + numHeads);
  const d4 = headDim & ~3;
  for (let i = 0; i < t; i++) {
    for (let c = 0; c < h; c++) qScaled[c] = q[i * h + c]! * scale;
    const visible = past + i + 1;
    // Scores: cache row j is read once, contiguously, for all heads (rather than once per head with
    // an h-long stride), so K streams through the cache in order.
    for (let j = 0; j < visible; j++) {
      const kRow = j * h;
      let c = 0;
      for (let head = 0; head < numHeads; head++) {
        // Four partial sums break the dependency chain of a single accumulator.
        let s0 = 0,
          s1 = 0,
          s2 = 0,
          s3 = 0;
        const cEnd4 = c + d4;
        for (; c < cEnd4; c += 4) {
          s0 += qScaled[c]! * k[kRow + c]!;
          s1 += qScaled[c + 1]! * k[kRow + c + 1]!;
          s2 += qScaled[c + 2]! * k[kRow + c + 2]!;
          s3 += qScaled[c + 3]! * k[kRow + c + 3]!;
        }
        const cEnd = (head + 1) * headDim;
        for (; c < cEnd; c++) s0 += qScaled[c]! * k[kRow + c]!;
        scores[head * ctx + j] = s0 + s1 + s2 + s3;
      }
    }
    // Unnormalised softmax per head: the 1/Σ is applied once to the output instead of to every score.
    for (let head = 0; head < numHeads; head++) {
      const row = head * ctx;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) if (scores[row + j]! > max) max = scores[row + j]!;
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        const e = Math.exp(scores[row + j]! - max);
        scores[row + j] = e;
        sum += e;
      }
      inverseSums[head] = 1 / sum;
    }
    // Weighted sum of V, again one contiguous V row at a time for all heads.
    acc.fill(0);
    for (let j = 0; j < visible; j++) {
      const vRow = j * h;
      let c = 0;
      for (let head = 0; head < numHeads; head++) {
        const p = scores[head * ctx + j]!;
        const cEnd = c + headDim;
        for (; c + 4 <= cEnd; c += 4) {
          acc[c] = acc[c]! + p * v[vRow + c]!;
          acc[c + 1] = acc[c + 1]! + p * v[vRow + c + 1]!;
          acc[c + 2] = acc[c + 2]! + p * v[vRow + c + 2]!;
          acc[c + 3] = acc[c + 3]! + p * v[vRow + c + 3]!;
        }
        for (; c < cEnd; c++) acc[c] = acc[c]! + p * v[vRow + c]!;
      }
    }
    let c = 0;
    for (let head = 0; head < numHeads; head++) {
      const inverseSum = inverseSums[head]!;
      const cEnd = c + headDim;
      for (; c < cEnd; c++) out[i * h + c] = acc[c]! * inverseSum;
    }
  }
};

const attentionByMatmul: AttentionPath = (q, k, v, out, t, past, numHeads, headDim, work) => {
  const h = numHeads * headDim;
  const ctx = past + t;
  const scale = 1 / Math.sqrt(headDim);
  // work = [Qh: t×headDim | Kh: ctx×headDim | S: t×ctx | Vhᵀ: headDim×ctx | Oh: t×headDim]
  let at = 0;
  const take = (length: number) => work.subarray(at, (at += length));
  const qHead = take(t * headDim);
  const kHead = take(ctx * headDim);
  const scores = take(t * ctx);
  const vHeadT = take(headDim * ctx);
  const oHead = take(t * headDim);
  for (let head = 0; head < numHeads; head++) {
    const offset = head * headDim;
    for (let i = 0; i < t; i++) {
      const src = i * h + offset;
      for (let d = 0; d < headDim; d++) qHead[i * headDim + d] = q[src + d]! * scale;
    }
    for (let j = 0; j < ctx; j++) kHead.set(k.subarray(j * h + offset, j * h + offset + headDim), j * headDim);
    matmulBias(qHead, kHead, undefined, scores, t, headDim, ctx);
    for (let i = 0; i < t; i++) {
      const visible = past + i + 1;
      softmaxSpanInPlace(scores, i * ctx, visible);
      scores.fill(0, i * ctx + visible, (i + 1) * ctx); // masked (future) positions get probability 0
    }
    // matmulBias wants the right operand as [n, k] = [headDim, ctx]: V's head slice transposed.
    for (let j = 0; j < ctx; j++) {
      const src = j * h + offset;
      for (let d = 0; d < headDim; d++) vHeadT[d * ctx + j] = v[src + d]!;
    }
    matmulBias(scores, vHeadT, undefined, oHead, t, ctx, headDim);
    for (let i = 0; i < t; i++) out.set(oHead.subarray(i * headDim, (i + 1) * headDim), i * h + offset);
  }
};

/** Exposed for the benchmark and tests: the direct path regardless of t. */
export const attentionDirectForTesting = withOwnScratch(attentionDirect, directScratchLength);

/** Exposed for the benchmark and tests: the matmul path regardless of t. */
export const attentionByMatmulForTesting = withOwnScratch(attentionByMatmul, matmulScratchLength);

/** `path` with a scratch of its own, of the length it needs. */
function withOwnScratch(
  path: AttentionPath,
  scratchLength: (t: number, past: number, numHeads: number, headDim: number) => number,
) {
  return (
    q: Float32Array,
    kCache: Float32Array,
    vCache: Float32Array,
    out: Float32Array,
    t: number,
    past: number,
    numHeads: number,
    headDim: number,
  ): void => {
    const work = new Float32Array(scratchLength(t, past, numHeads, headDim));
    path(q, kCache, vCache, out, t, past, numHeads, headDim, work);
  };
}
