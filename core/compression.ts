/**
 * 4-bit group-wise compression as FlexGen and Spillway's runtime store it: groups of 64 values, each
 * group with an fp16 scale and an fp16 minimum, so 64 * 4 bits + 32 bits = 4.5 bits per value.
 */
export const COMPRESSION_GROUP_SIZE = 64;
export const COMPRESSED_BITS_PER_VALUE = 4 + (2 * 16) / COMPRESSION_GROUP_SIZE;

/** Stored bytes of `values` fp16 numbers compressed (whole groups). */
export function compressedBytes(values: number): number {
  const groups = Math.ceil(values / COMPRESSION_GROUP_SIZE);
  return groups * (COMPRESSION_GROUP_SIZE / 2 + 4);
}

/** Bytes per stored value relative to fp16 (4.5 / 16). */
export const COMPRESSED_FRACTION_OF_FP16 = COMPRESSED_BITS_PER_VALUE / 16;
