/**
 * CPU kernel speed: fp32 GEMM (target from the issue: at least 5 GFLOP/s on one core for 1024³) on
 * the shape used for the target and on decoding shapes, the JavaScript kernel as the baseline, and
 * attention and 4-bit dequantisation at OPT-125M sizes. Single thread throughout.
 * Shapes are m×k×n: out[m, n] = a[m, k] · w[n, k]ᵀ (tokens × in_features × out_features).
 */
import { attention } from "../runtime/kernels/attention.js";
import { matmulBias, matmulBiasJs, matmulImplementation } from "../runtime/kernels/matmul.js";
import { dequantize4bit, quantize4bit } from "../runtime/kernels/quantize-4bit.js";

const GEMM_TARGET_GFLOPS = 5;

function filled(length: number, seed: number): Float32Array {
  // A cheap deterministic fill; the values only need to be ordinary finite floats.
  const x = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    x[i] = state / 2 ** 32 - 0.5;
  }
  return x;
}

/** Median seconds per call over `trials` batches of at least `minBatchMs` each, after a warm-up (JIT tiers, memory growth). */
function secondsPerCall(fn: () => void, minBatchMs = 100, trials = 3, minWarmCalls = 2): number {
  const warmStart = performance.now();
  let calls = 0;
  while (calls < minWarmCalls || performance.now() - warmStart < minBatchMs) {
    fn();
    calls++;
  }
  const msPerCall = (performance.now() - warmStart) / calls;
  const reps = Math.max(1, Math.ceil(minBatchMs / msPerCall));
  const samples: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const start = performance.now();
    for (let r = 0; r < reps; r++) fn();
    samples.push((performance.now() - start) / 1000 / reps);
  }
  samples.sort((x, y) => x - y);
  return samples[Math.floor(samples.length / 2)]!;
}

function gemmGflops(
  kernel: typeof matmulBias,
  m: number,
  k: number,
  n: number,
  trials: number,
  minWarmCalls = 2,
): number {
  const a = filled(m * k, 1);
  const w = filled(n * k, 2);
  const bias = filled(n, 3);
  const out = new Float32Array(m * n);
  const seconds = secondsPerCall(() => kernel(a, w, bias, out, m, k, n), 100, trials, minWarmCalls);
  return (2 * m * k * n) / seconds / 1e9;
}

export async function benchKernels(): Promise<string[]> {
  const lines: string[] = [];
  const implementation = matmulImplementation();
  const square = gemmGflops(matmulBias, 1024, 1024, 1024, 5);
  lines.push(
    `GEMM 1024x1024x1024 fp32: ${square.toFixed(1)} GFLOP/s (single thread; target ${GEMM_TARGET_GFLOPS}) [${implementation}] ${square >= GEMM_TARGET_GFLOPS ? "meets" : "MISSES"} target`,
  );
  for (const [m, k, n] of [
    [1, 768, 3072],
    [16, 768, 3072],
    [1, 3072, 768],
    [16, 3072, 768],
  ] as const) {
    lines.push(
      `GEMM ${m}x${k}x${n} fp32: ${gemmGflops(matmulBias, m, k, n, 5).toFixed(1)} GFLOP/s [${implementation}; includes copying w into wasm memory]`,
    );
  }
  // The JavaScript kernel: fallback without WebAssembly SIMD, and used for products under ~1k multiply-adds.
  lines.push(
    `GEMM 1024x1024x1024 fp32, JS kernel (alternative): ${gemmGflops(matmulBiasJs, 1024, 1024, 1024, 1, 1).toFixed(1)} GFLOP/s`,
  );
  lines.push(
    `GEMM 1x768x3072 fp32, JS kernel (alternative): ${gemmGflops(matmulBiasJs, 1, 768, 3072, 3, 1).toFixed(1)} GFLOP/s`,
  );
  lines.push(
    `GEMM 16x768x3072 fp32, JS kernel (alternative): ${gemmGflops(matmulBiasJs, 16, 768, 3072, 3, 1).toFixed(1)} GFLOP/s`,
  );

  // Attention at OPT-125M sizes (12 heads × 64).
  const [numHeads, headDim] = [12, 64];
  const h = numHeads * headDim;
  for (const [t, past] of [
    [1, 511],
    [1, 2047],
    [512, 0],
  ] as const) {
    const ctx = past + t;
    const q = filled(t * h, 4);
    const k = filled(ctx * h, 5);
    const v = filled(ctx * h, 6);
    const out = new Float32Array(t * h);
    const seconds = secondsPerCall(() => attention(q, k, v, out, t, past, numHeads, headDim));
    const flops = 4 * numHeads * headDim * (t * past + (t * (t + 1)) / 2); // q·k and p·v over the visible rows
    lines.push(
      `attention ${numHeads}x${headDim} heads, ${t} new token(s) after ${past}: ${(seconds * 1e3).toFixed(2)} ms (${(flops / seconds / 1e9).toFixed(2)} GFLOP/s useful)`,
    );
  }

  // 4-bit (de)quantisation of one OPT-125M fc1 weight: dequantising is a per-layer cost of compressed weights.
  const weights = filled(3072 * 768, 7);
  let quantised = quantize4bit(weights);
  const quantSeconds = secondsPerCall(() => (quantised = quantize4bit(weights)));
  lines.push(
    `quantize4bit 3072x768: ${(quantSeconds * 1e3).toFixed(2)} ms (${(weights.length / quantSeconds / 1e9).toFixed(2)} G values/s)`,
  );
  const restored = new Float32Array(weights.length);
  const dequantSeconds = secondsPerCall(() => dequantize4bit(quantised, restored));
  lines.push(
    `dequantize4bit 3072x768: ${(dequantSeconds * 1e3).toFixed(2)} ms (${(weights.length / dequantSeconds / 1e9).toFixed(2)} G values/s)`,
  );
  return lines;
}
