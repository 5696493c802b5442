import assert from "node:assert/strict";
import { test } from "node:test";
import { compressedBytes } from "../../core/compression.js";
import { addInPlace } from "../../runtime/kernels/add.js";
import { argmax, argmaxRows } from "../../runtime/kernels/argmax.js";
import {
  attention,
  attentionByMatmulForTesting,
  attentionDirectForTesting,
  attentionScratchLength,
} from "../../runtime/kernels/attention.js";
import { addPositions, embedTokens } from "../../runtime/kernels/embedding.js";
import {
  float32ToHalfBits,
  float32ToHalfBitsDown,
  float32ToHalfBitsUp,
  halfBitsToFloat32,
} from "../../runtime/kernels/half.js";
import { layerNorm } from "../../runtime/kernels/layer-norm.js";
import { createWasmMatmul, matmulBias, matmulBiasJs, wasmSimdSupported } from "../../runtime/kernels/matmul.js";
import { compressedByteLength, dequantize4bit, quantize4bit } from "../../runtime/kernels/quantize-4bit.js";
import { reluInPlace } from "../../runtime/kernels/relu.js";
import { softmaxRowsInPlace, softmaxSpanInPlace } from "../../runtime/kernels/softmax.js";
import { naiveLinear, random } from "../helpers.js";

function randomArray(length: number, seed: number, amplitude = 1): Float32Array {
  const next = random(seed);
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = (next() * 2 - 1) * amplitude;
  return x;
}

