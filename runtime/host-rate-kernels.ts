/**
 * The kernels `spillway profile` times to measure the host's kernel-class rates (STREAM copy and triad,
 * fp16 -> fp32 conversion), and the control block a measuring thread shares with the worker threads
 * that run them on slices of shared arrays (runtime/host-rate-worker.ts).
 */
import { fromFloat16Array } from "./fp16.js";

/** Int32 slots of the shared control block. */
export const CONTROL = {
  /** Bumped by the measuring thread to start a command; workers wait on it. */
  generation: 0,
  command: 1,
  /** Workers that finished the current command. */
  done: 2,
  /** Workers started and waiting for commands. */
  ready: 3,
  length: 4,
} as const;

export const COMMAND = { copy: 1, triad: 2, fp16ToFp32: 3, stop: 4 } as const;
export type KernelCommand = typeof COMMAND.copy | typeof COMMAND.triad | typeof COMMAND.fp16ToFp32;

/** STREAM's triad scalar. */
const TRIAD_SCALAR = 3;

/** The shared memory a measurement runs over, as buffers (what a worker receives) . */
export interface HostRateBuffers {
  readonly control: SharedArrayBuffer;
  /** STREAM's three arrays of doubles. */
  readonly a: SharedArrayBuffer;
  readonly b: SharedArrayBuffer;
  readonly c: SharedArrayBuffer;
  /** fp16 values to convert, and their fp32 destination (as many values as each STREAM array). */
  readonly half: SharedArrayBuffer;
  readonly out: SharedArrayBuffer;
}

export interface HostRateViews {
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly c: Float64Array;
  readonly half: Uint16Array;
  readonly out: Float32Array;
}

export function viewsOf(buffers: HostRateBuffers): HostRateViews {
  return {
    a: new Float64Array(buffers.a),
    b: new Float64Array(buffers.b),
    c: new Float64Array(buffers.c),
    half: new Uint16Array(buffers.half),
    out: new Float32Array(buffers.out),
  };
}

/** The share [start, end) of `values` that worker `index` of `count` works on. */
export function sliceOf(values: number, index: number, count: number): [number, number] {
  return [Math.floor((values * index) / count), Math.floor((values * (index + 1)) / count)];
}

/**
 * One kernel over elements [start, end): STREAM copy (c = a, a native memory copy), STREAM triad
 * (a = b + s * c, a typed-array loop) or fp16 -> fp32 conversion (the CPU backend's table decode).
 */
export function runKernel(command: KernelCommand, views: HostRateViews, start: number, end: number): void {
  const { a, b, c } = views;
  if (command === COMMAND.copy) c.subarray(start, end).set(a.subarray(start, end));
  else if (command === COMMAND.triad) {
    for (let i = start; i < end; i++) a[i] = b[i]! + TRIAD_SCALAR * c[i]!;
  } else fromFloat16Array(views.half.subarray(start, end), views.out.subarray(start, end));
}
