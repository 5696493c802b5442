/**
 * The stored format of a Mixture-of-Experts model's weights at the precisions the planner offers
 * (core/expert-policy.ts EXPERT_BITS: 16, 8, 4, 3, 2): an HQQ-like group-wise asymmetric format whose
 * byte count is exactly what the planner and the simulator count, `storedBytes(values, bits)` =
 * values × STORED_BITS_PER_PARAM[bits] / 8, for every tensor whose value count is a multiple of the
 * group size (every weight matrix of the catalogue's MoE models and of the synthetic ones).
 *
 * | bits | group | codes per group | scale | minimum | bits per value |
 * | --- | --- | --- | --- | --- | --- |
 * | 16 | - | fp16 values | - | - | 16 |
 * | 8 | 64 | 64 bytes | fp16 | fp16 | 8 + 32/64 = 8.5 |
 * | 4 | 64 | 32 bytes | fp16 | fp16 | 4 + 32/64 = 4.5 |
 * | 3 | 64 | 24 bytes | fp16 | fp16 | 3 + 32/64 = 3.5 |
 * | 2 | 16 | 4 bytes | 8-bit float E5M3 (fp16's bits 14..7) | 8-bit float E5M2 (fp16's bits 15..8) | 2 + 16/16 = 3 |
 *
 * A tensor of n values is laid out as [codes of every group][scales][minimums] (FlexGen's 4-bit layout,
 * runtime/tensor-codec.ts "q4", which this format equals byte for byte at 4 bits). Codes are a
 * big-endian bit stream within each group: value i of a group occupies bits [b·i, b·(i+1)) counted from
 * the most significant bit of the group's first code byte (at 4 bits: the even value in the high
 * nibble, as FlexGen packs). fp16 scales and minimums are little-endian. The last group may be partial
 * (its codes padded with zeros): it is stored whole, so such a tensor takes ceil(n / group) groups.
 *
 * Per group, with levels = 2^b − 1 (kernels/quantize-4bit.ts's rule at every width):
 *   min  = the group's smallest value rounded DOWN to the stored minimum's format,
 *   scale = (max − min) / levels rounded UP to the stored scale's format,
 *   code = clamp(floor((x − min) / scale + 0.5), 0, levels), value = min + code · scale
 * so min + levels · scale ≥ max and |x − value| ≤ scale / 2 (before value's float32 rounding). A scale
 * of 0 (every value equal to the stored minimum) gives codes 0. The 2-bit format keeps its scale and
 * minimum in a byte each, as HQQ's 2-bit Mixtral files quantise theirs to 8 bits; here they are 8-bit
 * floats (fp16 with the low mantissa bits dropped, so no per-tensor meta-scale is needed and the bytes
 * stay exactly 3 bits per value). Unlike HQQ, the scale and minimum are the group's min/max, not
 * optimised by half-quadratic steps (which would give up the scale / 2 error bound).
 *
 * Values must lie within fp16's range (|x| ≤ 65504; at 2 bits the minimum must round down to a finite
 * E5M2 value, so x ≥ −57344), as checkpoint fp16 tensors do.
 */
import { type ExpertBits, storedBytes } from "../../core/expert-policy.js";
import { fromFloat16Array, toFloat16Array } from "../fp16.js";
import { float32ToHalfBitsDown, float32ToHalfBitsUp, halfBitsToFloat32 } from "../kernels/half.js";
import { groupRange } from "../kernels/quantize-4bit.js";

const HALF_SIGN = 0x8000;
const HALF_EXPONENT_ALL_ONES = 0x7c00;

/** The group layout of a quantised width (every width but 16). */
export interface GroupFormat {
  readonly bits: Exclude<ExpertBits, 16>;
  /** Values per group. */
  readonly groupSize: number;
  /** Bytes of one group's codes (groupSize × bits / 8). */
  readonly codeBytes: number;
  /** Bytes of one stored scale and of one stored minimum: 2 (fp16) or 1 (8-bit float). */
  readonly metaBytes: 1 | 2;
  /** Low fp16 mantissa bits dropped from the stored scale (0: fp16; 7: E5M3, the sign being always 0). */
  readonly scaleDroppedBits: number;
  /** Low fp16 mantissa bits dropped from the stored minimum (0: fp16; 8: E5M2). */
  readonly minDroppedBits: number;
}

const FORMATS: Readonly<Record<Exclude<ExpertBits, 16>, GroupFormat>> = {
  8: { bits: 8, groupSize: 64, codeBytes: 64, metaBytes: 2, scaleDroppedBits: 0, minDroppedBits: 0 },
  4: { bits: 4, groupSize: 64, codeBytes: 32, metaBytes: 2, scaleDroppedBits: 0, minDroppedBits: 0 },
  3: { bits: 3, groupSize: 64, codeBytes: 24, metaBytes: 2, scaleDroppedBits: 0, minDroppedBits: 0 },
  2: { bits: 2, groupSize: 16, codeBytes: 4, metaBytes: 1, scaleDroppedBits: 7, minDroppedBits: 8 },
};

