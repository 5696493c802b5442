/**
 * IEEE 754 binary16 ("fp16", "half") bit conversions for the kernels, kept local so the 4-bit
 * compression does not depend on the runtime's general fp16 module. Besides round-to-nearest-even
 * there are directed roundings: the quantiser stores each group's minimum rounded down and its scale
 * rounded up, so the stored range still covers every value of the group.
 */

const HALF_SIGN = 0x8000;
const HALF_INFINITY = 0x7c00;
const HALF_NAN = 0x7e00;
/** Largest finite half, 65504; from the midpoint 65520 up, nearest rounding gives infinity. */
const HALF_OVERFLOW_MIDPOINT = 65520;
const MIN_NORMAL = 2 ** -14;
const SUBNORMAL_STEP = 2 ** -24;

/** x rounded to the nearest integer, ties to even (x must be ≥ 0). */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5 || (fraction === 0.5 && floor % 2 === 1)) return floor + 1;
  return floor;
}

/** Half bits of `value` rounded to nearest, ties to even (the rounding of a float32→float16 cast). */
export function float32ToHalfBits(value: number): number {
  if (Number.isNaN(value)) return HALF_NAN;
  const sign = value < 0 || Object.is(value, -0) ? HALF_SIGN : 0;
  const magnitude = Math.abs(value);
  if (magnitude >= HALF_OVERFLOW_MIDPOINT) return sign | HALF_INFINITY;
  // Subnormals are multiples of 2^-24; a result of 1024 steps is the smallest normal, whose bits are also 1024.
  if (magnitude < MIN_NORMAL) return sign | roundHalfEven(magnitude / SUBNORMAL_STEP);
  let exponent = Math.floor(Math.log2(magnitude));
  // log2 can be off by one next to powers of two; settle 2^e ≤ magnitude < 2^(e+1) exactly.
  if (2 ** exponent > magnitude) exponent--;
  else if (2 ** (exponent + 1) <= magnitude) exponent++;
  // Scaling by a power of two is exact, so the mantissa is rounded once.
  let mantissa = roundHalfEven((magnitude / 2 ** exponent - 1) * 1024);
  if (mantissa === 1024) {
    mantissa = 0;
    exponent++;
  }
  if (exponent > 15) return sign | HALF_INFINITY;
  return sign | ((exponent + 15) << 10) | mantissa;
}

/** 2^(e - 25) for each biased exponent e: a normal half is (1024 + mantissa) · MANTISSA_UNIT[e] (Math.pow here dominated dequantisation). */
const MANTISSA_UNIT = Float64Array.from({ length: 32 }, (_, e) => 2 ** (e - 25));

/** The value of half bits (exact in float32 and in a JS number). */
export function halfBitsToFloat32(bits: number): number {
  const sign = bits & HALF_SIGN ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * SUBNORMAL_STEP;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * MANTISSA_UNIT[exponent]!;
}

/** The half just below `bits` (toward -∞). */
function nextHalfDown(bits: number): number {
  if (bits === 0) return HALF_SIGN | 1; // +0 → the smallest negative subnormal
  return bits & HALF_SIGN ? bits + 1 : bits - 1;
}

/** The half just above `bits` (toward +∞). */
function nextHalfUp(bits: number): number {
  if (bits === HALF_SIGN) return 1; // -0 → the smallest positive subnormal
  return bits & HALF_SIGN ? bits - 1 : bits + 1;
}

/** Half bits of the largest half ≤ value (round toward -∞). */
export function float32ToHalfBitsDown(value: number): number {
  const bits = float32ToHalfBits(value);
  return halfBitsToFloat32(bits) > value ? nextHalfDown(bits) : bits;
}

/** Half bits of the smallest half ≥ value (round toward +∞). */
export function float32ToHalfBitsUp(value: number): number {
  const bits = float32ToHalfBits(value);
  return halfBitsToFloat32(bits) < value ? nextHalfUp(bits) : bits;
}
