/**
 * The CUDA backend's device operations: device addresses and the CudaNative kernels, enqueued on one
 * stream (the compute stream). Attention goes through in groups of queries small enough for the
 * working space's attention scratch, as the planner bounds it.
 */
import type { DeviceOps } from "../device-ops.js";
import type { Encoding } from "../tensor-codec.js";
import type { CudaNative } from "./native-api.js";

export interface CudaBufferTypes {
  readonly f32: number;
  readonly f16: number;
  readonly bytes: number;
  readonly i32: number;
}

/** OPT's LayerNorm epsilon. */
const LAYER_NORM_EPS = 1e-5;

export class CudaDeviceOps implements DeviceOps<CudaBufferTypes> {
  declare readonly bufferTypes?: CudaBufferTypes;
  /**
   * @param stream where every operation is enqueued
   * @param attentionScratch device scratch of `attentionFloats` fp32 values for attention
   */
  constructor(
    private readonly native: CudaNative,
    private readonly stream: number,
    private readonly attentionScratch: number,
    private readonly attentionFloats: number,
  ) {}

  f32At(buffer: number, start: number): number {
    return buffer + start * 4;
  }
  f16At(buffer: number, start: number): number {
    return buffer + start * 2;
  }
  bytesAt(buffer: number, start: number): number {
    return buffer + start;
  }
  i32At(buffer: number, start: number): number {
    return buffer + start * 4;
  }

  f16ToF32(src: number, dst: number, values: number): void {
    this.native.f16ToF32(src, dst, values, this.stream);
  }
  f32ToF16(src: number, dst: number, values: number): void {
    this.native.f32ToF16(src, dst, values, this.stream);
  }
  copyF32(src: number, dst: number, values: number): void {
    this.native.memcpyDtoD(dst, src, values * 4, this.stream);
  }
  layerNorm(x: number, gamma: number, beta: number, out: number, rows: number, cols: number): void {
    this.native.layerNorm(x, gamma, beta, out, rows, cols, LAYER_NORM_EPS, this.stream);
  }
  linear(x: number, w: number, bias: number | undefined, out: number, m: number, k: number, n: number): void {
    this.native.linear(x, w, bias ?? 0, out, m, k, n, this.stream);
  }
  add(x: number, y: number, values: number): void {
    this.native.add(x, y, values, this.stream);
  }
  relu(x: number, values: number): void {
    this.native.relu(x, values, this.stream);
  }
  dequantizeF16(src: number, values: number, dst: number): void {
    this.native.dequantize4F16(src, 1, values, dst, this.stream);
  }
  encodeRows(src: number, rows: number, rowValues: number, encoding: Encoding, dst: number): void {
    if (encoding === "f16") this.native.f32ToF16(src, dst, rows * rowValues, this.stream);
    else this.native.quantize4(src, rows, rowValues, dst, this.stream);
  }
  decodeRows(src: number, rows: number, rowValues: number, encoding: Encoding, dst: number): void {
    if (rows === 0) return;
    if (encoding === "f16") this.native.f16ToF32(src, dst, rows * rowValues, this.stream);
    else this.native.dequantize4F32(src, rows, rowValues, dst, this.stream);
  }
  attention(
    q: number,
    k: number,
    v: number,
    out: number,
    t: number,
    past: number,
    heads: number,
    headDim: number,
  ): void {
    const h = heads * headDim;
    // Queries in groups small enough for the scratch (causal: a group starting at row i has past + i rows before it).
    const perQuery = this.native.attentionScratchFloats(1, past + t - 1, heads);
    const group = Math.max(1, Math.min(t, Math.floor(this.attentionFloats / Math.max(1, perQuery))));
    for (let i0 = 0; i0 < t; i0 += group) {
      const rows = Math.min(group, t - i0);
      this.native.attention(
        q + i0 * h * 4,
        k,
        v,
        out + i0 * h * 4,
        this.attentionScratch,
        rows,
        past + i0,
        heads,
        headDim,
        this.stream,
      );
    }
  }
  argmaxMerge(
    logits: number,
    rows: number,
    cols: number,
    colOffset: number,
    bestValue: number,
    bestIndex: number,
    first: boolean,
  ): void {
    this.native.argmaxMerge(logits, rows, cols, colOffset, bestValue, bestIndex, first ? 1 : 0, this.stream);
  }
}
