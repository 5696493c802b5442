/**
 * How the runtime stores a tensor's values as bytes on any tier: fp16, or 4-bit group-wise (group 64,
 * asymmetric min/max, as FlexGen does it) laid out as [codes: two per byte][scales: fp16 per group]
 * [minimums: fp16 per group]. Its byte count equals the planner's compressedBytes().
 */
import { compressedBytes, COMPRESSION_GROUP_SIZE } from "../planner/spillway/compression.js";
import { float16BitsToFloat32, float32ToFloat16Bits, fromFloat16Array, toFloat16Array } from "./fp16.js";

export type Encoding = "f16" | "q4";

export function encodedByteLength(values: number, encoding: Encoding): number {
  return encoding === "f16" ? values * 2 : compressedBytes(values);
}

/** Encodes fp32 values into `out` (which must hold encodedByteLength bytes). */
export function encode(values: Float32Array, encoding: Encoding, out: Uint8Array = new Uint8Array(encodedByteLength(values.length, encoding))): Uint8Array {
  if (encoding === "f16") {
    toFloat16Array(values, new Uint16Array(out.buffer, out.byteOffset, values.length));
    return out;
  }
  const n = values.length;
  const groups = Math.ceil(n / COMPRESSION_GROUP_SIZE);
  const codesBytes = groups * (COMPRESSION_GROUP_SIZE / 2);
  const scales = new DataView(out.buffer, out.byteOffset + codesBytes, groups * 4);
  out.fill(0, 0, codesBytes);
  for (let g = 0; g < groups; g++) {
    const start = g * COMPRESSION_GROUP_SIZE;
    const end = Math.min(n, start + COMPRESSION_GROUP_SIZE);
    let min = Infinity;
    let max = -Infinity;
    for (let i = start; i < end; i++) {
      const x = values[i]!;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    // Scale and minimum are stored in fp16: quantise against the stored values so decoding is exact.
    const minBits = float32ToFloat16Bits(min);
    const minStored = float16BitsToFloat32(minBits);
    const scaleBits = float32ToFloat16Bits((max - minStored) / 15);
    const scale = float16BitsToFloat32(scaleBits);
    scales.setUint16(g * 2, scaleBits, true);
    scales.setUint16(groups * 2 + g * 2, minBits, true);
    for (let i = start; i < end; i++) {
      const code = scale > 0 ? Math.min(15, Math.max(0, Math.round((values[i]! - minStored) / scale))) : 0;
      const byte = start / 2 + ((i - start) >> 1);
      out[byte] = out[byte]! | (((i - start) & 1) === 0 ? code : code << 4);
    }
  }
  return out;
}

/** Decodes `count` values starting at value `first` into fp32. */
export function decode(bytes: Uint8Array, encoding: Encoding, totalValues: number, out: Float32Array, first = 0, count = out.length): Float32Array {
  if (encoding === "f16") {
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset + first * 2, count);
    fromFloat16Array(bits, out.length === count ? out : out.subarray(0, count));
    return out;
  }
  const groups = Math.ceil(totalValues / COMPRESSION_GROUP_SIZE);
  const codesBytes = groups * (COMPRESSION_GROUP_SIZE / 2);
  const meta = new DataView(bytes.buffer, bytes.byteOffset + codesBytes, groups * 4);
  // Group by group: one scale and minimum lookup per 64 values, two values per byte.
  let j = 0;
  const end = first + count;
  for (let g = Math.floor(first / COMPRESSION_GROUP_SIZE); j < count; g++) {
    const scale = float16BitsToFloat32(meta.getUint16(g * 2, true));
    const min = float16BitsToFloat32(meta.getUint16(groups * 2 + g * 2, true));
    const groupStart = g * COMPRESSION_GROUP_SIZE;
    const from = Math.max(first, groupStart);
    const to = Math.min(end, groupStart + COMPRESSION_GROUP_SIZE);
    const byteBase = g * (COMPRESSION_GROUP_SIZE / 2);
    for (let i = from; i < to; i++) {
      const within = i - groupStart;
      const byte = bytes[byteBase + (within >> 1)]!;
      out[j++] = min + ((within & 1) === 0 ? byte & 15 : byte >> 4) * scale;
    }
  }
  return out;
}

/** Decodes a whole 4-bit tensor into fp16 bits (the dequantised weight buffer). */
export function decodeToFloat16(bytes: Uint8Array, encoding: Encoding, totalValues: number, out: Uint16Array, scratch: Float32Array): Uint16Array {
  for (let first = 0; first < totalValues; first += scratch.length) {
    const count = Math.min(scratch.length, totalValues - first);
    decode(bytes, encoding, totalValues, scratch, first, count);
    toFloat16Array(scratch.subarray(0, count), out.subarray(first, first + count));
  }
  return out;
}
