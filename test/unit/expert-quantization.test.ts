import assert from "node:assert/strict";
import { test } from "node:test";
import { EXPERT_BITS, type ExpertBits, STORED_BITS_PER_PARAM, storedBytes } from "../../core/expert-policy.js";
import { expertParams } from "../../core/model-spec.js";
import { halfBitsToFloat32 } from "../../runtime/kernels/half.js";
import {
  dequantizeGroupwise,
  gaussianWeightNoise,
  groupFormat,
  groupScaleAndMin,
  quantizedByteLength,
  quantizeGroupwise,
} from "../../runtime/moe/expert-quantization.js";
import { tinyMixtralSpec } from "../../runtime/moe/synth-mixtral-weights.js";
import { tiledQuantized } from "../../runtime/profile-cpu.js";
import { encode } from "../../runtime/tensor-codec.js";
import { random } from "../helpers.js";

const QUANTIZED = [8, 4, 3, 2] as const;

function gaussian(length: number, seed: number, sigma = 1): Float32Array {
  const next = random(seed);
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = sigma * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return x;
}

function dequantizeAll(stored: Uint8Array, bits: ExpertBits, values: number): Float32Array {
  const out = new Float32Array(values);
  dequantizeGroupwise(stored, bits, values, 0, values, out);
  return out;
}

/** An independent packer: codes written as a string of bits, most significant first, group by group. */
function packCodes(codes: readonly number[], bits: number, groupSize: number): Uint8Array {
  const groups = Math.ceil(codes.length / groupSize);
  const out = new Uint8Array((groups * groupSize * bits) / 8);
  for (let g = 0; g < groups; g++) {
    let stream = "";
    for (let i = 0; i < groupSize; i++) stream += (codes[g * groupSize + i] ?? 0).toString(2).padStart(bits, "0");
    for (let b = 0; b < stream.length / 8; b++)
      out[(g * groupSize * bits) / 8 + b] = Number.parseInt(stream.slice(8 * b, 8 * b + 8), 2);
  }
  return out;
}

test("stored bytes equal the planner's storedBytes at every width: a tensor, the tiny expert, a Mixtral-8x7B expert", () => {
  const tiny = tinyMixtralSpec();
  for (const bits of EXPERT_BITS) {
    for (const values of [64, 4096, 64 * 128, 3 * 64 * 128])
      assert.equal(quantizedByteLength(values, bits), storedBytes(values, bits), `${bits} bits, ${values} values`);
    // One tiny expert: w1, w3, w2 stored as three tensors.
    assert.equal(3 * quantizedByteLength(64 * 128, bits), storedBytes(expertParams(tiny), bits));
    // A Mixtral-8x7B expert matrix, 4096 x 14336: 8x7B's 176.16 M params per expert at STORED_BITS_PER_PARAM.
    assert.equal(3 * quantizedByteLength(4096 * 14336, bits), (3 * 4096 * 14336 * STORED_BITS_PER_PARAM[bits]) / 8);
    const x = gaussian(3 * 64 * 128, bits);
    assert.equal(quantizeGroupwise(x, bits).byteLength, storedBytes(x.length, bits));
  }
  // A partial last group is stored whole.
  assert.equal(quantizedByteLength(65, 4), 2 * 36);
  assert.equal(quantizedByteLength(17, 2), 2 * 6);
  assert.equal(quantizedByteLength(65, 3), 2 * 28);
});

test("every element within scale / 2 of its value, at every width, with partial groups, outliers and norm-like groups", () => {
  let seed = 11;
  for (const bits of QUANTIZED) {
    const { groupSize } = groupFormat(bits);
    for (const length of [1, 15, 16, 17, 63, 64, 65, 1000, 4097]) {
      const x = gaussian(length, seed++, 0.02);
      for (let i = 0; i < length; i += 97) x[i] = x[i]! + 3; // an outlier now and then widens its group
      // Norm-like weights: all near 1, far from 0 (the minimum must not be rounded to 0).
      for (let i = 100; i < Math.min(200, length); i++) x[i] = 1.05 + 0.001 * (i % 7);
      const stored = quantizeGroupwise(x, bits);
      const out = new Float32Array(length + 1).fill(-123);
      dequantizeGroupwise(stored, bits, length, 0, length, out);
      assert.equal(out[length], -123, "writes only the range");
      let worst = 0;
      for (let i = 0; i < length; i++) {
        const { scale, min } = groupScaleAndMin(stored, bits, length, Math.floor(i / groupSize));
        const slack = 2 ** -24 * Math.abs(out[i]!); // the float32 rounding of min + code x scale
        const error = Math.abs(out[i]! - x[i]!);
        assert.ok(
          error <= scale / 2 + slack,
          `${bits} bits, length ${length}, i ${i}: ${x[i]} -> ${out[i]} (scale ${scale})`,
        );
        assert.ok(min <= x[i]!, `${bits} bits: the stored minimum ${min} is above ${x[i]}`);
        worst = Math.max(worst, error);
      }
      assert.ok(worst > 0 || length === 1, `${bits} bits, length ${length}: no quantisation error at all`);
    }
  }
});

