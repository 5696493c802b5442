/**
 * One kernel correctness suite for every CudaNative implementation: the emulated device (always), the
 * real addon's sources built for the CPU against the host emulation of the CUDA runtime (kernels.cu
 * itself, each CUDA thread a fiber; skipped where no C++ compiler is found) and the real CUDA addon
 * (skipped, with the reason shown, where no usable GPU is found).
 *
 * Method (native/cuda/kernels.h is the contract):
 * - floating-point kernels (linear, LayerNorm, softmax, attention) are compared with float64 references
 *   written here, by the relative error ‖out − ref‖₂ / ‖ref‖₂; bit-exact kernels (relu, add,
 *   embedding, fp16 conversions, 4-bit (de)quantisation, argmax, copies) against the CPU backend's
 *   functions (runtime/fp16.ts, runtime/tensor-codec.ts, runtime/kernels/argmax.ts) or exact
 *   expectations;
 * - every check draws fresh random inputs (seeded by its own label, so both implementations see the same);
 * - every output buffer is poisoned (0xFF bytes: NaN as fp32 and fp16, -1 as int32) on the stream before
 *   the kernel, and every element is checked to have been written; where a correct output may itself
 *   hold the poison pattern, the kernel runs again under a second poison (0x00);
 * - everything runs on a created stream; uploads and downloads alternate between pinned (hostAlloc)
 *   and pageable buffers; the stream is synchronised before anything is read back (every call throws on
 *   failure, so the synchronisation is where an asynchronous error would surface);
 * - everything allocated is freed (the emulated device checks that nothing is left).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExpertBits } from "../../core/expert-policy.js";
import {
  createEmulatedNative,
  type EmulatedNative,
  type EmulatedNativeOptions,
  splitHalves,
} from "../../runtime/cuda/emulated-native.js";
import { usableCuda } from "../../runtime/cuda/load-native.js";
import type { CudaNative } from "../../runtime/cuda/native-api.js";
import { fromFloat16Array, toFloat16Array } from "../../runtime/fp16.js";
import { argmaxRows } from "../../runtime/kernels/argmax.js";
import { linearScratchLength } from "../../runtime/kernels/linear-f16.js";
import { linearQuantized } from "../../runtime/kernels/linear-quantized.js";
import {
  dequantizeGroupwise,
  groupFormat,
  quantizedByteLength,
  quantizeGroupwise,
} from "../../runtime/moe/expert-quantization.js";
import { gqaAttention as gqaAttentionCpu } from "../../runtime/moe/gqa-attention.js";
import { route } from "../../runtime/moe/mixtral-model.js";
import { rmsNorm as rmsNormCpu } from "../../runtime/moe/rms-norm.js";
import { Rope } from "../../runtime/moe/rope.js";
import { siluGateInPlace } from "../../runtime/moe/silu.js";
import { decode, decodeToFloat16, encode } from "../../runtime/tensor-codec.js";
import { random } from "../helpers.js";
import { hostCudaAddon } from "../host-cuda-addon.js";

const MIB = 2 ** 20;
const POISON = 0xff;
const GEMV_MAX_ROWS = 8;
const Q4_GROUP = 64;
const Q4_CODE_BYTES = Q4_GROUP / 2;
const HALF_NAN_BITS = 0x7e00;

// ---------------------------------------------------------------------------------------------------
// The implementations.
// ---------------------------------------------------------------------------------------------------

interface Implementation {
  readonly name: string;
  /** Why this implementation's tests are skipped (shown by the runner), or undefined. */
  readonly skip: string | undefined;
  open(options?: EmulatedNativeOptions): CudaNative;
  /** After a test that passed: nothing left allocated (where the implementation can tell). */
  checkReleased?(native: CudaNative): void;
}

const cuda = usableCuda();
const host = hostCudaAddon();

const IMPLEMENTATIONS: readonly Implementation[] = [
  {
    name: "emulated",
    skip: undefined,
    open: (options = {}) => createEmulatedNative({ deviceBytes: 64 * MIB, ...options }),
    checkReleased(native) {
      const stats = (native as EmulatedNative).stats;
      assert.equal(stats.liveAllocations, 0, "device allocations left behind");
      assert.equal(stats.pinnedHostBytes, 0, "pinned host bytes left behind");
      assert.equal(stats.pendingOps, 0, "queued work left behind");
    },
  },
  {
    name: "kernels.cu on the CPU",
    skip: "reason" in host ? `no host build of the CUDA sources here: ${host.reason}` : undefined,
    open() {
      if (!("native" in host)) throw new Error("unreachable: the host build is skipped");
      return host.native;
    },
    checkReleased(native) {
      const memory = native.memGetInfo();
      assert.equal(memory.freeBytes, memory.totalBytes, "device allocations left behind");
    },
  },
  {
    name: "cuda",
    skip: "reason" in cuda ? `no usable GPU here: ${cuda.reason}` : undefined,
    open() {
      if (!("native" in cuda)) throw new Error("unreachable: the cuda implementation is skipped");
      cuda.native.setDevice(0);
      return cuda.native;
    },
  },
];

// ---------------------------------------------------------------------------------------------------
// Inputs: seeded by each check's label, so every check draws its own values.
// ---------------------------------------------------------------------------------------------------

/** FNV-1a of the label: a distinct, reproducible seed per check. */
function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Uniform values in (center - amplitude, center + amplitude), never exactly zero for center 0. */
function randomF32(length: number, label: string, amplitude = 1, center = 0): Float32Array {
  const next = random(seedOf(label));
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    let v = 0;
    while (v === 0) v = (next() * 2 - 1) * amplitude + center;
    x[i] = v;
  }
  return x;
}

/** Random fp16 bits (of values uniform in ±amplitude, non-zero). */
function randomF16(length: number, label: string, amplitude = 1): Uint16Array {
  const bits = toFloat16Array(randomF32(length, label, amplitude));
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7fff) === 0) bits[i] = 0x3c00;
  return bits;
}

function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

// ---------------------------------------------------------------------------------------------------
// A session on one device: a created stream, tracked allocations, poisoning, pinned/pageable copies.
// ---------------------------------------------------------------------------------------------------

class Session {
  readonly stream: number;
  private readonly allocations: number[] = [];
  private readonly streams: number[] = [];
  private readonly events: number[] = [];
  /** Pinned upload buffers, freed once the stream has been synchronised past their copies. */
  private pendingPinned: ArrayBuffer[] = [];
  private copies = 0;

  constructor(readonly native: CudaNative) {
    this.stream = this.newStream();
  }

  newStream(): number {
    const s = this.native.streamCreate();
    this.streams.push(s);
    return s;
  }

  newEvent(timing: boolean): number {
    const e = this.native.eventCreate(timing);
    this.events.push(e);
    return e;
  }

  /** Device memory for `bytes` bytes starting `offset` bytes into a fresh allocation (offsets test alignment). */
  alloc(bytes: number, offset = 0): number {
    const base = this.native.malloc(bytes + offset);
    this.allocations.push(base);
    return base + offset;
  }

  /** Fills [pointer, pointer + bytes) with the poison byte on the stream. */
  poison(pointer: number, bytes: number, byte = POISON): void {
    this.native.memset(pointer, byte, bytes, this.stream);
  }

  /** Whether this copy goes through a pinned buffer (every other copy does). */
  private pinnedTurn(): boolean {
    return this.copies++ % 2 === 0;
  }

