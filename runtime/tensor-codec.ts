/**
 * How the runtime stores a tensor's values as bytes on any tier: fp16, or 4-bit group-wise (group 64,
 * asymmetric min/max, kernels/quantize-4bit.ts) laid out as [codes: 32 bytes per group][scales: fp16
 * per group][minimums: fp16 per group]. Its byte count equals the planner's compressedBytes().
 */
import { COMPRESSION_GROUP_SIZE, compressedBytes } from "../core/compression.js";
import { fromFloat16Array, toFloat16Array } from "./fp16.js";
import { dequantize4bit, type Quantized4bit, quantize4bitInto } from "./kernels/quantize-4bit.js";

export type Encoding = "f16" | "q4";

const CODE_BYTES_PER_GROUP = COMPRESSION_GROUP_SIZE / 2;

export function encodedByteLength(values: number, encoding: Encoding): number {
  return encoding === "f16" ? values * 2 : compressedBytes(values);
}

/** Encodes fp32 values into `out` (which must hold encodedByteLength bytes). */
export function encode(
  values: Float32Array,
  encoding: Encoding,
  out: Uint8Array = new Uint8Array(encodedByteLength(values.length, encoding)),
): Uint8Array {
  encodeRange(values, encoding, out, values.length, 0);
  return out;
}

/**
 * Encodes `values`, the values [firstValue, firstValue + values.length) of a tensor of `totalValues`,
 * into their place in the tensor's stored bytes `out` (4-bit: firstValue a whole number of groups, and
 * values.length too unless the chunk ends the tensor). Encoding a tensor chunk by chunk gives the bytes
 * encode() gives for the whole.
 */
export function encodeRange(
  values: Float32Array,
  encoding: Encoding,
  out: Uint8Array,
  totalValues: number,
  firstValue: number,
): void {
  if (out.byteLength < encodedByteLength(totalValues, encoding))
    throw new RangeError(
      `encode: out holds ${out.byteLength} bytes, ${totalValues} values need ${encodedByteLength(totalValues, encoding)}`,
    );
  if (encoding === "f16") {
    toFloat16Array(values, new Uint16Array(out.buffer, out.byteOffset + firstValue * 2, values.length));
    return;
  }
  const last = firstValue + values.length === totalValues;
  if (firstValue % COMPRESSION_GROUP_SIZE !== 0 || (!last && values.length % COMPRESSION_GROUP_SIZE !== 0))
    throw new RangeError(
      `encode: 4-bit chunks cover whole groups of ${COMPRESSION_GROUP_SIZE} (values ${firstValue} to ${firstValue + values.length})`,
    );
  const firstGroup = firstValue / COMPRESSION_GROUP_SIZE;
  const groupCount = Math.ceil(values.length / COMPRESSION_GROUP_SIZE);
  if (out.byteOffset % 2 === 0) {
    quantize4bitInto(values, quantizedView(out, totalValues, firstGroup, groupCount), firstGroup);
    return;
  }
  // At an odd address (rows stored back to back), the fp16 scales cannot be viewed in place: quantised aside, then copied.
  const q = {
    packed: new Uint8Array(groupCount * CODE_BYTES_PER_GROUP),
    scale: new Uint16Array(groupCount),
    min: new Uint16Array(groupCount),
    groupSize: COMPRESSION_GROUP_SIZE,
  };
  quantize4bitInto(values, q, firstGroup);
  const groups = Math.ceil(totalValues / COMPRESSION_GROUP_SIZE);
  out.set(q.packed, firstGroup * CODE_BYTES_PER_GROUP);
  out.set(new Uint8Array(q.scale.buffer), groups * CODE_BYTES_PER_GROUP + firstGroup * 2);
  out.set(new Uint8Array(q.min.buffer), groups * (CODE_BYTES_PER_GROUP + 2) + firstGroup * 2);
}

/** A view of groups [firstGroup, firstGroup + groupCount) of a stored 4-bit tensor. */
function quantizedView(bytes: Uint8Array, totalValues: number, firstGroup: number, groupCount: number): Quantized4bit {
  const groups = Math.ceil(totalValues / COMPRESSION_GROUP_SIZE);
  const scales = new Uint16Array(bytes.buffer, bytes.byteOffset + groups * CODE_BYTES_PER_GROUP, 2 * groups);
  const start = firstGroup * COMPRESSION_GROUP_SIZE;
  return {
    packed: bytes.subarray(firstGroup * CODE_BYTES_PER_GROUP, (firstGroup + groupCount) * CODE_BYTES_PER_GROUP),
    scale: scales.subarray(firstGroup, firstGroup + groupCount),
    min: scales.subarray(groups + firstGroup, groups + firstGroup + groupCount),
    length: Math.min(totalValues, start + groupCount * COMPRESSION_GROUP_SIZE) - start,
    groupSize: COMPRESSION_GROUP_SIZE,
  };
}