test("values on a representable grid round-trip exactly; quantising the dequantised tensor gives the same bytes", () => {
  for (const bits of QUANTIZED) {
    const { groupSize } = groupFormat(bits);
    const levels = (1 << bits) - 1;
    // min -1.5 and scale 0.25 (or 0.125 · 2^-4 ...) are exact in every stored format, E5M2 and E5M3 included.
    const scale = bits === 8 ? 2 ** -7 : 0.25;
    const next = random(bits);
    const codes = Array.from({ length: 5 * groupSize }, () => Math.floor(next() * (levels + 1)));
    for (let g = 0; g < 5; g++) {
      codes[g * groupSize] = 0; // each group reaches its minimum and its maximum
      codes[g * groupSize + 1] = levels;
    }
    const x = Float32Array.from(codes, (c) => -1.5 + c * scale);
    const stored = quantizeGroupwise(x, bits);
    assert.deepEqual(dequantizeAll(stored, bits, x.length), x, `${bits} bits: exact round trip`);
    assert.deepEqual(
      quantizeGroupwise(dequantizeAll(stored, bits, x.length), bits),
      stored,
      `${bits} bits: idempotent`,
    );
    for (let g = 0; g < 5; g++) assert.deepEqual(groupScaleAndMin(stored, bits, x.length, g), { scale, min: -1.5 });
    // The codes are packed as the independent bit-string packer packs them.
    assert.deepEqual(stored.subarray(0, 5 * groupFormat(bits).codeBytes), packCodes(codes, bits, groupSize));
  }
  // A constant group: scale 0 and every value exact when the value is representable.
  for (const bits of QUANTIZED) {
    const x = new Float32Array(64).fill(0.5);
    assert.deepEqual(dequantizeAll(quantizeGroupwise(x, bits), bits, 64), x);
  }
});

test("packing and unpacking are bit-exact at every width: random codes decode to min + code x scale", () => {
  for (const bits of QUANTIZED) {
    const f = groupFormat(bits);
    const values = 7 * f.groupSize + 5; // a partial last group
    const groups = 8;
    const next = random(100 + bits);
    const codes = Array.from({ length: values }, () => Math.floor(next() * (1 << bits)));
    // A stored tensor built by hand: packed codes, then scales, then minimums.
    const stored = new Uint8Array(quantizedByteLength(values, bits));
    stored.set(packCodes(codes, bits, f.groupSize), 0);
    const metas: { scale: number; min: number }[] = [];
    for (let g = 0; g < groups; g++) {
      const scaleBits = f.metaBytes === 2 ? 0x2000 + g * 0x111 : (0x50 + g) << 7;
      const minBits = f.metaBytes === 2 ? 0xb800 + g * 0x123 : (0xb0 + g) << 8;
      const scalesAt = groups * f.codeBytes;
      const minsAt = scalesAt + groups * f.metaBytes;
      if (f.metaBytes === 2) {
        stored[scalesAt + 2 * g] = scaleBits & 0xff;
        stored[scalesAt + 2 * g + 1] = scaleBits >> 8;
        stored[minsAt + 2 * g] = minBits & 0xff;
        stored[minsAt + 2 * g + 1] = minBits >> 8;
      } else {
        stored[scalesAt + g] = scaleBits >> 7;
        stored[minsAt + g] = minBits >> 8;
      }
      metas.push({ scale: halfBitsToFloat32(scaleBits), min: halfBitsToFloat32(minBits) });
    }
    const out = dequantizeAll(stored, bits, values);
    for (let i = 0; i < values; i++) {
      const { scale, min } = metas[Math.floor(i / f.groupSize)]!;
      assert.equal(out[i], Math.fround(min + codes[i]! * scale), `${bits} bits, value ${i}`);
    }
    // Any sub-range decodes to the same values (a linear layer decodes tiles of rows).
    for (const [start, end] of [
      [0, 1],
      [3, f.groupSize + 3],
      [f.groupSize, 3 * f.groupSize],
      [values - 6, values],
      [5, 5],
    ] as const) {
      const part = new Float32Array(end - start);
      dequantizeGroupwise(stored, bits, values, start, end, part);
      assert.deepEqual(part, out.subarray(start, end), `${bits} bits, range ${start}..${end}`);
    }
  }
});