  /** Uploads `data` into `pointer` on the stream (pinned or pageable, alternately). */
  upload(pointer: number, data: ArrayBufferView, stream = this.stream): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.pinnedTurn()) {
      const pinned = this.native.hostAlloc(bytes.length);
      new Uint8Array(pinned).set(bytes);
      this.native.memcpyHtoD(pointer, new Uint8Array(pinned), stream);
      this.pendingPinned.push(pinned);
    } else {
      this.native.memcpyHtoD(pointer, bytes, stream);
    }
  }

  /** A fresh allocation (at `offset` bytes into it) holding `data`. */
  put(data: ArrayBufferView, offset = 0): number {
    const pointer = this.alloc(data.byteLength, offset);
    this.upload(pointer, data);
    return pointer;
  }

  /** Synchronises the stream (where asynchronous errors surface) and releases pinned upload buffers. */
  sync(): void {
    this.native.streamSynchronize(this.stream);
    for (const b of this.pendingPinned) this.native.hostFree(b);
    this.pendingPinned = [];
  }

  /** Synchronises, then downloads `bytes` bytes (pinned or pageable, alternately). */
  getBytes(pointer: number, bytes: number): Uint8Array {
    this.sync();
    if (this.pinnedTurn()) {
      const pinned = this.native.hostAlloc(bytes);
      this.native.memcpyDtoH(new Uint8Array(pinned), pointer, this.stream);
      this.native.streamSynchronize(this.stream);
      const out = new Uint8Array(pinned).slice();
      this.native.hostFree(pinned);
      return out;
    }
    const out = new Uint8Array(bytes);
    this.native.memcpyDtoH(out, pointer, this.stream);
    this.native.streamSynchronize(this.stream);
    return out;
  }

  getF32(pointer: number, count: number): Float32Array {
    return new Float32Array(this.getBytes(pointer, count * 4).buffer);
  }

  getU16(pointer: number, count: number): Uint16Array {
    return new Uint16Array(this.getBytes(pointer, count * 2).buffer);
  }

  getI32(pointer: number, count: number): Int32Array {
    return new Int32Array(this.getBytes(pointer, count * 4).buffer);
  }

  close(): void {
    const errors: unknown[] = [];
    const attempt = (f: () => void) => {
      try {
        f();
      } catch (error) {
        errors.push(error);
      }
    };
    for (const s of this.streams) attempt(() => this.native.streamSynchronize(s));
    for (const b of this.pendingPinned) attempt(() => this.native.hostFree(b));
    for (const p of this.allocations) attempt(() => this.native.free(p));
    for (const e of this.events) attempt(() => this.native.eventDestroy(e));
    for (const s of this.streams) attempt(() => this.native.streamDestroy(s));
    if (errors.length > 0) throw errors[0];
  }
}

/** Runs `body` on a fresh session of the implementation, freeing everything afterwards. */
function withSession(impl: Implementation, body: (s: Session) => void, options?: EmulatedNativeOptions): void {
  const native = impl.open(options);
  const session = new Session(native);
  try {
    body(session);
  } catch (error) {
    try {
      session.close();
    } catch {
      // the body's failure is the one to report
    }
    throw error;
  }
  session.close();
  impl.checkReleased?.(native);
}

// ---------------------------------------------------------------------------------------------------
// Checks.
// ---------------------------------------------------------------------------------------------------

/** Every element written: no NaN (the poison) where a value is expected. */
function assertWritten(out: ArrayLike<number>, what: string): void {
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(out[i]!)) assert.fail(`${what}: element ${i} of ${out.length} is NaN (not written, or wrong)`);
  }
}

/** ‖out − ref‖₂ / ‖ref‖₂. */
function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(out.length, ref.length);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    diff += d * d;
    norm += ref[i]! * ref[i]!;
  }
  return Math.sqrt(diff) / Math.sqrt(norm);
}

function assertClose(out: ArrayLike<number>, ref: ArrayLike<number>, tolerance: number, what: string): void {
  assertWritten(out, what);
  const err = relativeError(out, ref);
  assert.ok(err < tolerance, `${what}: relative error ${err.toExponential(3)} ≥ ${tolerance}`);
}

/** Bit-for-bit equality, reporting the first differing element. */
function assertSameArray(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  show: (v: number) => string = (v) => `0x${v.toString(16)}`,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i])
      assert.fail(`${what}: element ${i} is ${show(actual[i]!)}, expected ${show(expected[i]!)}`);
  }
}

function assertSameF32Bits(actual: Float32Array, expected: Float32Array, what: string): void {
  assertSameArray(
    bitsOf(actual),
    bitsOf(expected),
    what,
    (v) => `0x${v.toString(16)} (${new Float32Array(new Uint32Array([v]).buffer)[0]})`,
  );
}

// ---------------------------------------------------------------------------------------------------
// float64 references.
// ---------------------------------------------------------------------------------------------------

/** out[m, n] = x[m, k] · w[n, k]ᵀ + bias, in float64, for several x at once (same w and bias). */
function linearReference(
  xs: readonly ArrayLike<number>[],
  w: Float32Array,
  bias: Float32Array | null,
  m: number,
  k: number,
  n: number,
): Float64Array[] {
  const outs = xs.map(() => new Float64Array(m * n));
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const wRow = j * k;
      for (let e = 0; e < xs.length; e++) {
        const x = xs[e]!;
        const xRow = i * k;
        let s = bias ? bias[j]! : 0;
        for (let p = 0; p < k; p++) s += x[xRow + p]! * w[wRow + p]!;
        outs[e]![i * n + j] = s;
      }
    }
  }
  return outs;
}

function layerNormReference(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += x[r * cols + c]!;
    const mean = sum / cols;
    let squares = 0;
    for (let c = 0; c < cols; c++) squares += (x[r * cols + c]! - mean) ** 2;
    const inverseStd = 1 / Math.sqrt(squares / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (x[r * cols + c]! - mean) * inverseStd * gamma[c]! + beta[c]!;
  }
  return out;
}

function softmaxReference(x: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]!);
    if (max === -Infinity) continue; // all -inf: zeros
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[r * cols + c]! - max);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(x[r * cols + c]! - max) / sum;
  }
  return out;
}