export function groupFormat(bits: Exclude<ExpertBits, 16>): GroupFormat {
  const format = FORMATS[bits];
  if (!format) throw new RangeError(`no group-wise format for ${bits} bits (expected 8, 4, 3 or 2)`);
  return format;
}

/** Stored bytes of a tensor of `values` values at `bits` (whole groups); storedBytes() when values is a multiple of the group. */
export function quantizedByteLength(values: number, bits: ExpertBits): number {
  if (bits === 16) return values * 2;
  const f = groupFormat(bits);
  const bytes = Math.ceil(values / f.groupSize) * (f.codeBytes + 2 * f.metaBytes);
  if (values % f.groupSize === 0 && bytes !== storedBytes(values, bits))
    throw new Error(
      `the ${bits}-bit format stores ${bytes} bytes where the planner counts ${storedBytes(values, bits)}`,
    );
  return bytes;
}

/** The largest stored value ≤ `value` (round toward −∞) in fp16 with the low `dropped` bits zero, as fp16 bits. */
function roundDownStored(value: number, dropped: number): number {
  const h = float32ToHalfBitsDown(value);
  const mask = (1 << dropped) - 1;
  if ((h & mask) === 0) return h;
  // Truncating the magnitude rounds a positive value down and a negative one up: step a negative one out.
  return h & HALF_SIGN ? (h & ~mask) + (1 << dropped) : h & ~mask;
}

/** The smallest stored value ≥ `value` ≥ 0 in fp16 with the low `dropped` bits zero, as fp16 bits. */
function roundUpStored(value: number, dropped: number): number {
  const h = float32ToHalfBitsUp(value);
  const mask = (1 << dropped) - 1;
  return (h & mask) === 0 ? h : (h & ~mask) + (1 << dropped);
}

/** Where a tensor's scales and minimums start, in bytes. */
function metaOffsets(f: GroupFormat, groups: number): { scales: number; mins: number } {
  const scales = groups * f.codeBytes;
  return { scales, mins: scales + groups * f.metaBytes };
}

function readMeta(stored: Uint8Array, at: number, metaBytes: number, dropped: number): number {
  const bits = metaBytes === 2 ? stored[at]! | (stored[at + 1]! << 8) : stored[at]! << dropped;
  return halfBitsToFloat32(bits);
}

function writeMeta(stored: Uint8Array, at: number, metaBytes: number, dropped: number, halfBits: number): void {
  if (metaBytes === 2) {
    stored[at] = halfBits & 0xff;
    stored[at + 1] = halfBits >> 8;
  } else stored[at] = halfBits >> dropped;
}

/** Group g's stored scale and minimum (as numbers) of a tensor of `values` values. */
export function groupScaleAndMin(
  stored: Uint8Array,
  bits: Exclude<ExpertBits, 16>,
  values: number,
  g: number,
): { scale: number; min: number } {
  const f = groupFormat(bits);
  const at = metaOffsets(f, Math.ceil(values / f.groupSize));
  return {
    scale: readMeta(stored, at.scales + g * f.metaBytes, f.metaBytes, f.scaleDroppedBits),
    min: readMeta(stored, at.mins + g * f.metaBytes, f.metaBytes, f.minDroppedBits),
  };
}

/** Quantises `x` at `bits` into `out` (quantizedByteLength bytes; zeroed here first). */
export function quantizeGroupwise(
  x: Float32Array,
  bits: ExpertBits,
  out: Uint8Array = new Uint8Array(quantizedByteLength(x.length, bits)),
): Uint8Array {
  const bytes = quantizedByteLength(x.length, bits);
  if (out.length < bytes) throw new RangeError(`quantizeGroupwise: out has ${out.length} bytes, needs ${bytes}`);
  if (bits === 16) {
    const halves = toFloat16Array(x);
    out.set(new Uint8Array(halves.buffer, 0, bytes));
    return out;
  }
  const f = groupFormat(bits);
  const levels = (1 << bits) - 1;
  const groups = Math.ceil(x.length / f.groupSize);
  const at = metaOffsets(f, groups);
  out.fill(0, 0, bytes);
  for (let g = 0; g < groups; g++) {
    const start = g * f.groupSize;
    const end = Math.min(start + f.groupSize, x.length);
    const { lo, hi } = groupRange(x, start, end, g, "quantizeGroupwise");
    const minBits = roundDownStored(lo, f.minDroppedBits);
    const minValue = halfBitsToFloat32(minBits);
    const scaleBits = roundUpStored((hi - minValue) / levels, f.scaleDroppedBits);
    if ((minBits & HALF_EXPONENT_ALL_ONES) === HALF_EXPONENT_ALL_ONES || scaleBits >= HALF_EXPONENT_ALL_ONES)
      throw new RangeError(
        `quantizeGroupwise: group ${g}'s range does not fit the ${bits}-bit format's scale and minimum`,
      );
    const scaleValue = halfBitsToFloat32(scaleBits);
    writeMeta(out, at.scales + g * f.metaBytes, f.metaBytes, f.scaleDroppedBits, scaleBits);
    writeMeta(out, at.mins + g * f.metaBytes, f.metaBytes, f.minDroppedBits, minBits);
    if (scaleValue === 0) continue; // every value equals the stored minimum: codes 0, already zeroed
    const codeStart = g * f.codeBytes;
    for (let i = start; i < end; i++) {
      // Division, not a multiply by 1/scale, so exact ties round as the formula says.
      const code = Math.min(levels, Math.max(0, Math.floor((x[i]! - minValue) / scaleValue + 0.5)));
      const bit = (i - start) * bits;
      // A code spans at most two bytes (bits <= 8): write it into a 16-bit big-endian window.
      const byte = codeStart + (bit >> 3);
      const window = code << (16 - bits - (bit & 7));
      out[byte]! |= window >> 8;
      if (window & 0xff) out[byte + 1]! |= window & 0xff;
    }
  }
  return out;
}

