/**
 * A checkpoint tensor encoded as the runtime stores it (tensor-codec.ts), read straight into its
 * destination: fp16 from an F16 tensor is the file's bytes (one read, no conversion, no fp32 copy);
 * anything else (4-bit, or another dtype) is read, converted and encoded a chunk at a time, so no
 * fp32 copy of the whole tensor is made. The bytes equal encode(file.readFloat32(name), encoding).
 */
import { COMPRESSION_GROUP_SIZE } from "../core/compression.js";
import { elementCount, type SafetensorsFile } from "./safetensors.js";
import { type Encoding, encodedByteLength, encodeRange } from "./tensor-codec.js";

/** Values converted per chunk: whole 4-bit groups, 1 MiB of fp32 (stays in cache between conversion and encoding). */
export const ENCODE_CHUNK_VALUES = COMPRESSION_GROUP_SIZE * 4096;

/** Tensor `name` of `file` encoded into `out` (at least encodedByteLength bytes), or into a new array. */
export function readEncodedTensor(
  file: SafetensorsFile,
  name: string,
  encoding: Encoding,
  out?: Uint8Array,
  scratch: Float32Array = new Float32Array(ENCODE_CHUNK_VALUES),
): Uint8Array {
  const info = file.info(name);
  const values = elementCount(info.shape);
  const bytes = encodedByteLength(values, encoding);
  if (out && out.byteLength < bytes)
    throw new RangeError(`readEncodedTensor(${name}): out holds ${out.byteLength} bytes, ${encoding} needs ${bytes}`);
  const target = out ?? new Uint8Array(bytes);
  if (encoding === "f16" && info.dtype === "F16") {
    file.readRaw(name, target);
    return target;
  }
  const chunkValues = Math.max(COMPRESSION_GROUP_SIZE, scratch.length - (scratch.length % COMPRESSION_GROUP_SIZE));
  const buffer = scratch.length >= chunkValues ? scratch : new Float32Array(chunkValues);
  for (let first = 0; first < values; first += chunkValues) {
    const chunk = buffer.subarray(0, Math.min(chunkValues, values - first));
    file.readFloat32Range(name, first, chunk);
    encodeRange(chunk, encoding, target, values, first);
  }
  return target;
}