test("at 4 bits the format is FlexGen's q4 (tensor-codec) byte for byte; 16 bits is plain fp16", () => {
  const x = gaussian(64 * 40 + 17, 5, 0.05);
  assert.deepEqual(quantizeGroupwise(x, 4), encode(x, "q4"));
  assert.deepEqual(quantizeGroupwise(x, 16), encode(x, "f16"));
  const out = dequantizeAll(quantizeGroupwise(x, 16), 16, x.length);
  for (let i = 0; i < x.length; i++)
    assert.equal(out[i], halfBitsToFloat32(encode(x, "f16")[2 * i]! | (encode(x, "f16")[2 * i + 1]! << 8)));
});

test("fewer bits, more error: Gaussian weights' RMS error grows 8 < 4 < 3 < 2 bits, as the format's noise model says", () => {
  const x = gaussian(64 * 1024, 9, 0.02);
  const rms = QUANTIZED.map((bits) => {
    const out = dequantizeAll(quantizeGroupwise(x, bits), bits, x.length);
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += (out[i]! - x[i]!) ** 2;
    return Math.sqrt(sum / x.length) / 0.02;
  });
  for (let i = 1; i < rms.length; i++) assert.ok(rms[i]! > rms[i - 1]!, `relative RMS errors ${rms}`);
  // Uniform noise of step s has RMS s / sqrt(12); s is the group's range over 2^b - 1 levels. The
  // 2-bit format's 8-bit scale (rounded up) and minimum (rounded down) widen its step by up to ~15%.
  QUANTIZED.forEach((bits, i) => {
    const model = gaussianWeightNoise(bits);
    assert.ok(
      rms[i]! > 0.9 * model && rms[i]! < (bits === 2 ? 1.15 : 1.05) * model,
      `${bits} bits: ${rms[i]} vs ${model}`,
    );
  });
  // Tippett's tables: the largest of 16 standard normals is 1.766 on average.
  assert.ok(Math.abs(gaussianWeightNoise(2) - (2 * 1.766) / (3 * Math.sqrt(12))) < 1e-3, `${gaussianWeightNoise(2)}`);
  assert.equal(gaussianWeightNoise(16), 0);
});

test("NaN, values outside fp16's range and out-of-range reads are refused", () => {
  for (const bits of EXPERT_BITS.filter((b) => b !== 16)) {
    assert.throws(() => quantizeGroupwise(Float32Array.from([1, Number.NaN]), bits), RangeError);
    assert.throws(() => quantizeGroupwise(Float32Array.from([1, 70000]), bits), RangeError);
  }
  assert.throws(() => quantizeGroupwise(Float32Array.from([-65000, 1]), 2), RangeError, "E5M2 minimum overflows");
  const stored = quantizeGroupwise(new Float32Array(64), 4);
  assert.throws(() => dequantizeGroupwise(stored, 4, 64, 10, 65, new Float32Array(64)), RangeError);
  assert.throws(() => dequantizeGroupwise(stored.subarray(1), 4, 64, 0, 64, new Float32Array(64)), RangeError);
});

test("the profile's quantised GEMM weights: a block's stored form tiled is the stored form of the block's values repeated", () => {
  const blockValues = 16 * 768;
  for (const bits of [8, 4, 3, 2] as const) {
    const values = 4 * blockValues;
    const tiled = tiledQuantized(values, bits);
    assert.equal(tiled.byteLength, quantizedByteLength(values, bits));
    const all = new Float32Array(values);
    dequantizeGroupwise(tiled, bits, values, 0, values, all);
    const block = new Float32Array(blockValues);
    dequantizeGroupwise(tiled, bits, values, 0, blockValues, block);
    assert.ok(block.some((v) => v !== 0) && block.every(Number.isFinite), `${bits} bits: real values`);
    for (let r = 1; r < 4; r++)
      assert.deepEqual(all.subarray(r * blockValues, (r + 1) * blockValues), block, `${bits} bits, repeat ${r}`);
  }
});
