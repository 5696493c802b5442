/**
 * The arguments of every CudaNative function and how native/cuda/addon.cpp checks them, for the emulated
 * device (emulated-native.ts): one table with each function's parameters in order (as addon.cpp's kExports
 * signatures list them) and the kind of each, and the checks that throw the addon's TypeErrors.
 *
 * A malformed argument: a TypeError with `code` ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE /
 * ERR_MISSING_ARGS / ERR_INVALID_ARG_COUNT, "<function>: <argument> must be ..., got ...".
 */

import { EXPERT_BITS } from "../../core/expert-policy.js";
import type { CUDA_NATIVE_FUNCTIONS } from "./native-api.js";

/**
 * What an argument must be:
 * - pointer, count, stream, event: a non-negative integer below 2^53 (the addon's size_t arguments and
 *   handles; an event also not 0);
 * - int: 0 .. 2^31 - 1 (the addon's int arguments); byte: 0 .. 255; bits: a group-wise width
 *   (kernels.h spw_groupwise_bytes: 2, 3, 4, 8 or 16); finite: a finite number;
 * - boolean; host: any TypedArray, DataView or ArrayBuffer (host memory for a copy); hostBuffer: an
 *   ArrayBuffer (hostFree's; whether it is a live hostAlloc() buffer is the device's check).
 */
export type NativeArgumentKind =
  | "pointer"
  | "count"
  | "stream"
  | "event"
  | "int"
  | "byte"
  | "bits"
  | "finite"
  | "boolean"
  | "host"
  | "hostBuffer";

export type CudaNativeFunction = (typeof CUDA_NATIVE_FUNCTIONS)[number];