/** Decodes all `totalValues` values into fp32. */
export function decode(bytes: Uint8Array, encoding: Encoding, totalValues: number, out: Float32Array): Float32Array {
  if (encoding === "f16")
    return fromFloat16Array(new Uint16Array(bytes.buffer, bytes.byteOffset, totalValues), out.subarray(0, totalValues));
  dequantize4bit(quantizedView(bytes, totalValues, 0, Math.ceil(totalValues / COMPRESSION_GROUP_SIZE)), out);
  return out;
}

/** Decodes a whole 4-bit tensor into fp16 bits (the dequantised weight buffer), a scratch's worth of groups at a time. */
export function decodeToFloat16(
  bytes: Uint8Array,
  totalValues: number,
  out: Uint16Array,
  scratch: Float32Array,
): Uint16Array {
  const groups = Math.ceil(totalValues / COMPRESSION_GROUP_SIZE);
  const groupsPerChunk = Math.max(1, Math.floor(scratch.length / COMPRESSION_GROUP_SIZE));
  for (let g = 0; g < groups; g += groupsPerChunk) {
    const view = quantizedView(bytes, totalValues, g, Math.min(groupsPerChunk, groups - g));
    dequantize4bit(view, scratch);
    const first = g * COMPRESSION_GROUP_SIZE;
    toFloat16Array(scratch.subarray(0, view.length), out.subarray(first, first + view.length));
  }
  return out;
}

/** Decodes values [first, first + count) of a stored tensor into fp32 (4-bit: through the groups covering them). */
export function decodeRange(
  bytes: Uint8Array,
  encoding: Encoding,
  totalValues: number,
  first: number,
  count: number,
  out: Float32Array,
  scratch?: Float32Array,
): Float32Array {
  if (encoding === "f16")
    return fromFloat16Array(new Uint16Array(bytes.buffer, bytes.byteOffset + first * 2, count), out.subarray(0, count));
  const g0 = Math.floor(first / COMPRESSION_GROUP_SIZE);
  const g1 = Math.ceil((first + count) / COMPRESSION_GROUP_SIZE);
  const view = quantizedView(bytes, totalValues, g0, g1 - g0);
  const buffer = scratch && scratch.length >= view.length ? scratch : new Float32Array(view.length);
  dequantize4bit(view, buffer);
  out.set(buffer.subarray(first - g0 * COMPRESSION_GROUP_SIZE, first - g0 * COMPRESSION_GROUP_SIZE + count));
  return out;
}

/**
 * The stored bytes of rows [firstRow, firstRow + rows) of a [*, rowValues] tensor, as a compact tensor of
 * their own (4-bit rows must cover whole groups). Concatenating every chunk's bytes moves the tensor's bytes once.
 */
export function rowChunkBytes(
  bytes: Uint8Array,
  encoding: Encoding,
  totalValues: number,
  rowValues: number,
  firstRow: number,
  rows: number,
): Uint8Array[] {
  if (encoding === "f16") return [bytes.subarray(firstRow * rowValues * 2, (firstRow + rows) * rowValues * 2)];
  if (rowValues % COMPRESSION_GROUP_SIZE !== 0)
    throw new Error(`4-bit rows of ${rowValues} values do not cover whole groups of ${COMPRESSION_GROUP_SIZE}`);
  const groups = Math.ceil(totalValues / COMPRESSION_GROUP_SIZE);
  const g0 = (firstRow * rowValues) / COMPRESSION_GROUP_SIZE;
  const g1 = ((firstRow + rows) * rowValues) / COMPRESSION_GROUP_SIZE;
  const scales = groups * CODE_BYTES_PER_GROUP;
  return [
    bytes.subarray(g0 * CODE_BYTES_PER_GROUP, g1 * CODE_BYTES_PER_GROUP),
    bytes.subarray(scales + g0 * 2, scales + g1 * 2),
    bytes.subarray(scales + groups * 2 + g0 * 2, scales + groups * 2 + g1 * 2),
  ];
}
