/**
 * The operations the OPT forward pass needs from a device, one call per operation (a matmul, a
 * LayerNorm, a row encode), so the math above the kernels is written once (opt-forward.ts) and each
 * backend supplies its buffers and kernels: the CPU backend's typed-array views of its device arena
 * over runtime/kernels/ (cpu-device-ops.ts), the CUDA backend's device pointers over the CudaNative
 * kernels on its compute stream (cuda/cuda-device-ops.ts).
 *
 * Buffers are whatever the backend calls memory (a typed array, a device address); a buffer argument
 * means "from here on", and every operation is told how many values it touches.
 */
import type { Encoding } from "./tensor-codec.js";

/** What a backend calls a buffer of fp32 values, fp16 bits, raw bytes and int32 values. */
export interface DeviceBufferTypes {
  readonly f32: unknown;
  readonly f16: unknown;
  readonly bytes: unknown;
  readonly i32: unknown;
}

export interface DeviceOps<B extends DeviceBufferTypes> {
  /** Never set: names the buffer types, so that a caller's buffers are checked against the ops it passes. */
  readonly bufferTypes?: B;
  /** The buffer from value (or byte) `start` on. */
  f32At(buffer: B["f32"], start: number): B["f32"];
  f16At(buffer: B["f16"], start: number): B["f16"];
  bytesAt(buffer: B["bytes"], start: number): B["bytes"];
  i32At(buffer: B["i32"], start: number): B["i32"];

  f16ToF32(src: B["f16"], dst: B["f32"], values: number): void;
  f32ToF16(src: B["f32"], dst: B["f16"], values: number): void;
  copyF32(src: B["f32"], dst: B["f32"], values: number): void;
  /** out[rows, cols] = LayerNorm(x) · gamma + beta (eps 1e-5, OPT's). */
  layerNorm(x: B["f32"], gamma: B["f32"], beta: B["f32"], out: B["f32"], rows: number, cols: number): void;
  /** out[m, n] = x[m, k] · w[n, k]ᵀ + bias, fp32 activations and fp16 weights. */
  linear(x: B["f32"], w: B["f16"], bias: B["f32"] | undefined, out: B["f32"], m: number, k: number, n: number): void;
  /** x += y. */
  add(x: B["f32"], y: B["f32"], values: number): void;
  relu(x: B["f32"], values: number): void;
  /** A 4-bit weight tensor of `values` values (tensor-codec's layout) dequantised into fp16, for linear(). */
  dequantizeF16(src: B["bytes"], values: number, dst: B["f16"]): void;
  /** `rows` fp32 rows of `rowValues` encoded as the KV cache stores them (fp16 or 4-bit), packed at `dst`. */
  encodeRows(src: B["f32"], rows: number, rowValues: number, encoding: Encoding, dst: B["bytes"]): void;
  /** The inverse of encodeRows(). */
  decodeRows(src: B["bytes"], rows: number, rowValues: number, encoding: Encoding, dst: B["f32"]): void;
  /** Causal multi-head attention of t new queries over past + t rows of K and V (one sequence). */
  attention(
    q: B["f32"],
    k: B["f32"],
    v: B["f32"],
    out: B["f32"],
    t: number,
    past: number,
    heads: number,
    headDim: number,
  ): void;
  /**
   * Each of `rows` rows of logits [rows, cols] (columns colOffset.. of the full row) merged into a
   * running best value and index per row, ties keeping the lower index; `first` starts afresh.
   */
  argmaxMerge(
    logits: B["f32"],
    rows: number,
    cols: number,
    colOffset: number,
    bestValue: B["f32"],
    bestIndex: B["i32"],
    first: boolean,
  ): void;
}