/** Each function's parameters, in order, and their kinds (native/cuda/addon.cpp, kExports and each entry point). */
export const NATIVE_ARGUMENTS: {
  readonly [F in CudaNativeFunction]: Readonly<Record<string, NativeArgumentKind>>;
} = {
  probe: {},
  deviceProperties: { device: "int" },
  setDevice: { device: "int" },
  memGetInfo: {},
  deviceSynchronize: {},
  malloc: { bytes: "count" },
  free: { pointer: "pointer" },
  hostAlloc: { bytes: "count" },
  hostFree: { buffer: "hostBuffer" },
  streamCreate: {},
  streamDestroy: { stream: "stream" },
  streamSynchronize: { stream: "stream" },
  streamQuery: { stream: "stream" },
  eventCreate: { timing: "boolean" },
  eventDestroy: { event: "event" },
  eventRecord: { event: "event", stream: "stream" },
  eventSynchronize: { event: "event" },
  eventQuery: { event: "event" },
  eventElapsedMs: { start: "event", end: "event" },
  streamWaitEvent: { stream: "stream", event: "event" },
  memcpyHtoD: { dst: "pointer", src: "host", stream: "stream" },
  memcpyDtoH: { dst: "host", src: "pointer", stream: "stream" },
  memcpyDtoD: { dst: "pointer", src: "pointer", bytes: "count", stream: "stream" },
  memset: { dst: "pointer", byte: "byte", bytes: "count", stream: "stream" },
  linear: {
    x: "pointer",
    w: "pointer",
    bias: "pointer",
    out: "pointer",
    m: "int",
    k: "int",
    n: "int",
    stream: "stream",
  },
  layerNorm: {
    x: "pointer",
    gamma: "pointer",
    beta: "pointer",
    out: "pointer",
    rows: "int",
    cols: "int",
    eps: "finite",
    stream: "stream",
  },
  softmaxRows: { x: "pointer", rows: "int", cols: "int", stream: "stream" },
  attentionScratchFloats: { t: "int", past: "int", heads: "int" },
  attention: {
    q: "pointer",
    k: "pointer",
    v: "pointer",
    out: "pointer",
    scratch: "pointer",
    t: "int",
    past: "int",
    heads: "int",
    headDim: "int",
    stream: "stream",
  },
  relu: { x: "pointer", n: "count", stream: "stream" },
  add: { x: "pointer", y: "pointer", n: "count", stream: "stream" },
  embedding: {
    table: "pointer",
    ids: "pointer",
    count: "int",
    dim: "int",
    rows: "int",
    out: "pointer",
    stream: "stream",
  },
  f32ToF16: { x: "pointer", out: "pointer", n: "count", stream: "stream" },
  f16ToF32: { x: "pointer", out: "pointer", n: "count", stream: "stream" },
  q4Bytes: { rowValues: "count" },
  dequantize4F16: { stored: "pointer", rows: "count", rowValues: "count", out: "pointer", stream: "stream" },
  dequantize4F32: { stored: "pointer", rows: "count", rowValues: "count", out: "pointer", stream: "stream" },
  quantize4: { x: "pointer", rows: "count", rowValues: "count", stored: "pointer", stream: "stream" },
  groupwiseBytes: { values: "count", bits: "bits" },
  dequantizeGroupwiseF32: { stored: "pointer", values: "count", bits: "bits", out: "pointer", stream: "stream" },
  linearGroupwise: {
    x: "pointer",
    w: "pointer",
    bits: "bits",
    out: "pointer",
    m: "int",
    k: "int",
    n: "int",
    stream: "stream",
  },
  expertSwiglu: {
    x: "pointer",
    expert: "pointer",
    bits: "bits",
    m: "int",
    hidden: "int",
    ffn: "int",
    scratch: "pointer",
    out: "pointer",
    stream: "stream",
  },
  linearGroupwiseBias: {
    x: "pointer",
    w: "pointer",
    bits: "bits",
    bias: "pointer",
    out: "pointer",
    m: "int",
    k: "int",
    n: "int",
    stream: "stream",
  },
  rmsNorm: {
    x: "pointer",
    weight: "pointer",
    out: "pointer",
    rows: "int",
    cols: "int",
    eps: "finite",
    stream: "stream",
  },
  rope: {
    x: "pointer",
    rows: "int",
    heads: "int",
    headDim: "int",
    rowsPerSequence: "int",
    past: "int",
    theta: "finite",
    stream: "stream",
  },
  gqaAttention: {
    q: "pointer",
    k: "pointer",
    v: "pointer",
    out: "pointer",
    scratch: "pointer",
    t: "int",
    past: "int",
    heads: "int",
    kvHeads: "int",
    headDim: "int",
    stream: "stream",
  },
  moeCombine: {
    x: "pointer",
    outputs: "pointer",
    weights: "pointer",
    rows: "int",
    k: "int",
    cols: "int",
    stream: "stream",
  },
  gatherRows: {
    src: "pointer",
    srcRows: "int",
    index: "pointer",
    rows: "int",
    cols: "int",
    dst: "pointer",
    stream: "stream",
  },
  scatterRows: {
    src: "pointer",
    index: "pointer",
    rows: "int",
    cols: "int",
    dst: "pointer",
    dstRows: "int",
    stream: "stream",
  },
  routerTopK: {
    logits: "pointer",
    rows: "int",
    experts: "int",
    k: "int",
    outExperts: "pointer",
    outWeights: "pointer",
    stream: "stream",
  },
  sigmoidGatedAdd: { x: "pointer", y: "pointer", gate: "pointer", rows: "int", cols: "int", stream: "stream" },
  argmaxRows: { x: "pointer", rows: "int", cols: "int", out: "pointer", stream: "stream" },
  argmaxMerge: {
    x: "pointer",
    rows: "int",
    cols: "int",
    colOffset: "int",
    bestValue: "pointer",
    bestIndex: "pointer",
    first: "int",
    stream: "stream",
  },
  copy: { src: "pointer", dst: "pointer", bytes: "count", stream: "stream" },
};

export function argError(
  code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE" | "ERR_MISSING_ARGS" | "ERR_INVALID_ARG_COUNT",
  message: string,
): TypeError {
  return Object.assign(new TypeError(message), { code });
}

export function typeName(value: unknown): string {
  return value === null ? "null" : typeof value;
}

