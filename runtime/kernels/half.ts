/**
 * IEEE 754 binary16 ("fp16", "half") bit conversions for the kernels: the runtime's fp16 module's
 * round-to-nearest-even, and directed roundings: the quantiser stores each group's minimum rounded down and its scale
 * rounded up, so the stored range still covers every value of the group.
 */

import { float16DecodeTable, float32ToFloat16Bits } from "../fp16.js";

const HALF_SIGN = 0x8000;

/** Half bits of `value` rounded to nearest, ties to even (the rounding of a float32→float16 cast). */
export const float32ToHalfBits = float32ToFloat16Bits;

/** The value of half bits (exact in float32 and in a JS number): one load from the runtime's decode table. */
export function halfBitsToFloat32(bits: number): number {
  return float16DecodeTable()[bits & 0xffff]!;
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
