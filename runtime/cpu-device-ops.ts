/**
 * The CPU backend's device operations: typed-array views of the device arena (or host memory) and the
 * JavaScript / WebAssembly kernels of runtime/kernels/. Every operation hands its kernel views trimmed
 * to exactly the values it touches, so the kernels see the arrays they always saw.
 */
import type { DeviceOps } from "./device-ops.js";
import { fromFloat16Array, toFloat16Array } from "./fp16.js";
import { addInPlace } from "./kernels/add.js";
import { argmax } from "./kernels/argmax.js";
import { attention } from "./kernels/attention.js";
import { layerNorm } from "./kernels/layer-norm.js";
import { linearF16 } from "./kernels/linear-f16.js";
import { reluInPlace } from "./kernels/relu.js";
import { decode, decodeToFloat16, type Encoding, encode, encodedByteLength } from "./tensor-codec.js";

export interface CpuBufferTypes {
  readonly f32: Float32Array;
  readonly f16: Uint16Array;
  readonly bytes: Uint8Array;
  readonly i32: Int32Array;
}

/** The scratch the CPU kernels work in: the linear kernel's decoded weight tile and tile output, attention's. */
export interface CpuKernelScratch {
  readonly linearTile?: Float32Array;
  readonly linearTileOut?: Float32Array;
  readonly attention?: Float32Array;
  /** fp32 values a 4-bit dequantisation goes through (a few groups at a time). */
  readonly dequantize?: Float32Array;
}

export class CpuDeviceOps implements DeviceOps<CpuBufferTypes> {
  declare readonly bufferTypes?: CpuBufferTypes;
  constructor(private readonly scratch: CpuKernelScratch = {}) {}

  f32At(buffer: Float32Array, start: number): Float32Array {
    return start === 0 ? buffer : buffer.subarray(start);
  }
  f16At(buffer: Uint16Array, start: number): Uint16Array {
    return start === 0 ? buffer : buffer.subarray(start);
  }
  bytesAt(buffer: Uint8Array, start: number): Uint8Array {
    return start === 0 ? buffer : buffer.subarray(start);
  }
  i32At(buffer: Int32Array, start: number): Int32Array {
    return start === 0 ? buffer : buffer.subarray(start);
  }

  f16ToF32(src: Uint16Array, dst: Float32Array, values: number): void {
    fromFloat16Array(src.subarray(0, values), dst.subarray(0, values));
  }
  f32ToF16(src: Float32Array, dst: Uint16Array, values: number): void {
    toFloat16Array(src.subarray(0, values), dst.subarray(0, values));
  }
  copyF32(src: Float32Array, dst: Float32Array, values: number): void {
    dst.set(src.subarray(0, values));
  }
  layerNorm(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    out: Float32Array,
    rows: number,
    cols: number,
  ): void {
    layerNorm(x.subarray(0, rows * cols), gamma, beta, out.subarray(0, rows * cols), rows, cols);
  }
  linear(
    x: Float32Array,
    w: Uint16Array,
    bias: Float32Array | undefined,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
  ): void {
    const { linearTile, linearTileOut } = this.scratch;
    if (!linearTile || !linearTileOut) throw new Error("internal: a linear without the linear kernel's scratch");
    linearF16(
      x.subarray(0, m * k),
      w.subarray(0, n * k),
      bias?.subarray(0, n),
      out.subarray(0, m * n),
      m,
      k,
      n,
      linearTile,
      linearTileOut,
    );
  }
  add(x: Float32Array, y: Float32Array, values: number): void {
    addInPlace(x.subarray(0, values), y.subarray(0, values));
  }
  relu(x: Float32Array, values: number): void {
    reluInPlace(x.subarray(0, values));
  }
  dequantizeF16(src: Uint8Array, values: number, dst: Uint16Array): void {
    decodeToFloat16(src, values, dst.subarray(0, values), this.scratch.dequantize ?? new Float32Array(4096));
  }
  encodeRows(src: Float32Array, rows: number, rowValues: number, encoding: Encoding, dst: Uint8Array): void {
    const rowBytes = encodedByteLength(rowValues, encoding);
    for (let i = 0; i < rows; i++)
      encode(
        src.subarray(i * rowValues, (i + 1) * rowValues),
        encoding,
        dst.subarray(i * rowBytes, (i + 1) * rowBytes),
      );
  }
  decodeRows(src: Uint8Array, rows: number, rowValues: number, encoding: Encoding, dst: Float32Array): void {
    const rowBytes = encodedByteLength(rowValues, encoding);
    for (let i = 0; i < rows; i++)
      decode(
        src.subarray(i * rowBytes, (i + 1) * rowBytes),
        encoding,
        rowValues,
        dst.subarray(i * rowValues, (i + 1) * rowValues),
      );
  }
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    t: number,
    past: number,
    heads: number,
    headDim: number,
  ): void {
    const h = heads * headDim;
    const ctx = past + t;
    attention(
      q.subarray(0, t * h),
      k.subarray(0, ctx * h),
      v.subarray(0, ctx * h),
      out.subarray(0, t * h),
      t,
      past,
      heads,
      headDim,
      this.scratch.attention,
    );
  }
  argmaxMerge(
    logits: Float32Array,
    rows: number,
    cols: number,
    colOffset: number,
    bestValue: Float32Array,
    bestIndex: Int32Array,
    first: boolean,
  ): void {
    if (first) {
      bestValue.fill(-Infinity, 0, rows);
      bestIndex.fill(0, 0, rows);
    }
    for (let s = 0; s < rows; s++) {
      const i = argmax(logits, s * cols, cols);
      // Strictly greater: ties keep the earlier (lower) index, as one argmax over the whole row does.
      if (logits[s * cols + i]! > bestValue[s]!) {
        bestValue[s] = logits[s * cols + i]!;
        bestIndex[s] = colOffset + i;
      }
    }
  }
}