/** Throws the addon's TypeError for the first argument (in order) that is not of its kind. */
export function checkArguments(
  fn: string,
  names: readonly string[],
  kinds: readonly NativeArgumentKind[],
  args: readonly unknown[],
): void {
  for (let i = 0; i < kinds.length; i++) checkArgument(fn, names[i]!, kinds[i]!, args[i]);
}

function checkArgument(fn: string, arg: string, kind: NativeArgumentKind, value: unknown): void {
  switch (kind) {
    case "pointer":
      return void safeArg(fn, arg, value, "a device address");
    case "count":
      return void safeArg(fn, arg, value, "a count");
    case "stream":
      return void safeArg(fn, arg, value, "a device address");
    case "event":
      if (safeArg(fn, arg, value, "an event handle") === 0)
        throw argError("ERR_INVALID_ARG_VALUE", `${fn}: ${arg} must be an event from eventCreate(), got 0`);
      return;
    case "int":
      return void intArg(fn, arg, value);
    case "byte": {
      const v = numberArg(fn, arg, value);
      if (!Number.isInteger(v) || v < 0 || v > 255)
        throw argError("ERR_INVALID_ARG_VALUE", `${fn}: ${arg} must be an integer from 0 to 255, got ${v}`);
      return;
    }
    case "bits": {
      const v = intArg(fn, arg, value);
      if (!(EXPERT_BITS as readonly number[]).includes(v))
        throw argError("ERR_INVALID_ARG_VALUE", `${fn}: ${arg} must be 2, 3, 4, 8 or 16, got ${v}`);
      return;
    }
    case "finite": {
      const v = numberArg(fn, arg, value);
      if (!Number.isFinite(v))
        throw argError("ERR_INVALID_ARG_VALUE", `${fn}: ${arg} must be a finite number, got ${v}`);
      return;
    }
    case "boolean":
      if (typeof value !== "boolean")
        throw argError("ERR_INVALID_ARG_TYPE", `${fn}: ${arg} must be a boolean, got ${typeName(value)}`);
      return;
    case "host":
      if (!ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer))
        throw argError(
          "ERR_INVALID_ARG_TYPE",
          `${fn}: ${arg} must be a TypedArray, DataView or ArrayBuffer, got ${typeName(value)}`,
        );
      return;
    case "hostBuffer":
      if (!(value instanceof ArrayBuffer))
        throw argError(
          "ERR_INVALID_ARG_TYPE",
          `${fn}: ${arg} must be an ArrayBuffer from hostAlloc(), got ${typeName(value)}${ArrayBuffer.isView(value) ? " (not an ArrayBuffer; pass the buffer, not a view of it)" : ""}`,
        );
      return;
  }
}

/** Host memory for a copy (an argument checked as "host"), as bytes. */
export function hostBytes(value: ArrayBufferView | ArrayBuffer): {
  buffer: ArrayBufferLike;
  offset: number;
  bytes: number;
} {
  if (ArrayBuffer.isView(value)) return { buffer: value.buffer, offset: value.byteOffset, bytes: value.byteLength };
  return { buffer: value, offset: 0, bytes: value.byteLength };
}

function numberArg(fn: string, arg: string, value: unknown): number {
  if (typeof value !== "number")
    throw argError("ERR_INVALID_ARG_TYPE", `${fn}: ${arg} must be a number, got ${typeName(value)}`);
  return value;
}

/** A non-negative integer below 2^53: a device address, stream, count (the addon's size_t arguments). */
function safeArg(fn: string, arg: string, value: unknown, what: string): number {
  const v = numberArg(fn, arg, value);
  if (!Number.isSafeInteger(v) || v < 0)
    throw argError(
      "ERR_INVALID_ARG_VALUE",
      `${fn}: ${arg} must be ${what} (a non-negative integer below 2^53), got ${v}`,
    );
  return v;
}

/** The addon's int arguments: 0 .. 2^31 - 1. */
function intArg(fn: string, arg: string, value: unknown): number {
  const v = numberArg(fn, arg, value);
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff)
    throw argError("ERR_INVALID_ARG_VALUE", `${fn}: ${arg} must be an integer from 0 to 2147483647, got ${v}`);
  return v;
}