/** max |actual - expected| / max |expected|: the error relative to the result's scale. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

const MATMUL_SHAPES: Array<[m: number, k: number, n: number]> = [
  [1, 1, 1],
  [3, 17, 5],
  [1, 768, 768],
  [64, 129, 33],
  [2, 3, 4],
  [7, 64, 9],
  [5, 1500, 13],
  [16, 768, 96],
  [33, 31, 70],
];

test("matmulBias: a·wᵀ + bias matches a float64 reference (relative error < 1e-5), odd shapes included", () => {
  let seed = 1;
  for (const [m, k, n] of MATMUL_SHAPES) {
    const a = randomArray(m * k, seed++);
    const w = randomArray(n * k, seed++);
    const bias = randomArray(n, seed++);
    for (const b of [bias, undefined]) {
      const expected = naiveLinear(a, w, b, m, k, n);
      const out = new Float32Array(m * n).fill(Number.NaN);
      matmulBias(a, w, b, out, m, k, n);
      const error = relativeError(out, expected);
      assert.ok(error < 1e-5, `${m}x${k}x${n} bias=${!!b}: relative error ${error}`);
      const outJs = new Float32Array(m * n);
      matmulBiasJs(a, w, b, outJs, m, k, n);
      assert.ok(relativeError(outJs, expected) < 1e-5, `JS kernel ${m}x${k}x${n}`);
    }
  }
});

test("matmulBias: the wasm SIMD kernel is available on Node 20, and odd tilings, tiny blocks and chunking agree", () => {
  assert.ok(wasmSimdSupported(), "Node 20 supports WebAssembly SIMD");
  // Small blocks force many k blocks (accumulate path), leftover rows and n-chunking through tiny working memory.
  const tunings = [
    { mr: 2, nr: 4, kBlock: 8, nBlock: 8 },
    { mr: 3, nr: 3, kBlock: 12, nBlock: 6 }, // nr not a multiple of 4: scalar reduction path
    { mr: 4, nr: 8, kBlock: 1024, nBlock: 64 },
    { mr: 2, nr: 4, kBlock: 16, nBlock: 8, maxWorkingBytes: 4096 }, // forces row and column chunks
  ];
  let seed = 100;
  for (const tuning of tunings) {
    const kernel = createWasmMatmul(tuning);
    for (const [m, k, n] of [
      [3, 17, 5],
      [64, 129, 33],
      [1, 50, 7],
      [9, 40, 21],
    ] as const) {
      const a = randomArray(m * k, seed++);
      const w = randomArray(n * k, seed++);
      const bias = randomArray(n, seed++);
      const out = new Float32Array(m * n).fill(Number.NaN);
      kernel(a, w, bias, out, m, k, n);
      const error = relativeError(out, naiveLinear(a, w, bias, m, k, n));
      assert.ok(error < 1e-5, `${JSON.stringify(tuning)} ${m}x${k}x${n}: relative error ${error}`);
    }
  }
});

test("matmulBias: writes only out[0, m·n), leaves inputs untouched, rejects short arrays", () => {
  const [m, k, n] = [5, 9, 7];
  const a = randomArray(m * k, 7);
  const w = randomArray(n * k, 8);
  const aCopy = a.slice();
  const wCopy = w.slice();
  const out = new Float32Array(m * n + 3).fill(42);
  matmulBias(a, w, undefined, out, m, k, n);
  assert.deepEqual([...out.subarray(m * n)], [42, 42, 42]);
  assert.deepEqual(a, aCopy);
  assert.deepEqual(w, wCopy);
  assert.throws(() => matmulBias(a, w, undefined, new Float32Array(m * n - 1), m, k, n), RangeError);
  assert.throws(() => matmulBias(a, w, new Float32Array(n - 1), out, m, k, n), RangeError);
  const zeroK = new Float32Array(m * n);
  matmulBias(
    new Float32Array(0),
    new Float32Array(0),
    Float32Array.from({ length: n }, (_, j) => j),
    zeroK,
    m,
    0,
    n,
  );
  assert.equal(zeroK[n + 3], 3);
});

function naiveAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  t: number,
  past: number,
  numHeads: number,
  headDim: number,
): Float64Array {
  const h = numHeads * headDim;
  const out = new Float64Array(t * h);
  const scale = 1 / Math.sqrt(headDim);
  for (let head = 0; head < numHeads; head++) {
    for (let i = 0; i < t; i++) {
      const visible = past + i + 1;
      const scores: number[] = [];
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[i * h + head * headDim + d]! * scale * k[j * h + head * headDim + d]!;
        scores.push(s);
      }
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const sum = exps.reduce((x, y) => x + y, 0);
      for (let d = 0; d < headDim; d++) {
        let o = 0;
        for (let j = 0; j < visible; j++) o += (exps[j]! / sum) * v[j * h + head * headDim + d]!;
        out[i * h + head * headDim + d] = o;
      }
    }
  }
  return out;
}

type AttentionFn = (
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  t: number,
  past: number,
  numHeads: number,
  headDim: number,
) => void;
const ATTENTION_PATHS: Array<[string, AttentionFn]> = [
  ["attention", (q, k, v, out, t, past, nh, hd) => attention(q, k, v, out, t, past, nh, hd)],
  ["direct", attentionDirectForTesting],
  ["matmul", attentionByMatmulForTesting],
];
const ATTENTION_CASES: Array<[t: number, past: number, numHeads: number, headDim: number]> = [
  [1, 0, 3, 8],
  [1, 37, 3, 8],
  [2, 5, 2, 16],
  [5, 0, 4, 8],
  [7, 11, 3, 6],
  [16, 3, 2, 64],
  [1, 100, 12, 64],
  [9, 20, 1, 5],
];

test("attention: each path matches a naive per-head softmax(q·kᵀ/√d)·v, with past > 0 and t > 1", () => {
  let seed = 200;
  for (const [t, past, numHeads, headDim] of ATTENTION_CASES) {
    const h = numHeads * headDim;
    const ctx = past + t;
    const q = randomArray(t * h, seed++, 2);
    const k = randomArray((ctx + 3) * h, seed++, 2); // three spare rows past the valid ones: must be ignored
    const v = randomArray((ctx + 3) * h, seed++);
    const expected = naiveAttention(q, k, v, t, past, numHeads, headDim);
    for (const [name, fn] of ATTENTION_PATHS) {
      const out = new Float32Array(t * h).fill(Number.NaN);
      fn(q, k, v, out, t, past, numHeads, headDim);
      const error = relativeError(out, expected);
      assert.ok(error < 1e-5, `${name} t=${t} past=${past} heads=${numHeads}x${headDim}: relative error ${error}`);
    }
  }
});

test("attention: causal — changing a later cache row leaves earlier tokens' outputs unchanged", () => {
  const [t, past, numHeads, headDim] = [6, 4, 2, 8];
  const h = numHeads * headDim;
  const ctx = past + t;
  for (const [name, fn] of ATTENTION_PATHS) {
    const q = randomArray(t * h, 300);
    const k = randomArray(ctx * h, 301);
    const v = randomArray(ctx * h, 302);
    const before = new Float32Array(t * h);
    fn(q, k, v, before, t, past, numHeads, headDim);
    // Row past + 3 is new token 3's own key/value: tokens 0..2 must not see it, tokens 3..5 must.
    const changedRow = past + 3;
    for (let c = 0; c < h; c++) {
      k[changedRow * h + c] = k[changedRow * h + c]! + 5;
      v[changedRow * h + c] = v[changedRow * h + c]! - 3;
    }
    const after = new Float32Array(t * h);
    fn(q, k, v, after, t, past, numHeads, headDim);
    assert.deepEqual(after.subarray(0, 3 * h), before.subarray(0, 3 * h), `${name}: earlier tokens changed`);
    for (let i = 3; i < t; i++)
      assert.notDeepEqual(
        after.subarray(i * h, (i + 1) * h),
        before.subarray(i * h, (i + 1) * h),
        `${name}: token ${i} ignored row ${changedRow}`,
      );
  }
});

test("attention: prefilling t tokens at once equals decoding them one at a time; caller scratch works", () => {
  const [t, numHeads, headDim] = [10, 3, 16];
  const h = numHeads * headDim;
  const q = randomArray(t * h, 400);
  const k = randomArray(t * h, 401);
  const v = randomArray(t * h, 402);
  const prefill = new Float32Array(t * h);
  attention(q, k, v, prefill, t, 0, numHeads, headDim);
  const scratch = new Float32Array(attentionScratchLength(1, t - 1, numHeads, headDim));
  for (let i = 0; i < t; i++) {
    const one = new Float32Array(h);
    attention(q.subarray(i * h, (i + 1) * h), k, v, one, 1, i, numHeads, headDim, scratch);
    assert.ok(relativeError(one, prefill.subarray(i * h, (i + 1) * h)) < 1e-5, `token ${i}`);
  }
  assert.throws(() => attention(q, k, v, prefill, t, 0, numHeads, headDim, new Float32Array(1)), RangeError);
});

test("layerNorm: matches (x - mean)/sqrt(var + eps)·γ + β with biased variance, in place too", () => {
  const [rows, cols] = [5, 77];
  const x = randomArray(rows * cols, 500, 3).map((value, i) => value + (i % cols === 0 ? 100 : 10));
  const gamma = randomArray(cols, 501);
  const beta = randomArray(cols, 502);
  const expected = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const mean = row.reduce((s, value) => s + value, 0) / cols;
    const variance = row.reduce((s, value) => s + (value - mean) ** 2, 0) / cols;
    for (let c = 0; c < cols; c++)
      expected[r * cols + c] = ((row[c]! - mean) / Math.sqrt(variance + 1e-5)) * gamma[c]! + beta[c]!;
  }
  const out = new Float32Array(rows * cols);
  layerNorm(x, gamma, beta, out, rows, cols);
  assert.ok(relativeError(out, expected) < 1e-5);
  const inPlace = x.slice();
  layerNorm(inPlace, gamma, beta, inPlace, rows, cols);
  assert.deepEqual(inPlace, out);
});

test("softmax: rows sum to 1, match exp(x)/Σexp(x), survive large inputs; fully masked rows become zeros", () => {
  const [rows, cols] = [4, 33];
  const x = randomArray(rows * cols, 600, 10);
  const expected = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const sum = row.reduce((s, value) => s + Math.exp(value), 0);
    for (let c = 0; c < cols; c++) expected[r * cols + c] = Math.exp(row[c]!) / sum;
  }
  softmaxRowsInPlace(x, rows, cols);
  assert.ok(relativeError(x, expected) < 1e-6);
  for (let r = 0; r < rows; r++) {
    const sum = x.subarray(r * cols, (r + 1) * cols).reduce((s, value) => s + value, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `row ${r} sums to ${sum}`);
  }
  const large = Float32Array.from([1000, 1001, 999]);
  softmaxSpanInPlace(large, 0, 3);
  assert.ok(large.every(Number.isFinite));
  assert.ok(Math.abs(large[1]! - Math.exp(1) / (1 + Math.E + Math.exp(-1))) < 1e-6);
  const masked = Float32Array.from([-Infinity, -Infinity]);
  softmaxSpanInPlace(masked, 0, 2);
  assert.deepEqual([...masked], [0, 0]);
});

test("relu and residual add", () => {
  const x = Float32Array.from([-2, -0.5, 0, 0.5, 3]);
  reluInPlace(x);
  assert.deepEqual([...x], [0, 0, 0, 0.5, 3]);
  const dst = Float32Array.from([1, 2, 3]);
  addInPlace(dst, Float32Array.from([0.5, -2, 10]));
  assert.deepEqual([...dst], [1.5, 0, 13]);
  assert.throws(() => addInPlace(dst, new Float32Array(2)), RangeError);
});

test("embedding: token rows by id, positions from row startPosition + 2 (OPT's offset)", () => {
  const [vocab, dim] = [6, 4];
  const table = Float32Array.from({ length: vocab * dim }, (_, i) => i);
  const out = new Float32Array(3 * dim);
  embedTokens(Int32Array.from([5, 0, 2]), table, dim, out);
  assert.deepEqual([...out], [20, 21, 22, 23, 0, 1, 2, 3, 8, 9, 10, 11]);
  assert.throws(() => embedTokens(Int32Array.from([6]), table, dim, out), RangeError);
  const maxPositions = 8;
  const positions = Float32Array.from({ length: (maxPositions + 2) * dim }, (_, i) => 1000 * Math.floor(i / dim));
  const h = new Float32Array(2 * dim);
  addPositions(h, positions, 5, 2, dim);
  assert.deepEqual([...h], [7000, 7000, 7000, 7000, 8000, 8000, 8000, 8000]);
  addPositions(new Float32Array(dim), positions, maxPositions - 1, 1, dim); // last valid position
  assert.throws(() => addPositions(new Float32Array(dim), positions, maxPositions, 1, dim), RangeError);
});

test("argmax: ties go to the lowest index, per row", () => {
  assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1);
  assert.equal(argmax(Float32Array.from([-5, -5])), 0);
  assert.equal(argmax(Float32Array.from([Number.NaN, 2, 7, 7])), 2);
  assert.equal(argmax(Float32Array.from([9, 1, 4, 4, 0]), 1, 3), 1);
  assert.deepEqual([...argmaxRows(Float32Array.from([0, 2, 2, 5, 5, 1]), 2, 3)], [1, 0]);
});

test("fp16 helpers: exact on every half value, nearest-even rounding, directed roundings bracket the input", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = halfBitsToFloat32(bits);
    if (Number.isNaN(value)) continue;
    assert.equal(float32ToHalfBits(value), bits);
    assert.equal(float32ToHalfBitsDown(value), bits);
    assert.equal(float32ToHalfBitsUp(value), bits);
  }
  assert.equal(float32ToHalfBits(1), 0x3c00);
  assert.equal(float32ToHalfBits(-2), 0xc000);
  assert.equal(float32ToHalfBits(65504), 0x7bff);
  assert.equal(float32ToHalfBits(65520), 0x7c00);
  assert.equal(float32ToHalfBits(2 ** -24), 0x0001);
  assert.equal(float32ToHalfBits(0.1), 0x2e66);
  assert.equal(float32ToHalfBits(1 + 2 ** -11), 0x3c00); // tie → even mantissa
  assert.equal(float32ToHalfBits(1 + 3 * 2 ** -11), 0x3c02);
  for (const value of [0.1, -0.1, 1e-6, -1e-6, 3.14159, -70000 / 2, 1e-9, -1e-9]) {
    const down = halfBitsToFloat32(float32ToHalfBitsDown(value));
    const up = halfBitsToFloat32(float32ToHalfBitsUp(value));
    assert.ok(down <= value && value <= up && down < up, `${value}: ${down} .. ${up}`);
  }
});

test("quantize4bit: per-element error ≤ scale/2, exact byte length equal to the planner's compressedBytes", () => {
  let seed = 700;
  for (const groupSize of [64, 32]) {
    for (const length of [1, 2, 63, 64, 65, 127, 1000, 4097]) {
      const x = randomArray(length, seed++, 3).map((value, i) => value + (i % 200 === 0 ? 20 : 0));
      const q = quantize4bit(x, groupSize);
      const groups = Math.ceil(length / groupSize);
      assert.equal(q.length, length);
      assert.equal(q.scale.length, groups);
      assert.equal(q.min.length, groups);
      const bytes = q.packed.byteLength + q.scale.byteLength + q.min.byteLength;
      assert.equal(bytes, compressedByteLength(length, groupSize));
      if (groupSize === 64) assert.equal(bytes, compressedBytes(length));
      const out = new Float32Array(length + 1).fill(-123);
      dequantize4bit(q, out);
      assert.equal(out[length], -123, "writes only q.length values");
      for (let i = 0; i < length; i++) {
        const scale = halfBitsToFloat32(q.scale[Math.floor(i / groupSize)]!);
        const slack = 2 ** -23 * Math.abs(x[i]!); // the float32 rounding of the dequantised value
        assert.ok(
          Math.abs(out[i]! - x[i]!) <= scale / 2 + slack,
          `length ${length} i ${i}: ${x[i]} → ${out[i]} (scale ${scale})`,
        );
      }
    }
  }
  assert.equal(compressedByteLength(64 * 10), 10 * 36);
  assert.equal(compressedByteLength(1), 36);
});

test("quantize4bit: constant groups, FlexGen nibble order, all 16 levels reachable", () => {
  const constant = new Float32Array(70).fill(0.5);
  const q = quantize4bit(constant);
  assert.equal(halfBitsToFloat32(q.scale[0]!), 0);
  const out = new Float32Array(70);
  dequantize4bit(q, out);
  assert.ok(out.every((value) => value === 0.5));
  const awkward = new Float32Array(64).fill(0.1); // not an fp16 value: min rounds down, a tiny scale covers it
  const qa = quantize4bit(awkward);
  const outA = new Float32Array(64);
  dequantize4bit(qa, outA);
  const scaleA = halfBitsToFloat32(qa.scale[0]!);
  assert.ok(outA.every((value) => Math.abs(value - 0.1) <= scaleA / 2 + 1e-8));
  // 0..15 as values: min 0, scale 1, codes equal the values; value 0 goes in the high nibble.
  const ramp = Float32Array.from({ length: 16 }, (_, i) => i);
  const qr = quantize4bit(ramp, 16);
  assert.equal(halfBitsToFloat32(qr.scale[0]!), 1);
  assert.deepEqual([...qr.packed], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
  assert.throws(() => quantize4bit(ramp, 3), RangeError);
  assert.throws(() => quantize4bit(Float32Array.from([1, Number.NaN])), RangeError);
});