/** Causal attention: token i (absolute position past + i) attends to rows 0 .. past + i; q is scaled by headDim^-0.5. */
function attentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  t: number,
  past: number,
  heads: number,
  headDim: number,
): Float64Array {
  const h = heads * headDim;
  const out = new Float64Array(t * h);
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(past + t);
  for (let i = 0; i < t; i++) {
    const visible = past + i + 1;
    for (let head = 0; head < heads; head++) {
      const c0 = head * headDim;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[i * h + c0 + d]! * k[j * h + c0 + d]!;
        scores[j] = s * scale;
        max = Math.max(max, scores[j]!);
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) sum += scores[j] = Math.exp(scores[j]! - max);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j < visible; j++) acc += scores[j]! * v[j * h + c0 + d]!;
        out[i * h + c0 + d] = acc / sum;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The suite, once per implementation.
// ---------------------------------------------------------------------------------------------------

for (const impl of IMPLEMENTATIONS) {
  const options = impl.skip ? { skip: impl.skip } : {};
  const name = (what: string) => `cuda kernels [${impl.name}]: ${what}`;

  test(
    name("linear, GEMV path (m <= 8: fp32 x, fp16 w, fp32 accumulation) against float64, rel err < 1e-5"),
    options,
    () => {
      withSession(impl, (s) => {
        // [m, k, n, bias, x/out offset in bytes, w offset in bytes]
        const cases: [number, number, number, boolean, number, number][] = [
          [1, 64, 64, false, 0, 0],
          [1, 64, 64, true, 4, 2], // w 2 bytes off: scalar w loads
          [3, 100, 37, false, 4, 0], // odd n, k % 8 = 4: half2 w loads; x and out not 16-byte aligned
          [3, 100, 37, true, 0, 0],
          [8, 768, 3072, true, 0, 0], // a real layer's shape: one warp per column (enough columns to fill a GPU)
          // Few columns, long rows: several warps share a column, their sums meet in shared memory
          // (launchGemvRows picks 2, 4 and 8 warps here, with 4 SMs (the host emulation) or 80+).
          [5, 600, 30, true, 0, 0],
          [1, 1024, 20, false, 0, 0],
          [2, 4096, 8, true, 0, 0],
        ];
        for (const [m, k, n, withBias, offset, wOffset] of cases) {
          const label = `linear ${m}x${k}x${n} bias=${withBias} offset=${offset}/${wOffset}`;
          assert.ok(m <= GEMV_MAX_ROWS);
          const x = randomF32(m * k, `${label} x`);
          const w = randomF16(n * k, `${label} w`);
          const bias = withBias ? randomF32(n, `${label} bias`) : null;
          const xp = s.put(x, offset);
          const wp = s.put(w, wOffset);
          const bp = bias ? s.put(bias) : 0;
          const op = s.alloc(m * n * 4, offset);
          s.poison(op, m * n * 4);
          s.native.linear(xp, wp, bp, op, m, k, n, s.stream);
          const out = s.getF32(op, m * n);
          const [ref] = linearReference([x], fromFloat16Array(w), bias, m, k, n);
          assertClose(out, ref!, 1e-5, label);
        }
      });
    },
  );

  test(
    name(
      "linear, tensor-core path (m > 8: x split into two fp16 halves) against float64 on x (< 1e-5), closer than fp16-rounded x could be",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        const cases: [number, number, number, boolean, number][] = [
          [9, 64, 48, true, 0],
          [9, 64, 48, false, 4],
          [33, 200, 130, false, 4], // partial tiles and K step; x and out 4 bytes off: scalar x loads
          [33, 200, 130, true, 0],
          [128, 768, 768, false, 0],
        ];
        for (const [m, k, n, withBias, offset] of cases) {
          const label = `linear ${m}x${k}x${n} bias=${withBias} offset=${offset}`;
          assert.ok(m > GEMV_MAX_ROWS);
          const x = randomF32(m * k, `${label} x`);
          const w = randomF16(n * k, `${label} w`);
          const bias = withBias ? randomF32(n, `${label} bias`) : null;
          const xp = s.put(x, offset);
          const wp = s.put(w);
          const bp = bias ? s.put(bias) : 0;
          const op = s.alloc(m * n * 4, offset);
          s.poison(op, m * n * 4);
          s.native.linear(xp, wp, bp, op, m, k, n, s.stream);
          const out = s.getF32(op, m * n);
          const xRounded = fromFloat16Array(toFloat16Array(x));
          const [refSplit, refRounded, ref] = linearReference(
            [splitHalves(x), xRounded, x],
            fromFloat16Array(w),
            bias,
            m,
            k,
            n,
          );
          assertClose(out, refSplit!, 1e-5, `${label} (reference on hi + lo)`);
          assertClose(out, ref!, 1e-5, `${label} (reference on x)`);
          // A kernel that only rounded x to fp16 would be this far off: the split is what passes.
          assert.ok(
            relativeError(refRounded!, ref!) > 1e-5,
            `${label}: fp16-rounded x is distinguishable at this tolerance`,
          );
        }
      });
    },
  );

  test(
    name("layerNorm rows 1 and 7 x cols 64, 1000, 4096 (and in place) against float64, rel err < 1e-5"),
    options,
    () => {
      withSession(impl, (s) => {
        const eps = 1e-5;
        const cases: [number, number, boolean][] = [
          [1, 64, false],
          [7, 64, false],
          [1, 1000, false],
          [7, 1000, false],
          [1, 4096, false],
          [7, 4096, false],
          [3, 300, true],
        ];
        for (const [rows, cols, inPlace] of cases) {
          const label = `layerNorm ${rows}x${cols}${inPlace ? " in place" : ""}`;
          // An offset mean makes a one-pass variance visibly wrong.
          const x = randomF32(rows * cols, `${label} x`, 2, 3);
          const gamma = randomF32(cols, `${label} gamma`, 0.5, 1);
          const beta = randomF32(cols, `${label} beta`, 0.5);
          const xp = s.put(x);
          const gp = s.put(gamma);
          const bp = s.put(beta);
          let op = xp;
          if (!inPlace) {
            op = s.alloc(rows * cols * 4);
            s.poison(op, rows * cols * 4);
          }
          s.native.layerNorm(xp, gp, bp, op, rows, cols, eps, s.stream);
          const out = s.getF32(op, rows * cols);
          assertClose(out, layerNormReference(x, gamma, beta, rows, cols, eps), 1e-5, label);
        }
      });
    },
  );

  test(
    name(
      "softmaxRows against float64 (rel err < 1e-5), a row of all -Infinity -> zeros, a row of one finite value -> one-hot",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        const cases: [number, number][] = [
          [1, 64],
          [7, 1000],
          [2, 4096],
          [3, 1],
        ];
        for (const [rows, cols] of cases) {
          const label = `softmax ${rows}x${cols}`;
          const x = randomF32(rows * cols, `${label} x`, 6);
          if (rows === 7) {
            x.fill(-Infinity, 2 * cols, 3 * cols); // row 2: all -inf
            x.fill(-Infinity, 4 * cols, 5 * cols); // row 4: one finite value
            x[4 * cols + 333] = 12.5;
            for (let c = 0; c < cols; c += 3) x[6 * cols + c] = -Infinity; // row 6: partly masked
          }
          const xp = s.put(x);
          s.native.softmaxRows(xp, rows, cols, s.stream);
          const out = s.getF32(xp, rows * cols);
          assertClose(out, softmaxReference(x, rows, cols), 1e-5, label);
          if (rows === 7) {
            assertSameF32Bits(out.subarray(2 * cols, 3 * cols), new Float32Array(cols), `${label}: the all -inf row`);
            const oneHot = new Float32Array(cols);
            oneHot[333] = 1;
            assertSameF32Bits(out.subarray(4 * cols, 5 * cols), oneHot, `${label}: the row of one finite value`);
            for (let c = 0; c < cols; c += 3)
              assert.equal(out[6 * cols + c], 0, `${label}: masked entry ${c} of row 6`);
          }
          if (cols === 1) assertSameF32Bits(out, new Float32Array(rows).fill(1), `${label}: single columns`);
        }
      });
    },
  );

  test(
    name(
      "attention decode (t=1, past 0/1/17/600) and prefill (t=2..300, head dims 16..300) against float64, rel err < 1e-5",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        // [t, past, heads, headDim]
        const cases: [number, number, number, number][] = [
          [1, 0, 4, 16],
          [1, 1, 4, 16],
          [1, 17, 4, 16],
          [1, 600, 4, 16],
          [1, 600, 32, 128],
          [5, 0, 4, 16],
          [64, 3, 4, 16],
          [300, 0, 4, 16],
          // Head dimensions that are not a multiple of 32, and one past 256 (the P.V kernel's second pass).
          [2, 7, 3, 80],
          [3, 10, 2, 300],
        ];
        for (const [t, past, heads, headDim] of cases) {
          const label = `attention t=${t} past=${past} heads=${heads} headDim=${headDim}`;
          const h = heads * headDim;
          const ctx = past + t;
          const q = randomF32(t * h, `${label} q`, 2);
          const k = randomF32(ctx * h, `${label} k`, 2);
          const v = randomF32(ctx * h, `${label} v`);
          const scratchFloats = s.native.attentionScratchFloats(t, past, heads);
          assert.ok(scratchFloats >= heads * t * ctx, `${label}: scratch of ${scratchFloats} floats`);
          const qp = s.put(q);
          const kp = s.put(k);
          const vp = s.put(v);
          const op = s.alloc(t * h * 4);
          const sp = s.alloc(scratchFloats * 4);
          s.poison(op, t * h * 4);
          s.poison(sp, scratchFloats * 4);
          s.native.attention(qp, kp, vp, op, sp, t, past, heads, headDim, s.stream);
          const out = s.getF32(op, t * h);
          assertClose(out, attentionReference(q, k, v, t, past, heads, headDim), 1e-5, label);
        }
      });
    },
  );

  test(name("relu and add, exact (NaN, -0 and infinities kept; add in place onto itself)"), options, () => {
    withSession(impl, (s) => {
      for (const n of [1, 1000, 100_003]) {
        const label = `relu n=${n}`;
        const x = randomF32(n, `${label} x`, 10);
        const specials = [-0, 0, NaN, Infinity, -Infinity, -1e-45, 1e-45];
        for (let i = 0; i < Math.min(n, specials.length); i++) x[(i * 7919) % n] = specials[i]!;
        const xp = s.put(x, 4);
        s.native.relu(xp, n, s.stream);
        const expected = x.map((v) => (v < 0 ? 0 : v));
        assertSameF32Bits(s.getF32(xp, n), expected, label);
      }
      for (const n of [1, 1000, 100_003]) {
        const label = `add n=${n}`;
        const x = randomF32(n, `${label} x`, 100);
        const y = randomF32(n, `${label} y`);
        const xp = s.put(x);
        const yp = s.put(y, 4);
        s.native.add(xp, yp, n, s.stream);
        const expected = x.map((v, i) => v + y[i]!); // a Float32Array: the sum rounded once to fp32
        assertSameF32Bits(s.getF32(xp, n), expected, label);
      }
      const x = randomF32(777, "add in place x");
      const xp = s.put(x);
      s.native.add(xp, xp, 777, s.stream);
      assertSameF32Bits(
        s.getF32(xp, 777),
        x.map((v) => v + v),
        "add x += x",
      );
    });
  });

  test(name("embedding: ids 0 and rows-1 exact, an out-of-range id writes a NaN row"), options, () => {
    withSession(impl, (s) => {
      for (const [rows, dim] of [
        [50, 100],
        [7, 300],
      ] as const) {
        const label = `embedding rows=${rows} dim=${dim}`;
        const table = randomF16(rows * dim, `${label} table`, 4);
        const ids = new Int32Array([0, rows - 1, 3, rows, -1, 0, 2 ** 31 - 1, rows - 1]);
        const tp = s.put(table);
        const ip = s.put(ids);
        const count = ids.length;
        const op = s.alloc(count * dim * 4);
        const decoded = fromFloat16Array(table);
        // Under two poisons: a NaN row must be written, not left over.
        for (const poison of [POISON, 0x00]) {
          s.poison(op, count * dim * 4, poison);
          s.native.embedding(tp, ip, count, dim, rows, op, s.stream);
          const out = s.getF32(op, count * dim);
          for (let i = 0; i < count; i++) {
            const id = ids[i]!;
            const row = out.subarray(i * dim, (i + 1) * dim);
            if (id >= 0 && id < rows)
              assertSameF32Bits(
                row,
                decoded.subarray(id * dim, (id + 1) * dim),
                `${label}: token ${i} (id ${id}), poison 0x${poison.toString(16)}`,
              );
            else
              for (let d = 0; d < dim; d++)
                assert.ok(
                  Number.isNaN(row[d]!),
                  `${label}: token ${i} (id ${id} out of range) value ${d} is ${row[d]}, expected NaN`,
                );
          }
        }
      }
    });
  });

  test(
    name("f32ToF16 and f16ToF32 exact against runtime/fp16.ts (ties, subnormals, overflow, NaN; all 65536 halves)"),
    options,
    () => {
      withSession(impl, (s) => {
        const next = random(seedOf("f32ToF16 values"));
        const n = 20_011;
        const x = new Float32Array(n);
        for (let i = 0; i < n; i++) x[i] = (next() < 0.5 ? -1 : 1) * 2 ** (next() * 48 - 30) * (1 + next());
        const specials = [
          0,
          -0,
          Infinity,
          -Infinity,
          NaN,
          65504,
          65519.99,
          65520,
          -65520,
          1e6,
          2 ** -24,
          2 ** -25,
          3 * 2 ** -25,
          2 ** -14,
          2 ** -14 - 2 ** -25,
          1e-40,
          -1e-40,
          1 + 2 ** -11,
          1 + 3 * 2 ** -11,
          -(1 + 2 ** -11),
          1 + 2 ** -11 + 2 ** -20,
          0.1,
          -0.3333,
        ];
        specials.forEach((v, i) => (x[i] = v));
        const bits = bitsOf(x);
        bits[specials.length] = 0xffc00000; // -NaN
        bits[specials.length + 1] = 0x7f800001; // a signalling NaN
        bits[specials.length + 2] = 0x7fbfffff;
        const xp = s.put(x, 4);
        const hp = s.alloc(n * 2, 2); // 2 bytes off: the fp16 output needs only 2-byte alignment
        s.poison(hp, n * 2);
        s.native.f32ToF16(xp, hp, n, s.stream);
        assertSameArray(s.getU16(hp, n), toFloat16Array(x), "f32ToF16");

        const all = new Uint16Array(65536);
        for (let i = 0; i < all.length; i++) all[i] = i;
        const ap = s.put(all, 2);
        const fp = s.alloc(65536 * 4);
        s.poison(fp, 65536 * 4);
        s.native.f16ToF32(ap, fp, 65536, s.stream);
        assertSameF32Bits(s.getF32(fp, 65536), fromFloat16Array(all), "f16ToF32 of every half");
      });
    },
  );

  test(
    name(
      "quantize4 and dequantize4 exact against tensor-codec (partial groups, all-equal groups, rows encoded on their own)",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        assert.equal(s.native.q4Bytes(96), 2 * (Q4_CODE_BYTES + 4));
        // [rows, rowValues, stored offset in bytes]
        const cases: [number, number, number][] = [
          [1, 1000, 0],
          [1, 4097, 1],
          [5, 96, 0],
          [3, 64, 3],
        ];
        for (const [rows, rowValues, offset] of cases) {
          const label = `q4 rows=${rows} rowValues=${rowValues}`;
          const groups = Math.ceil(rowValues / Q4_GROUP);
          const rowBytes = s.native.q4Bytes(rowValues);
          assert.equal(rowBytes, groups * (Q4_CODE_BYTES + 4), `${label}: q4Bytes`);
          const x = randomF32(rows * rowValues, `${label} x`, 3);
          // All-equal groups: a value exact in fp16 (scale 0, codes 0) and one that is not (a tiny scale).
          x.fill(0.5, Q4_GROUP, Math.min(2 * Q4_GROUP, rows * rowValues));
          if (rowValues >= 3 * Q4_GROUP) x.fill(0.1, 2 * Q4_GROUP, 3 * Q4_GROUP);
          // Each row is its own tensor: its groups start at its first value.
          const expected = new Uint8Array(rows * rowBytes);
          for (let r = 0; r < rows; r++)
            encode(
              x.subarray(r * rowValues, (r + 1) * rowValues),
              "q4",
              expected.subarray(r * rowBytes, (r + 1) * rowBytes),
            );

          const xp = s.put(x);
          const sp = s.alloc(rows * rowBytes, offset);
          for (const poison of [POISON, 0x00]) {
            s.poison(sp, rows * rowBytes, poison);
            s.native.quantize4(xp, rows, rowValues, sp, s.stream);
            assertSameArray(
              s.getBytes(sp, rows * rowBytes),
              expected,
              `${label}: quantize4 stored bytes, poison 0x${poison.toString(16)}`,
            );
          }

          // Dequantize the CPU's bytes, with random codes (every nibble value) in place of the encoded ones.
          const stored = expected.slice();
          const codes = random(seedOf(`${label} codes`));
          for (let r = 0; r < rows; r++) {
            for (let b = 0; b < groups * Q4_CODE_BYTES; b++)
              if (2 * b < rowValues) stored[r * rowBytes + b] = Math.floor(codes() * 256);
          }
          const dp = s.put(stored, offset);
          const expectedF32 = new Float32Array(rows * rowValues);
          const expectedF16 = new Uint16Array(rows * rowValues);
          for (let r = 0; r < rows; r++) {
            const rowStored = stored.slice(r * rowBytes, (r + 1) * rowBytes);
            decode(rowStored, "q4", rowValues, expectedF32.subarray(r * rowValues, (r + 1) * rowValues));
            decodeToFloat16(
              rowStored,
              rowValues,
              expectedF16.subarray(r * rowValues, (r + 1) * rowValues),
              new Float32Array(4 * Q4_GROUP),
            );
          }
          // f32 output 4 bytes off (an odd pair position), f16 aligned.
          const o32 = s.alloc(rows * rowValues * 4, 4);
          s.poison(o32, rows * rowValues * 4);
          s.native.dequantize4F32(dp, rows, rowValues, o32, s.stream);
          assertSameF32Bits(s.getF32(o32, rows * rowValues), expectedF32, `${label}: dequantize4F32`);
          const o16 = s.alloc(rows * rowValues * 2);
          s.poison(o16, rows * rowValues * 2);
          s.native.dequantize4F16(dp, rows, rowValues, o16, s.stream);
          assertSameArray(s.getU16(o16, rows * rowValues), expectedF16, `${label}: dequantize4F16`);
        }
      });
    },
  );

  test(
    name(
      "quantize4 of a group holding NaN or |x| > 65504 writes codes 0xFF, scale and min 0x7E00 (other groups unaffected)",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        const rows = 3;
        const rowValues = 200; // groups of 64, 64, 64, 8
        const groups = Math.ceil(rowValues / Q4_GROUP);
        const rowBytes = s.native.q4Bytes(rowValues);
        const x = randomF32(rows * rowValues, "q4 bad groups x", 5);
        const bad: [number, number][] = [
          [0, 1],
          [1, 3],
          [2, 0],
        ]; // [row, group]
        x[0 * rowValues + 64 + 17] = NaN;
        x[1 * rowValues + 192 + 7] = 70000; // in the partial last group
        x[2 * rowValues + 5] = -Infinity;
        const cleaned = x.slice();
        for (const [r, g] of bad)
          cleaned.fill(0, r * rowValues + g * Q4_GROUP, r * rowValues + Math.min((g + 1) * Q4_GROUP, rowValues));
        const expected = new Uint8Array(rows * rowBytes);
        for (let r = 0; r < rows; r++)
          encode(
            cleaned.subarray(r * rowValues, (r + 1) * rowValues),
            "q4",
            expected.subarray(r * rowBytes, (r + 1) * rowBytes),
          );
        const view = new DataView(expected.buffer);
        for (const [r, g] of bad) {
          expected.fill(0xff, r * rowBytes + g * Q4_CODE_BYTES, r * rowBytes + (g + 1) * Q4_CODE_BYTES);
          view.setUint16(r * rowBytes + groups * Q4_CODE_BYTES + 2 * g, HALF_NAN_BITS, true);
          view.setUint16(r * rowBytes + groups * Q4_CODE_BYTES + 2 * (groups + g), HALF_NAN_BITS, true);
        }
        const xp = s.put(x);
        const sp = s.alloc(rows * rowBytes);
        let stored: Uint8Array = new Uint8Array(0);
        for (const poison of [POISON, 0x00]) {
          s.poison(sp, rows * rowBytes, poison);
          s.native.quantize4(xp, rows, rowValues, sp, s.stream);
          stored = s.getBytes(sp, rows * rowBytes);
          assertSameArray(stored, expected, `quantize4 with bad groups, poison 0x${poison.toString(16)}`);
        }
        // The poison pattern cannot pass for data: it dequantises to NaN, as the CPU decodes it.
        const op = s.alloc(rows * rowValues * 4);
        s.poison(op, rows * rowValues * 4, 0x00);
        s.native.dequantize4F32(sp, rows, rowValues, op, s.stream);
        const out = s.getF32(op, rows * rowValues);
        const expectedF32 = new Float32Array(rows * rowValues);
        for (let r = 0; r < rows; r++)
          decode(
            stored.slice(r * rowBytes, (r + 1) * rowBytes),
            "q4",
            rowValues,
            expectedF32.subarray(r * rowValues, (r + 1) * rowValues),
          );
        assertSameF32Bits(out, expectedF32, "dequantize4F32 of the bad groups");
        for (const [r, g] of bad)
          assert.ok(Number.isNaN(out[r * rowValues + g * Q4_GROUP]!), `row ${r} group ${g} dequantises to NaN`);
      });
    },
  );

  test(
    name("argmaxRows and argmaxMerge exact (ties -> lowest index, NaN skipped, all -Infinity or NaN -> 0)"),
    options,
    () => {
      withSession(impl, (s) => {
        const cols = 1000;
        const rows = 9;
        const x = randomF32(rows * cols, "argmax x", 10);
        const row = (r: number) => x.subarray(r * cols, (r + 1) * cols);
        row(1)[5] = 50;
        row(1)[900] = 50;
        row(1)[999] = 50; // ties: the lowest index
        row(2)[0] = NaN;
        row(2)[10] = NaN;
        row(2)[500] = 60;
        row(2)[999] = NaN; // NaN skipped
        row(3).fill(-Infinity); // -> 0
        row(4).fill(NaN); // -> 0
        row(5).fill(-Infinity);
        row(5)[17] = NaN;
        row(5)[123] = -1e30; // the one finite value
        row(6)[999] = 70; // the last index
        row(7).fill(0.5); // all equal -> 0
        row(8)[0] = Infinity;
        row(8)[1] = Infinity; // +inf ties
        const expected = argmaxRows(x, rows, cols);
        assertSameArray(
          expected.subarray(1),
          [5, 500, 0, 0, 123, 999, 0, 0],
          "argmax.ts's own answers for the edge rows",
          String,
        );
        const xp = s.put(x);
        const op = s.alloc(rows * 4, 4);
        s.poison(op, rows * 4);
        s.native.argmaxRows(xp, rows, cols, op, s.stream);
        assertSameArray(s.getI32(op, rows), expected, "argmaxRows", String);

        // Shapes: one column; a wide row (many values per thread).
        for (const [r2, c2] of [
          [3, 1],
          [2, 33_001],
        ] as const) {
          const y = randomF32(r2 * c2, `argmax ${r2}x${c2}`);
          const yp = s.put(y);
          const yo = s.alloc(r2 * 4);
          s.poison(yo, r2 * 4);
          s.native.argmaxRows(yp, r2, c2, yo, s.stream);
          assertSameArray(s.getI32(yo, r2), argmaxRows(y, r2, c2), `argmaxRows ${r2}x${c2}`, String);
        }

        // Merge over column chunks (a tie across chunks keeps the earlier one): equals argmaxRows of the whole rows.
        const chunks = [
          [0, 300],
          [300, 300],
          [600, 400],
        ] as const;
        const valueP = s.alloc(rows * 4);
        const indexP = s.alloc(rows * 4);
        s.poison(valueP, rows * 4);
        s.poison(indexP, rows * 4);
        const chunkPointers = chunks.map(([c0, width]) => {
          const chunk = new Float32Array(rows * width);
          for (let r = 0; r < rows; r++) chunk.set(x.subarray(r * cols + c0, r * cols + c0 + width), r * width);
          return s.put(chunk);
        });
        chunks.forEach(([c0, width], i) =>
          s.native.argmaxMerge(chunkPointers[i]!, rows, width, c0, valueP, indexP, i === 0 ? 1 : 0, s.stream),
        );
        assertSameArray(s.getI32(indexP, rows), expected, "argmaxMerge over 3 chunks", String);
        const best = s.getF32(valueP, rows);
        for (let r = 0; r < rows; r++) {
          const v = x[r * cols + expected[r]!]!;
          const want = v > -Infinity ? v : -Infinity; // nothing above -inf (or NaN) keeps -inf
          assert.equal(best[r], want, `argmaxMerge best value of row ${r}`);
        }
      });
    },
  );

  test(name("copy: unaligned sizes and offsets (1, 15, 17, 1 MiB + 3 bytes), nothing written outside"), options, () => {
    withSession(impl, (s) => {
      // [bytes, src offset, dst offset]
      const cases: [number, number, number][] = [
        [1, 0, 0],
        [15, 1, 1],
        [17, 3, 3],
        [17, 0, 5],
        [64, 16, 0],
        [MIB + 3, 0, 0],
        [MIB + 3, 7, 7],
        [MIB + 3, 1, 2],
      ];
      const margin = 32;
      for (const [bytes, srcOffset, dstOffset] of cases) {
        const label = `copy ${bytes} bytes, src +${srcOffset}, dst +${dstOffset}`;
        const next = random(seedOf(label));
        const data = new Uint8Array(bytes);
        for (let i = 0; i < bytes; i++) data[i] = Math.floor(next() * 255); // never the poison byte
        const src = s.put(data, srcOffset);
        const dstBase = s.alloc(bytes + 2 * margin);
        s.poison(dstBase, bytes + 2 * margin);
        s.native.copy(src, dstBase + margin + dstOffset, bytes, s.stream);
        const got = s.getBytes(dstBase, bytes + 2 * margin);
        const expected = new Uint8Array(bytes + 2 * margin).fill(POISON);
        expected.set(data, margin + dstOffset);
        assertSameArray(got, expected, label);
      }
      // memcpyDtoD too, unaligned.
      const data = randomF32(1001, "memcpyDtoD data");
      const src = s.put(data, 4);
      const dst = s.alloc(1001 * 4, 12);
      s.poison(dst, 1001 * 4);
      s.native.memcpyDtoD(dst, src, 1001 * 4, s.stream);
      assertSameF32Bits(s.getF32(dst, 1001), data, "memcpyDtoD");
    });
  });

  test(
    name("pinned async upload, kernel on stream A, event, download on stream B after streamWaitEvent"),
    options,
    () => {
      withSession(
        impl,
        (s) => {
          const n = 65_537;
          const x = randomF32(n, "two streams x", 4);
          const y = randomF32(n, "two streams y");
          const a = s.newStream();
          const b = s.newStream();
          const done = s.newEvent(false);
          const xHost = s.native.hostAlloc(n * 4);
          const yHost = s.native.hostAlloc(n * 4);
          const outHost = s.native.hostAlloc(n * 4);
          try {
            new Float32Array(xHost).set(x);
            new Float32Array(yHost).set(y);
            new Uint8Array(outHost).fill(0x00);
            const xp = s.alloc(n * 4);
            const yp = s.alloc(n * 4);
            const copyP = s.alloc(n * 4);
            s.native.memcpyHtoD(xp, new Float32Array(xHost), a);
            s.native.memcpyHtoD(yp, new Float32Array(yHost), a);
            s.native.add(xp, yp, n, a);
            s.native.relu(xp, n, a);
            s.native.eventRecord(done, a);
            s.native.streamWaitEvent(b, done);
            s.native.memset(copyP, POISON, n * 4, b);
            s.native.memcpyDtoD(copyP, xp, n * 4, b);
            s.native.memcpyDtoH(new Float32Array(outHost), copyP, b);
            s.native.streamSynchronize(b);
            const expected = x.map((v, i) => Math.max(0, Math.fround(v + y[i]!)));
            assertSameF32Bits(new Float32Array(outHost).slice(), expected, "add + relu on A, downloaded on B");
            s.native.streamSynchronize(a);
          } finally {
            s.native.deviceSynchronize();
            s.native.hostFree(xHost);
            s.native.hostFree(yHost);
            s.native.hostFree(outHost);
          }
        },
        { order: "waited-first" },
      ); // the emulator runs B first wherever it may: a missing wait would show
    },
  );

  test(name("eventElapsedMs > 0 around a kernel; memGetInfo free bytes drop after malloc"), options, () => {
    withSession(impl, (s) => {
      const [m, k, n] = [4, 1024, 1024];
      const xp = s.put(randomF32(m * k, "timing x"));
      const wp = s.put(randomF16(n * k, "timing w"));
      const op = s.alloc(m * n * 4);
      const start = s.newEvent(true);
      const end = s.newEvent(true);
      s.poison(op, m * n * 4);
      s.sync();
      s.native.eventRecord(start, s.stream);
      s.native.linear(xp, wp, 0, op, m, k, n, s.stream);
      s.native.eventRecord(end, s.stream);
      s.native.eventSynchronize(end);
      const ms = s.native.eventElapsedMs(start, end);
      assert.ok(ms > 0 && Number.isFinite(ms), `eventElapsedMs = ${ms}`);
      assertWritten(s.getF32(op, m * n), "timed linear");

      const bytes = 16 * MIB;
      const before = s.native.memGetInfo();
      const p = s.alloc(bytes);
      const after = s.native.memGetInfo();
      assert.ok(p !== 0);
      assert.equal(after.totalBytes, before.totalBytes);
      assert.ok(
        before.freeBytes - after.freeBytes >= bytes,
        `free bytes ${before.freeBytes} -> ${after.freeBytes} after malloc(${bytes})`,
      );
    });
  });

  test(
    name("group-wise dequantisation bit-exact with expert-quantization.ts at 2, 3, 4, 8 and 16 bits (random codes)"),
    options,
    () => {
      withSession(impl, (s) => {
        for (const bits of [8, 4, 3, 2, 16] as const) {
          for (const values of [1000, 3 * 64 + 5]) {
            const label = `groupwise ${bits} bits, ${values} values`;
            assert.equal(s.native.groupwiseBytes(values, bits), quantizedByteLength(values, bits), label);
            const stored = quantizeGroupwise(randomF32(values, `${label} x`, 0.5), bits);
            if (bits !== 16) {
              // Random codes in place of the encoded ones: every code value at every bit position.
              const f = groupFormat(bits);
              const codes = random(seedOf(`${label} codes`));
              for (let b = 0; b < Math.ceil(values / f.groupSize) * f.codeBytes; b++)
                stored[b] = Math.floor(codes() * 256);
            }
            const expected = new Float32Array(values);
            dequantizeGroupwise(stored, bits, values, 0, values, expected);
            const sp = s.put(stored, bits === 16 ? 2 : 3); // only fp16 needs alignment
            const op = s.alloc(values * 4, 4);
            s.poison(op, values * 4);
            s.native.dequantizeGroupwiseF32(sp, values, bits, op, s.stream);
            assertSameF32Bits(s.getF32(op, values), expected, label);
          }
        }
        assert.throws(() => s.native.groupwiseBytes(64, 5), /bits must be 2, 3, 4, 8 or 16/);
      });
    },
  );

  test(
    name(
      "linearGroupwise (weights dequantised as they are read) against float64 on the dequantised weights, rel err < 1e-5",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        // [m, k, n, bits]: one row, several, more than 8 (rows of x 8 at a time), partial groups across rows.
        const cases: [number, number, number, ExpertBits][] = [
          [1, 64, 40, 4],
          [3, 128, 70, 3],
          [2, 72, 33, 2],
          [8, 192, 17, 8],
          [11, 64, 24, 2],
          [5, 64, 16, 16],
        ];
        for (const [m, k, n, bits] of cases) {
          const label = `linearGroupwise ${m}x${k}x${n} at ${bits} bits`;
          const stored = quantizeGroupwise(randomF32(n * k, `${label} w`, 0.1), bits);
          const w = new Float32Array(n * k);
          dequantizeGroupwise(stored, bits, n * k, 0, n * k, w);
          const x = randomF32(m * k, `${label} x`);
          const xp = s.put(x);
          const wp = s.put(stored, bits === 16 ? 0 : 1);
          const op = s.alloc(m * n * 4);
          s.poison(op, m * n * 4);
          s.native.linearGroupwise(xp, wp, bits, op, m, k, n, s.stream);
          const [ref] = linearReference([x], w, null, m, k, n);
          assertClose(s.getF32(op, m * n), ref!, 1e-5, label);
        }
      });
    },
  );

  test(
    name(
      "expertSwiglu: a routed expert run from its stored bytes equals the MoE runtime's CPU expert (rel err < 1e-5)",
    ),
    options,
    () => {
      withSession(impl, (s) => {
        const [hidden, ffn] = [64, 128];
        const cases: [ExpertBits, number][] = [
          [4, 1],
          [3, 3],
          [2, 9],
          [8, 2],
          [16, 2],
        ];
        for (const [bits, m] of cases) {
          const label = `expertSwiglu ${bits} bits, ${m} rows`;
          const matrixBytes = quantizedByteLength(hidden * ffn, bits);
          const expert = new Uint8Array(3 * matrixBytes);
          ["w1", "w3", "w2"].forEach((matrix, i) =>
            expert.set(quantizeGroupwise(randomF32(hidden * ffn, `${label} ${matrix}`, 0.2), bits), i * matrixBytes),
          );
          const x = randomF32(m * hidden, `${label} x`);
          // The CPU backend's expert (runtime/moe/mixtral-model.ts): w1 and w3, the SwiGLU gate, w2.
          const sizes = linearScratchLength(m, Math.max(hidden, ffn));
          const scratch = { tile: new Float32Array(sizes.tile), out: new Float32Array(sizes.out) };
          const gate = new Float32Array(m * ffn);
          const up = new Float32Array(m * ffn);
          const expected = new Float32Array(m * hidden);
          linearQuantized(x, expert.subarray(0, matrixBytes), gate, { m, k: hidden, n: ffn, bits }, scratch);
          linearQuantized(
            x,
            expert.subarray(matrixBytes, 2 * matrixBytes),
            up,
            { m, k: hidden, n: ffn, bits },
            scratch,
          );
          siluGateInPlace(gate, up, m * ffn);
          linearQuantized(gate, expert.subarray(2 * matrixBytes), expected, { m, k: ffn, n: hidden, bits }, scratch);

          const xp = s.put(x);
          const ep = s.put(expert);
          const sp = s.alloc(2 * m * ffn * 4);
          const op = s.alloc(m * hidden * 4);
          s.poison(op, m * hidden * 4);
          s.native.expertSwiglu(xp, ep, bits, m, hidden, ffn, sp, op, s.stream);
          assertClose(s.getF32(op, m * hidden), expected, 1e-5, label);
        }
      });
    },
  );

  test(
    name(
      "the MoE decoder's kernels against the CPU backend's ops: rmsNorm (and in place), rope, gqaAttention, linearGroupwiseBias (rel err < 1e-5); moeCombine, gatherRows, scatterRows, routerTopK and sigmoidGatedAdd",
    ),
    options,
    () => {
      // The kernels compute in fp32 against the CPU's float64 (kernels.cu): 1e-5, the dense kernels' bound.
      // A sum of n fp32 terms carries at most about n * 2^-24 of their absolute sum and typically
      // sqrt(n) * 2^-24 (n = 200 here: 8e-7); measured 6e-8 (RMSNorm), 8e-8 (RoPE), 7e-7 (attention over 601 keys).
      withSession(impl, (s) => {
        // RMSNorm (runtime/moe/rms-norm.ts), eps as Mixtral's config gives it (a double).
        for (const [rows, cols] of [
          [1, 64],
          [5, 200],
        ] as const) {
          const label = `rmsNorm ${rows}x${cols}`;
          const x = randomF32(rows * cols, `${label} x`, 3);
          const weight = randomF32(cols, `${label} w`, 1, 1);
          const expected = new Float32Array(rows * cols);
          rmsNormCpu(x, weight, expected, rows, cols, 1e-5);
          const xp = s.put(x);
          const wp = s.put(weight);
          const op = s.alloc(rows * cols * 4);
          s.poison(op, rows * cols * 4);
          s.native.rmsNorm(xp, wp, op, rows, cols, 1e-5, s.stream);
          assertClose(s.getF32(op, rows * cols), expected, 1e-5, label);
          s.native.rmsNorm(xp, wp, xp, rows, cols, 1e-5, s.stream);
          assertClose(s.getF32(xp, rows * cols), expected, 1e-5, `${label} in place`);
        }
        // RoPE (runtime/moe/rope.ts): rows of two sequences of 3 tokens at positions past .. past + 2. At
        // position 30000 an angle rounded to fp32 before its sine would be off by up to 1e-3 rad (relative
        // error about 2e-4 here): the kernel reduces it modulo 2 pi first (measured 8e-8).
        for (const [rows, heads, headDim, perSequence, past, theta] of [
          [6, 4, 16, 3, 5, 1e6],
          [1, 2, 64, 1, 900, 10000],
          [4, 2, 128, 4, 30000, 10000],
        ] as const) {
          const label = `rope ${rows} rows, ${heads} heads of ${headDim}, past ${past}`;
          const x = randomF32(rows * heads * headDim, `${label} x`, 2);
          const expected = x.slice();
          const rope = new Rope(headDim, theta);
          for (let r = 0; r < rows; r++) rope.apply(expected, r, heads, past + (r % perSequence));
          const xp = s.put(x);
          s.native.rope(xp, rows, heads, headDim, perSequence, past, theta, s.stream);
          assertClose(s.getF32(xp, x.length), expected, 1e-5, label);
        }
        // Grouped-query attention (runtime/moe/gqa-attention.ts): decode and prefill, 1 to 4 query heads per
        // KV head, head widths that are and are not a multiple of the 32 columns a warp takes, a long context.
        for (const [t, past, heads, kvHeads, headDim] of [
          [1, 0, 4, 2, 16],
          [1, 9, 8, 2, 16],
          [5, 3, 4, 1, 16],
          [3, 0, 6, 6, 8],
          [2, 300, 4, 2, 72],
        ] as const) {
          const label = `gqaAttention t=${t} past=${past} heads=${heads} kvHeads=${kvHeads} headDim=${headDim}`;
          const ctx = past + t;
          const q = randomF32(t * heads * headDim, `${label} q`, 2);
          const k = randomF32(ctx * kvHeads * headDim, `${label} k`, 2);
          const v = randomF32(ctx * kvHeads * headDim, `${label} v`);
          const expected = new Float32Array(t * heads * headDim);
          gqaAttentionCpu(q, k, v, expected, t, past, heads, kvHeads, headDim, new Float32Array(ctx));
          const scratchFloats = s.native.attentionScratchFloats(t, past, heads);
          const qp = s.put(q);
          const kp = s.put(k);
          const vp = s.put(v);
          const op = s.alloc(expected.byteLength);
          const sp = s.alloc(scratchFloats * 4);
          s.poison(op, expected.byteLength);
          s.poison(sp, scratchFloats * 4);
          s.native.gqaAttention(qp, kp, vp, op, sp, t, past, heads, kvHeads, headDim, s.stream);
          assertClose(s.getF32(op, expected.length), expected, 1e-5, label);
        }
        // A biased projection (Qwen2-MoE's q/k/v) at 16 bits (GEMV and tensor-core paths) and 4 bits.
        for (const [m, k, n, bits] of [
          [2, 64, 24, 16],
          [11, 64, 16, 16],
          [3, 128, 40, 4],
        ] as const) {
          const label = `linearGroupwiseBias ${m}x${k}x${n} at ${bits} bits`;
          const stored = quantizeGroupwise(randomF32(n * k, `${label} w`, 0.1), bits);
          const x = randomF32(m * k, `${label} x`);
          const bias = randomF32(n, `${label} bias`);
          const sizes = linearScratchLength(m, k);
          const expected = new Float32Array(m * n);
          const scratch = { tile: new Float32Array(sizes.tile), out: new Float32Array(sizes.out) };
          linearQuantized(x, stored, expected, { m, k, n, bits }, scratch, bias);
          const xp = s.put(x);
          const wp = s.put(stored);
          const bp = s.put(bias);
          const op = s.alloc(m * n * 4);
          s.poison(op, m * n * 4);
          s.native.linearGroupwiseBias(xp, wp, bits, bp, op, m, k, n, s.stream);
          assertClose(s.getF32(op, m * n), expected, 1e-5, label);
        }
        // The routed experts' weighted sum, rank by rank (mixtral-model.ts): bit for bit (one rounding per rank).
        {
          const [rows, k, cols] = [3, 2, 40];
          const label = `moeCombine ${rows}x${k}x${cols}`;
          const x = randomF32(rows * cols, `${label} x`);
          const outputs = randomF32(rows * k * cols, `${label} outputs`, 2);
          const weights = randomF32(rows * k, `${label} weights`, 0.5, 0.5);
          const expected = x.slice();
          for (let row = 0; row < rows; row++)
            for (let r = 0; r < k; r++)
              for (let c = 0; c < cols; c++)
                expected[row * cols + c]! += weights[row * k + r]! * outputs[(row * k + r) * cols + c]!;
          const xp = s.put(x);
          s.native.moeCombine(xp, s.put(outputs), s.put(weights), rows, k, cols, s.stream);
          assertSameF32Bits(s.getF32(xp, x.length), expected, label);
        }
        // The routed rows by index: gather (an index outside the source: a NaN row) and scatter (an index
        // outside the destination: nothing written), both bit for bit.
        {
          const [srcRows, rows, cols] = [5, 4, 33];
          const label = `gatherRows / scatterRows ${rows}x${cols} of ${srcRows}`;
          const src = randomF32(srcRows * cols, `${label} src`);
          const index = Int32Array.from([3, 0, 5, 3]); // 5 is outside
          const ip = s.put(index);
          const gp = s.alloc(rows * cols * 4);
          s.native.gatherRows(s.put(src), srcRows, ip, rows, cols, gp, s.stream);
          const gathered = s.getF32(gp, rows * cols);
          for (const [i, at] of index.entries()) {
            const row = gathered.subarray(i * cols, (i + 1) * cols);
            if (at < srcRows) assertSameF32Bits(row, src.subarray(at * cols, (at + 1) * cols), `${label} row ${i}`);
            else assert.ok(row.every(Number.isNaN), `${label}: row ${i} (index ${at}) is NaN`);
          }
          const dst = randomF32(srcRows * cols, `${label} dst`);
          const dp = s.put(dst);
          const scatterIndex = Int32Array.from([4, 1, -1, 2]); // -1 is outside
          s.native.scatterRows(s.put(src), s.put(scatterIndex), rows, cols, dp, srcRows, s.stream);
          const expected = dst.slice();
          for (const [i, at] of scatterIndex.entries())
            if (at >= 0) expected.set(src.subarray(i * cols, (i + 1) * cols), at * cols);
          assertSameF32Bits(s.getF32(dp, dst.length), expected, `${label} scatter`);
        }
        // The speculative lookahead's top-k (gate-lookahead.ts: route() per row, renormalised): the same
        // experts in the same order (ties: the lower index), the weights within fp32 rounding of route()'s
        // float64 (expf of the difference from the row's best, one sum and a division each).
        {
          const [rows, experts] = [6, 9];
          for (const k of [1, 3, experts]) {
            const label = `routerTopK ${rows}x${experts} top ${k}`;
            const logits = randomF32(rows * experts, `${label} logits`, 4);
            logits.fill(0.5, experts, 2 * experts); // a row of ties: the first k experts
            logits[2 * experts + 4] = logits[2 * experts + 1]!; // a tie inside a row
            const expectedExperts = new Int32Array(rows * k);
            const expectedWeights = new Float32Array(rows * k);
            for (let row = 0; row < rows; row++)
              route(
                logits.subarray(row * experts, (row + 1) * experts),
                k,
                expectedExperts.subarray(row * k, (row + 1) * k),
                expectedWeights.subarray(row * k, (row + 1) * k),
              );
            const ep = s.alloc(rows * k * 4);
            const wp = s.alloc(rows * k * 4);
            s.poison(wp, rows * k * 4);
            s.native.routerTopK(s.put(logits), rows, experts, k, ep, wp, s.stream);
            assertSameArray(s.getI32(ep, rows * k), expectedExperts, `${label} experts`, String);
            assert.deepEqual(
              Array.from(expectedExperts.subarray(k, 2 * k)),
              Array.from({ length: k }, (_, i) => i),
            );
            const weights = s.getF32(wp, rows * k);
            assertClose(weights, expectedWeights, 1e-6, `${label} weights`);
          }
          const label = "routerTopK with k above the experts";
          assert.throws(
            () => s.native.routerTopK(s.alloc(4 * 4), 1, 4, 5, s.alloc(5 * 4), s.alloc(5 * 4), s.stream),
            (error: unknown) => (error as { code?: string }).code === "cudaErrorInvalidValue",
            label,
          );
        }
        // Qwen2-MoE's shared expert added through its sigmoid gate (mixtral-model.ts's sharedExpert).
        {
          const [rows, cols] = [4, 48];
          const label = `sigmoidGatedAdd ${rows}x${cols}`;
          const x = randomF32(rows * cols, `${label} x`);
          const y = randomF32(rows * cols, `${label} y`, 2);
          const gate = randomF32(rows, `${label} gate`, 4);
          const expected = x.slice();
          for (let row = 0; row < rows; row++) {
            const g = 1 / (1 + Math.exp(-gate[row]!));
            for (let c = 0; c < cols; c++) expected[row * cols + c]! += g * y[row * cols + c]!;
          }
          const xp = s.put(x);
          s.native.sigmoidGatedAdd(xp, s.put(y), s.put(gate), rows, cols, s.stream);
          assertClose(s.getF32(xp, x.length), expected, 1e-6, label);
        }
      });
    },
  );
}