/**
 * Writes values [start, end) of a stored tensor of `values` values at `bits` to out[0 .. end − start),
 * as float32 (min + code · scale, rounded once). Any range: a linear layer decodes a tile of weight rows.
 */
export function dequantizeGroupwise(
  stored: Uint8Array,
  bits: ExpertBits,
  values: number,
  start: number,
  end: number,
  out: Float32Array,
): void {
  if (!(start >= 0 && start <= end && end <= values))
    throw new RangeError(`dequantizeGroupwise: range ${start}..${end} outside the tensor's ${values} values`);
  if (out.length < end - start)
    throw new RangeError(`dequantizeGroupwise: out has ${out.length} values, needs ${end - start}`);
  if (stored.length < quantizedByteLength(values, bits))
    throw new RangeError(
      `dequantizeGroupwise: ${stored.length} bytes stored, the tensor needs ${quantizedByteLength(values, bits)}`,
    );
  if (bits === 16) {
    if (stored.byteOffset % 2 === 0)
      fromFloat16Array(new Uint16Array(stored.buffer, stored.byteOffset + start * 2, end - start), out);
    else
      for (let i = start; i < end; i++) out[i - start] = halfBitsToFloat32(stored[2 * i]! | (stored[2 * i + 1]! << 8));
    return;
  }
  const f = groupFormat(bits);
  const G = f.groupSize;
  const mask = (1 << bits) - 1;
  const at = metaOffsets(f, Math.ceil(values / G));
  let i = start;
  while (i < end) {
    const g = Math.floor(i / G);
    const groupEnd = Math.min((g + 1) * G, end);
    const scale = readMeta(stored, at.scales + g * f.metaBytes, f.metaBytes, f.scaleDroppedBits);
    const min = readMeta(stored, at.mins + g * f.metaBytes, f.metaBytes, f.minDroppedBits);
    const codeStart = g * f.codeBytes;
    for (let bit = (i - g * G) * bits; i < groupEnd; i++, bit += bits) {
      const byte = codeStart + (bit >> 3);
      // The byte after a group's last code is another group's code or a scale: always inside `stored`.
      const window = (stored[byte]! << 8) | stored[byte + 1]!;
      const code = (window >> (16 - bits - (bit & 7))) & mask;
      out[i - start] = min + code * scale;
    }
  }
}

/** E[max] of n independent standard normal values: ∫ x · n φ(x) Φ(x)^(n−1) dx, Φ accumulated on the same grid. */
function expectedMaxOfNormals(n: number): number {
  const dx = 1e-3;
  let cdf = 0;
  let mean = 0;
  for (let x = -10; x <= 10; x += dx) {
    const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    cdf += pdf * dx;
    mean += x * n * pdf * Math.min(1, cdf) ** (n - 1) * dx;
  }
  return mean;
}

/**
 * The relative RMS error (error RMS / weight RMS) the format gives Gaussian weights: rounding to a grid
 * of step s is uniform noise of RMS s / √12, and s = a group's range / (2^b − 1), a group of G normal
 * values spanning 2·E[max of G] standard deviations on average. 8 bits: 0.53%, 4: 9.0%, 3: 19%,
 * 2 (groups of 16): 34% (the 8-bit scale and minimum add a few percent more). 0 at 16 bits.
 */
export function gaussianWeightNoise(bits: ExpertBits): number {
  if (bits === 16) return 0;
  const { groupSize } = groupFormat(bits);
  return (2 * expectedMaxOfNormals(groupSize)) / (((1 << bits) - 1) * Math.sqrt(12));
}
