/**
 * IEEE 754 half precision (fp16) and bfloat16 conversions. Weights are stored in fp16 (or bf16) and
 * computed in fp32, so decoding must be fast (a lookup table) and encoding must round exactly as
 * PyTorch does (round to nearest, ties to even, subnormals kept, overflow to infinity).
 */

const FP16_INFINITY_BITS = 0x7c00;
/** The canonical quiet NaN: exponent all ones, top mantissa bit set. */
const FP16_NAN_BITS = 0x7e00;
const FP16_SIGN_BIT = 0x8000;
/** 65504 is the largest finite fp16; 65520 lies half-way to 2^16, so it and anything above round to infinity. */
const FP16_OVERFLOW_THRESHOLD = 65520;
const FP16_MIN_NORMAL = 2 ** -14;
const FP16_SUBNORMAL_UNIT = 2 ** -24;

/** One double and its two 32-bit words, to read a double's exponent field without Math.log2. */
const EXPONENT_SCRATCH = new Float64Array(1);
const EXPONENT_SCRATCH_HIGH_BITS = new Uint32Array(EXPONENT_SCRATCH.buffer);
/** The word holding sign and exponent: the second on a little-endian host (the only kind the runtime reads weights on). */
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** 2^k for k in [-POWERS_OF_TWO_BIAS, POWERS_OF_TWO_BIAS) (exact), without a Math.pow per call. */
const POWERS_OF_TWO_BIAS = 32;
const POWERS_OF_TWO = Float64Array.from({ length: 2 * POWERS_OF_TWO_BIAS }, (_, i) => 2 ** (i - POWERS_OF_TWO_BIAS));

/** Rounds a non-negative number to an integer, ties to even. */
function roundHalfToEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor + (floor & 1);
}

/**
 * Encodes a number as fp16 bits, rounding once from the full double value (going through fp32 first
 * would round twice and could land on the wrong side of a tie).
 */
export function float32ToFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return FP16_NAN_BITS;
  const sign = x < 0 || (x === 0 && 1 / x < 0) ? FP16_SIGN_BIT : 0;
  const magnitude = Math.abs(x);
  if (magnitude >= FP16_OVERFLOW_THRESHOLD) return sign | FP16_INFINITY_BITS;
  if (magnitude < FP16_MIN_NORMAL) {
    // Subnormal: a count of 2^-24 units. Rounding up to 1024 units gives 0x0400, the smallest normal, as it should.
    return sign | roundHalfToEven(magnitude / FP16_SUBNORMAL_UNIT);
  }
  // floor(log2(magnitude)), exactly: the double's own exponent field (magnitude is a normal double here).
  EXPONENT_SCRATCH[0] = magnitude;
  const exponent = ((EXPONENT_SCRATCH_HIGH_BITS[HIGH_WORD]! >>> 20) & 0x7ff) - 1023;
  const significand = roundHalfToEven(magnitude * POWERS_OF_TWO[10 - exponent + POWERS_OF_TWO_BIAS]!); // in [1024, 2048]
  // A significand that rounded up to 2048 carries into the exponent field by plain addition.
  return sign | (((exponent + 15) << 10) + (significand - 1024));
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & FP16_SIGN_BIT ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * FP16_SUBNORMAL_UNIT;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * Every fp16 bit pattern decoded once: decoding a tensor is then one load per value. Built on the first
 * decode, not when the module loads: commands that never decode a tensor (plan, models) import this
 * module through shared code and would pay ~10 ms at every start.
 */
let fp16DecodeTable: Float32Array | undefined;
/** Every fp16 bit pattern's value (index: the bits), the same values float16BitsToFloat32 gives. */
export function float16DecodeTable(): Float32Array {
  return decodeTable();
}
function decodeTable(): Float32Array {
  if (!fp16DecodeTable) {
    fp16DecodeTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) fp16DecodeTable[h] = float16BitsToFloat32(h);
  }
  return fp16DecodeTable;
}

export function fromFloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length)
    throw new RangeError(`fromFloat16Array: destination holds ${dst.length} values, source has ${src.length}`);
  const table = decodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!;
  return dst;
}

// fp32 bit patterns for the array encoder (Giesen's float_to_half_fast3_rtne).
const F32_INFINITY_BITS = 0x7f800000;
/** 2^16 as fp32 bits: at or above it the result is infinity (values in [65520, 65536) overflow via the rounding carry). */
const F32_FP16_OVERFLOW_BITS = (127 + 16) << 23;
/** 2^-14, the smallest normal fp16, as fp32 bits. */
const F32_FP16_MIN_NORMAL_BITS = 113 << 23;
/** 0.5: adding it to a value below 2^-14 leaves the fp16 subnormal count in the low mantissa bits (fp32's own rounding is ties-to-even). */
const SUBNORMAL_MAGIC = 0.5;
const SUBNORMAL_MAGIC_BITS = 126 << 23;
/** One fp32 slot and its bits, for the subnormal rounding and bfloat16 decoding, shared so short calls allocate little. */
const SUBNORMAL_SCRATCH = new Float32Array(1);
const SUBNORMAL_SCRATCH_BITS = new Uint32Array(SUBNORMAL_SCRATCH.buffer);
/** Rebiases the exponent from 127 to 15 and adds the rounding bias below the 13 dropped bits. */
const REBIAS_AND_HALF = ((15 - 127) << 23) + 0xfff;

/**
 * Encodes fp32 values as fp16 bits with integer operations on the fp32 bit patterns (several times
 * faster than the scalar encoder, and identical for every fp32 input).
 */
export function toFloat16Array(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length)
    throw new RangeError(`toFloat16Array: destination holds ${dst.length} values, source has ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const scratch = SUBNORMAL_SCRATCH;
  const scratchBits = SUBNORMAL_SCRATCH_BITS;
  for (let i = 0; i < src.length; i++) {
    const f = bits[i]!;
    const sign = (f >>> 16) & FP16_SIGN_BIT;
    const magnitudeBits = f & 0x7fffffff;
    let h: number;
    if (magnitudeBits >= F32_FP16_OVERFLOW_BITS) {
      h = magnitudeBits > F32_INFINITY_BITS ? FP16_NAN_BITS : FP16_INFINITY_BITS;
    } else if (magnitudeBits < F32_FP16_MIN_NORMAL_BITS) {
      // |x| + 0.5 is exact in double; storing it to fp32 rounds once, ties to even, at the 2^-24 unit.
      scratch[0] = Math.abs(src[i]!) + SUBNORMAL_MAGIC;
      h = scratchBits[0]! - SUBNORMAL_MAGIC_BITS;
    } else {
      const mantissaOdd = (magnitudeBits >>> 13) & 1;
      h = (magnitudeBits + REBIAS_AND_HALF + mantissaOdd) >>> 13;
    }
    dst[i] = sign | h;
  }
  return dst;
}

/** bfloat16 is the top half of an fp32: decoding is a shift. */
export function bfloat16BitsToFloat32(b: number): number {
  SUBNORMAL_SCRATCH_BITS[0] = (b & 0xffff) << 16;
  return SUBNORMAL_SCRATCH[0]!;
}

export function fromBfloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length)
    throw new RangeError(`fromBfloat16Array: destination holds ${dst.length} values, source has ${src.length}`);
  const dstBits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) dstBits[i] = src[i]! << 16;
  return dst;
}
