import assert from "node:assert/strict";
import { test } from "node:test";
import {
  createEmulatedNative,
  DEVICE_BASE,
  type EmulatedNative,
  splitHalves,
} from "../../runtime/cuda/emulated-native.js";
import { CUDA_NATIVE_FUNCTIONS } from "../../runtime/cuda/native-api.js";
import { fromFloat16Array, toFloat16Array } from "../../runtime/fp16.js";
import { addInPlace } from "../../runtime/kernels/add.js";
import { argmaxRows } from "../../runtime/kernels/argmax.js";
import { attention } from "../../runtime/kernels/attention.js";
import { layerNorm } from "../../runtime/kernels/layer-norm.js";
import { linearF16, linearScratchLength } from "../../runtime/kernels/linear-f16.js";
import { reluInPlace } from "../../runtime/kernels/relu.js";
import { softmaxRowsInPlace } from "../../runtime/kernels/softmax.js";
import { decode, decodeToFloat16, encode } from "../../runtime/tensor-codec.js";
import { naiveLinear, random } from "../helpers.js";

const MIB = 2 ** 20;

function device(options: { seed?: number; deferred?: boolean; deviceBytes?: number } = {}): EmulatedNative {
  return createEmulatedNative({ deviceBytes: 8 * MIB, ...options });
}

function randomArray(length: number, seed: number, amplitude = 1): Float32Array {
  const next = random(seed);
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = (next() * 2 - 1) * amplitude;
  return x;
}

/** A device copy of `data` (pageable upload on the legacy stream). */
function put(native: EmulatedNative, data: ArrayBufferView): number {
  const pointer = native.malloc(data.byteLength);
  native.memcpyHtoD(pointer, data, 0);
  return pointer;
}

/** Pageable download on the legacy stream: runs the stream up to the copy and returns the data. */
function getF32(native: EmulatedNative, pointer: number, count: number): Float32Array {
  const out = new Float32Array(count);
  native.memcpyDtoH(out, pointer, 0);
  return out;
}

function getU16(native: EmulatedNative, pointer: number, count: number): Uint16Array {
  const out = new Uint16Array(count);
  native.memcpyDtoH(out, pointer, 0);
  return out;
}

function getBytes(native: EmulatedNative, pointer: number, count: number): Uint8Array {
  const out = new Uint8Array(count);
  native.memcpyDtoH(out, pointer, 0);
  return out;
}

/** Bitwise equality of float arrays (NaN equals NaN, -0 differs from 0). */
function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.deepEqual(
    new Uint32Array(actual.buffer, actual.byteOffset, actual.length),
    new Uint32Array(expected.buffer, expected.byteOffset, expected.length),
    what,
  );
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

// ---------------------------------------------------------------------------------------------------
// The interface and the device.
// ---------------------------------------------------------------------------------------------------

test("emulated native: implements every CudaNative function (callable detached), probe and properties", () => {
  const native = device({ deviceBytes: 4 * MIB });
  for (const name of CUDA_NATIVE_FUNCTIONS) assert.equal(typeof native[name], "function", name);
  const { malloc, memGetInfo } = native;
  const p = malloc(1000);
  assert.equal(memGetInfo().freeBytes, 4 * MIB - 1024);
  assert.deepEqual(native.probe(), { ok: true, deviceCount: 1, runtimeVersion: 13000, driverVersion: 13000 });
  const props = native.deviceProperties(0);
  assert.equal(props.name, "Emulated CUDA device");
  assert.equal(props.totalBytes, 4 * MIB);
  assert.equal(createEmulatedNative({ deviceBytes: 1024, deviceName: "X" }).deviceProperties(0).name, "X");
  assert.throws(() => native.deviceProperties(1), /invalid device ordinal \(cudaErrorInvalidDevice\)/);
  assert.throws(() => native.setDevice(1), /cudaErrorInvalidDevice/);
  native.setDevice(0);
  native.free(p);
});

test("emulated native: first-fit allocator: aligned non-zero pointers, OOM message, frees, coalescing, peak", () => {
  const native = device({ deviceBytes: 4096 });
  const a = native.malloc(100);
  const b = native.malloc(256);
  const c = native.malloc(1000);
  assert.equal(a, DEVICE_BASE);
  assert.ok(a >= 2 ** 40 && a < 2 ** 53);
  assert.equal(b, a + 256);
  assert.equal(c, b + 256);
  assert.equal(native.stats.inUseBytes, 256 + 256 + 1024);
  assert.equal(native.stats.requestedBytes, 100 + 256 + 1000);
  assert.equal(native.stats.liveAllocations, 3);
  assert.deepEqual(native.memGetInfo(), { freeBytes: 4096 - 1536, totalBytes: 4096 });
  assert.equal(native.malloc(0), 0, "cudaMalloc(0) gives the null pointer");
  native.free(0);

  assert.throws(
    () => native.malloc(4096),
    (e: Error & { code?: string; cudaError?: number }) => {
      assert.equal(e.message, "cudaMalloc(4096 bytes): out of memory (cudaErrorMemoryAllocation)");
      assert.equal(e.code, "cudaErrorMemoryAllocation");
      assert.equal(e.cudaError, 2);
      return true;
    },
  );
  assert.throws(() => native.malloc(-1), {
    name: "TypeError",
    code: "ERR_INVALID_ARG_VALUE",
    message: "malloc: bytes must be a count (a non-negative integer below 2^53), got -1",
  });
  assert.throws(
    () => native.free(b + 16),
    /cudaFree\(0x[0-9a-f]+\): invalid argument \(cudaErrorInvalidValue\)/,
    "an interior pointer is not freeable",
  );
  assert.throws(() => native.free(12345), /cudaErrorInvalidValue/);
  native.free(b);
  assert.throws(() => native.free(b), /cudaErrorInvalidValue/, "double free");

  // First fit: the 256-byte hole left by b is reused; a 512-byte block does not fit there.
  assert.equal(native.malloc(200), b);
  const d = native.malloc(512);
  assert.equal(d, c + 1024);
  assert.equal(native.stats.peakBytes, 256 + 256 + 1024 + 512);
  // Coalescing: freeing a, the reused b and c leaves one 1536-byte hole at the start.
  native.free(a);
  native.free(b);
  native.free(c);
  assert.equal(native.malloc(1536), a);
  assert.equal(native.stats.peakBytes, 256 + 256 + 1024 + 512, "peak is kept");
  assert.equal(native.stats.inUseBytes, 1536 + 512);
});

test("emulated native: fresh device memory is not zeroed (NaN bytes), and pointer arithmetic works for every call", () => {
  const native = device();
  const p = native.malloc(64 * 4);
  assert.ok(getF32(native, p, 64).every(Number.isNaN), "uninitialised memory reads as NaN");
  const values = Float32Array.from({ length: 64 }, (_, i) => i - 32);
  native.memcpyHtoD(p, values, 0);
  // Interior pointers: a download of the middle, a kernel on a slice, a memset of a sub-range.
  assert.deepEqual(getF32(native, p + 10 * 4, 4), values.subarray(10, 14));
  native.relu(p + 8 * 4, 16, 0);
  native.memset(p + 60 * 4, 0, 4 * 4, 0);
  const after = getF32(native, p, 64);
  const expected = values.slice();
  reluInPlace(expected.subarray(8, 24));
  expected.fill(0, 60, 64);
  assert.deepEqual(after, expected);
  const q = native.malloc(16);
  native.memcpyDtoD(q, p + 4 * 4, 16, 0);
  assert.deepEqual(getF32(native, q, 4), expected.subarray(4, 8));
});

// ---------------------------------------------------------------------------------------------------
// Asynchrony: host buffers, streams, events.
// ---------------------------------------------------------------------------------------------------

test("emulated native: an async HtoD from a pinned buffer reads it when it runs (mutation before sync shows), pageable copies at call time", () => {
  const native = device();
  const stream = native.streamCreate();
  const pinned = new Float32Array(native.hostAlloc(16));
  const pageable = new Float32Array(4);
  const dPinned = native.malloc(16);
  const dPageable = native.malloc(16);
  pinned.set([1, 2, 3, 4]);
  pageable.set([1, 2, 3, 4]);
  native.memcpyHtoD(dPinned, pinned, stream);
  native.memcpyHtoD(dPageable, pageable, stream);
  assert.equal(native.stats.pendingOps, 2, "deferred until the host synchronises");
  pinned.set([9, 9, 9, 9]); // the hazard: the copy has not run yet
  pageable.set([9, 9, 9, 9]);
  native.streamSynchronize(stream);
  assert.deepEqual([...getF32(native, dPinned, 4)], [9, 9, 9, 9], "pinned: the mutated bytes arrive");
  assert.deepEqual([...getF32(native, dPageable, 4)], [1, 2, 3, 4], "pageable: staged at call time");

  // The correct pattern: record an event after the copy, synchronise on it, then reuse the buffer.
  const done = native.eventCreate(false);
  pinned.set([5, 6, 7, 8]);
  native.memcpyHtoD(dPinned, pinned, stream);
  native.eventRecord(done, stream);
  native.eventSynchronize(done);
  pinned.set([0, 0, 0, 0]);
  native.deviceSynchronize();
  assert.deepEqual([...getF32(native, dPinned, 4)], [5, 6, 7, 8]);

  // deferred: false runs each op when enqueued: no hazard.
  const eager = device({ deferred: false });
  const ePinned = new Float32Array(eager.hostAlloc(8));
  ePinned.set([1, 2]);
  const ep = eager.malloc(8);
  eager.memcpyHtoD(ep, ePinned, eager.streamCreate());
  ePinned.set([7, 7]);
  assert.deepEqual([...getF32(eager, ep, 2)], [1, 2]);
});

test("emulated native: DtoH into pinned memory lands when it runs, into pageable memory before the call returns", () => {
  const native = device();
  const stream = native.streamCreate();
  const p = put(native, Float32Array.of(1, 2, 3));
  native.deviceSynchronize();
  const pinned = new Float32Array(native.hostAlloc(12));
  native.memcpyDtoH(pinned, p, stream);
  assert.deepEqual([...pinned], [0, 0, 0], "read before synchronising: stale");
  const event = native.eventCreate(false);
  native.eventRecord(event, stream);
  native.eventSynchronize(event);
  assert.deepEqual([...pinned], [1, 2, 3]);
  const pageable = new Float32Array(3);
  native.relu(p, 3, stream);
  native.memcpyDtoH(pageable, p, stream);
  assert.deepEqual([...pageable], [1, 2, 3], "pageable DtoH is synchronous, after the stream's earlier work");
  assert.equal(native.stats.pendingOps, 0);
});

test("emulated native: hostFree detaches the buffer, and refuses one a queued copy still uses", () => {
  const native = device();
  const buffer = native.hostAlloc(64);
  assert.equal(native.stats.pinnedHostBytes, 64);
  const d = native.malloc(64);
  native.memcpyHtoD(d, new Uint8Array(buffer), native.streamCreate());
  assert.throws(
    () => native.hostFree(buffer),
    /^Error: cudaFreeHost\(64 bytes\): invalid argument \(cudaErrorInvalidValue\): 1 queued async copy still uses this buffer/,
  );
  native.deviceSynchronize();
  native.hostFree(buffer);
  assert.equal(buffer.byteLength, 0, "detached");
  assert.equal(native.stats.pinnedHostBytes, 0);
  assert.throws(() => native.hostFree(buffer), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "hostFree: the ArrayBuffer is detached (already freed by hostFree?)",
  });
  assert.throws(() => native.hostFree(new ArrayBuffer(8)), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "hostFree: the ArrayBuffer (8 bytes) is not a live buffer from hostAlloc()",
  });
  assert.throws(
    () => native.hostFree(new Uint8Array(native.hostAlloc(8)) as unknown as ArrayBuffer),
    { code: "ERR_INVALID_ARG_TYPE" },
    "a view, not the buffer",
  );
  const empty = native.hostAlloc(0);
  native.hostFree(empty);
  assert.equal(native.stats.pinnedHostBytes, 8);
});

/**
 * Stream A transforms x (relu, then x += x); stream B copies x to y. With `wait`, B waits on an event
 * A records after its kernels. Returns y.
 */
function raceScenario(seed: number, wait: boolean, sync: "device" | "streamB"): Float32Array {
  const native = device({ seed });
  const a = native.streamCreate();
  const b = native.streamCreate();
  const initial = Float32Array.of(-1, 2, -3, 4);
  const x = put(native, initial);
  const y = native.malloc(16);
  native.deviceSynchronize();
  native.relu(x, 4, a);
  native.add(x, x, 4, a);
  const ready = native.eventCreate(false);
  native.eventRecord(ready, a);
  if (wait) native.streamWaitEvent(b, ready);
  native.memcpyDtoD(y, x, 16, b);
  if (sync === "device") native.deviceSynchronize();
  else native.streamSynchronize(b);
  return getF32(native, y, 4);
}

test("emulated native: streamWaitEvent orders B's copy after A's kernels for every seed; without it seeds interleave them wrongly", () => {
  const right = [0, 4, 0, 8];
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 24; seed++) {
    assert.deepEqual([...raceScenario(seed, true, "device")], right, `seed ${seed}, with the wait, deviceSynchronize`);
    assert.deepEqual(
      [...raceScenario(seed, true, "streamB")],
      right,
      `seed ${seed}, with the wait, B synchronised alone`,
    );
    outcomes.add(raceScenario(seed, false, "device").join(","));
    // Synchronising B alone runs only what B depends on: without the wait, A's kernels have not run.
    assert.deepEqual([...raceScenario(seed, false, "streamB")], [-1, 2, -3, 4], `seed ${seed}, no wait, B alone`);
  }
  // Without the wait the copy lands before, between or after A's two kernels depending on the seed.
  assert.ok(outcomes.has(right.join(",")), "some seed happens to give the right answer");
  assert.ok(outcomes.size >= 2, `some seed gives a wrong answer: ${[...outcomes].join(" | ")}`);
  // Same seed, same outcome.
  assert.deepEqual(raceScenario(7, false, "device"), raceScenario(7, false, "device"));
});

test("emulated native: queries run at most a little work and polling ends; never-recorded events are complete", () => {
  const native = device({ seed: 3 });
  const s = native.streamCreate();
  const p = native.malloc(4 * 1024);
  for (let i = 0; i < 10; i++) native.memset(p, i, 4 * 1024, s);
  const event = native.eventCreate(true);
  native.eventRecord(event, s);
  assert.equal(native.stats.pendingOps, 10);
  let polls = 0;
  let before = native.stats.pendingOps;
  while (!native.eventQuery(event)) {
    polls++;
    const now = native.stats.pendingOps;
    assert.ok(before - now <= 1, "one query runs at most one op");
    before = now;
    assert.ok(polls < 100);
  }
  assert.ok(polls >= 5, `polling took ${polls} queries for 10 ops`);
  assert.equal(native.streamQuery(s), true);
  assert.equal(getBytes(native, p, 1)[0], 9);
  const never = native.eventCreate(false);
  assert.equal(native.eventQuery(never), true);
  native.eventSynchronize(never);
  native.streamWaitEvent(s, never); // no-op
  assert.equal(native.streamQuery(s), true);
  assert.throws(
    () => native.streamSynchronize(12345),
    /^Error: cudaStreamSynchronize\(stream 0x3039\): invalid resource handle \(cudaErrorInvalidResourceHandle\)/,
  );
  assert.throws(() => native.streamSynchronize(event), /cudaErrorInvalidResourceHandle/, "an event is not a stream");
  assert.throws(() => native.streamDestroy(0), /cudaErrorInvalidResourceHandle/);
});

test("emulated native: a destroyed stream's queued work still runs", () => {
  const native = device();
  const s = native.streamCreate();
  const p = native.malloc(8);
  native.memset(p, 7, 8, s);
  native.streamDestroy(s);
  assert.throws(() => native.streamSynchronize(s), /cudaErrorInvalidResourceHandle/);
  native.deviceSynchronize();
  assert.deepEqual([...getBytes(native, p, 8)], [7, 7, 7, 7, 7, 7, 7, 7]);
  assert.equal(native.stats.pendingOps, 0);
});

test("emulated native: eventElapsedMs is positive, additive, proportional to bytes, ordered across streams, seed-independent", () => {
  const timings = (seed: number) => {
    const native = device({ seed, deviceBytes: 16 * MIB });
    const a = native.streamCreate();
    const b = native.streamCreate();
    const small = new Uint8Array(native.hostAlloc(1 * MIB));
    const large = new Uint8Array(native.hostAlloc(4 * MIB));
    const d = native.malloc(4 * MIB);
    const [e0, e1, e2, e3] = [0, 1, 2, 3].map(() => native.eventCreate(true)) as [number, number, number, number];
    native.eventRecord(e0, a);
    native.memcpyHtoD(d, small, a);
    native.eventRecord(e1, a);
    native.memcpyHtoD(d, large, a);
    native.eventRecord(e2, a);
    // B waits for A's copies, then does a small memset.
    native.streamWaitEvent(b, e2);
    native.memset(d, 0, 1024, b);
    native.eventRecord(e3, b);
    assert.throws(() => native.eventElapsedMs(e0, e1), /cudaErrorNotReady/, "not synchronised yet");
    native.deviceSynchronize();
    const untimed = native.eventCreate(false);
    native.eventRecord(untimed, a);
    assert.throws(() => native.eventElapsedMs(e0, untimed), /cudaErrorInvalidResourceHandle/);
    return {
      first: native.eventElapsedMs(e0, e1),
      second: native.eventElapsedMs(e1, e2),
      whole: native.eventElapsedMs(e0, e2),
      crossStream: native.eventElapsedMs(e0, e3),
      backwards: native.eventElapsedMs(e2, e0),
    };
  };
  const t = timings(1);
  assert.ok(t.first > 0);
  // 1 MiB at 20 GB/s is about 0.052 ms.
  assert.ok(t.first > 0.04 && t.first < 0.07, `1 MiB HtoD took ${t.first} ms`);
  assert.ok(
    Math.abs(t.whole - (t.first + t.second)) < 1e-6 * t.whole,
    "additive (to float precision: CUDA returns a float)",
  );
  assert.ok(t.second > 3.5 * t.first && t.second < 4.1 * t.first, "4x the bytes, about 4x the time");
  assert.ok(t.crossStream > t.whole, "B's event comes after the A work it waited for");
  assert.ok(Math.abs(t.backwards + t.whole) < 1e-12, "reversed events give the negative");
  assert.deepEqual(timings(99), t, "timings do not depend on the interleaving seed");
});

// ---------------------------------------------------------------------------------------------------
// Kernels against the CPU reference.
// ---------------------------------------------------------------------------------------------------

function referenceLinear(
  x: Float32Array,
  w16: Uint16Array,
  bias: Float32Array | undefined,
  m: number,
  k: number,
  n: number,
): Float32Array {
  const out = new Float32Array(m * n);
  const scratch = linearScratchLength(m, k);
  linearF16(x, w16, bias, out, m, k, n, new Float32Array(scratch.tile), new Float32Array(scratch.out));
  return out;
}

test("emulated native: spw_linear: fp32 x for m <= 8 (GEMV), x split into two fp16 halves for m > 8 (tensor cores), with and without bias", () => {
  const native = device();
  let seed = 10;
  for (const [m, k, n] of [
    [1, 37, 19],
    [3, 64, 33],
    [8, 20, 5],
    [9, 37, 19],
    [12, 64, 33],
    [40, 17, 70],
  ] as const) {
    const x = randomArray(m * k, seed++, 3);
    const w16 = toFloat16Array(randomArray(n * k, seed++));
    const w = fromFloat16Array(w16);
    const bias = randomArray(n, seed++);
    const dx = put(native, x);
    const dw = put(native, w16);
    const db = put(native, bias);
    const dout = native.malloc(m * n * 4);
    const xUsed = m > 8 ? splitHalves(x) : x;
    for (const withBias of [true, false]) {
      const b = withBias ? bias : undefined;
      native.linear(dx, dw, withBias ? db : 0, dout, m, k, n, 0);
      const out = getF32(native, dout, m * n);
      assertSameBits(
        out,
        referenceLinear(xUsed, w16, b, m, k, n),
        `${m}x${k}x${n} bias=${withBias} vs the CPU reference`,
      );
      const error = maxRelativeError(out, naiveLinear(xUsed, w, b, m, k, n));
      assert.ok(error < 1e-5, `${m}x${k}x${n}: relative error ${error} against float64`);
      if (m > 8) {
        // The split is visible in the last bits (hi + lo keeps about 22 of x's 24), and it is far
        // closer to x than fp16 rounding alone.
        const unsplit = referenceLinear(x, w16, b, m, k, n);
        assert.ok(
          out.some((v, i) => v !== unsplit[i]),
          `${m}x${k}x${n}: x was split`,
        );
        const rounded = referenceLinear(fromFloat16Array(toFloat16Array(x)), w16, b, m, k, n);
        assert.ok(
          maxRelativeError(out, naiveLinear(x, w, b, m, k, n)) <
            maxRelativeError(rounded, naiveLinear(x, w, b, m, k, n)) / 100,
          `${m}x${k}x${n}: split beats fp16 rounding`,
        );
      }
    }
    assert.deepEqual(getF32(native, dx, m * k), x, "x itself is left unrounded");
    for (const p of [dx, dw, db, dout]) native.free(p);
  }
});

test("emulated native: spw_layer_norm (eps as a C float, in place allowed), spw_softmax_rows (all -inf row → zeros)", () => {
  const native = device();
  const [rows, cols] = [4, 50];
  const x = randomArray(rows * cols, 1, 5);
  const gamma = randomArray(cols, 2);
  const beta = randomArray(cols, 3);
  const dx = put(native, x);
  const dg = put(native, gamma);
  const db = put(native, beta);
  const dout = native.malloc(rows * cols * 4);
  native.layerNorm(dx, dg, db, dout, rows, cols, 1e-5, 0);
  const expected = new Float32Array(rows * cols);
  layerNorm(x, gamma, beta, expected, rows, cols, Math.fround(1e-5));
  assertSameBits(getF32(native, dout, rows * cols), expected, "layerNorm");
  const row0 = getF32(native, dout, cols);
  const mean = row0.reduce((s, v, c) => s + (v - beta[c]!) / gamma[c]!, 0) / cols;
  assert.ok(Math.abs(mean) < 1e-4, "normalised row has mean 0 before the affine part");
  native.layerNorm(dx, dg, db, dx, rows, cols, 1e-5, 0);
  assertSameBits(getF32(native, dx, rows * cols), expected, "layerNorm in place");

  const logits = randomArray(3 * 7, 4, 10);
  logits.fill(-Infinity, 7, 14);
  logits[15] = -Infinity;
  const dl = put(native, logits);
  native.softmaxRows(dl, 3, 7, 0);
  const sm = getF32(native, dl, 21);
  const reference = logits.slice();
  softmaxRowsInPlace(reference, 3, 7);
  assertSameBits(sm, reference, "softmax");
  assert.deepEqual([...sm.subarray(7, 14)], [0, 0, 0, 0, 0, 0, 0], "all -inf row becomes zeros");
  assert.equal(sm[15], 0);
  for (const r of [0, 2]) assert.ok(Math.abs(sm.subarray(r * 7, r * 7 + 7).reduce((a, b) => a + b, 0) - 1) < 1e-6);
});

function naiveAttention(
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
  for (let head = 0; head < heads; head++) {
    for (let i = 0; i < t; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= past + i; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[i * h + head * headDim + d]! * scale * k[j * h + head * headDim + d]!;
        scores.push(s);
      }
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      for (let d = 0; d < headDim; d++) {
        let o = 0;
        for (let j = 0; j < exps.length; j++) o += (exps[j]! / sum) * v[j * h + head * headDim + d]!;
        out[i * h + head * headDim + d] = o;
      }
    }
  }
  return out;
}

test("emulated native: spw_attention, prefill and decode, against the CPU reference; scratch is clobbered", () => {
  const native = device();
  const [heads, headDim] = [3, 8];
  const h = heads * headDim;
  let seed = 50;
  for (const [t, past] of [
    [5, 0],
    [1, 6],
    [2, 9],
    [4, 3],
  ] as const) {
    const ctx = past + t;
    const q = randomArray(t * h, seed++, 2);
    const k = randomArray(ctx * h, seed++, 2);
    const v = randomArray(ctx * h, seed++);
    const [dq, dk, dv] = [q, k, v].map((a) => put(native, a)) as [number, number, number];
    const dout = native.malloc(t * h * 4);
    const scratchFloats = native.attentionScratchFloats(t, past, heads);
    assert.equal(scratchFloats, heads * t * ctx);
    const dscratch = native.malloc(scratchFloats * 4);
    native.attention(dq, dk, dv, dout, dscratch, t, past, heads, headDim, 0);
    const out = getF32(native, dout, t * h);
    const expected = new Float32Array(t * h);
    attention(q, k, v, expected, t, past, heads, headDim);
    assertSameBits(out, expected, `attention t=${t} past=${past}`);
    assert.ok(
      maxRelativeError(out, naiveAttention(q, k, v, t, past, heads, headDim)) < 1e-5,
      `t=${t} past=${past} vs float64`,
    );
    assert.ok(getF32(native, dscratch, scratchFloats).every(Number.isNaN));
    // A scratch one float short is an out-of-bounds write.
    assert.throws(
      () => native.attention(dq, dk, dv, dout, dscratch + 4, t, past, heads, headDim, 0),
      /^Error: attention\(t=\d+, past=\d+, heads=3, headDim=8\): an illegal memory access was encountered \(cudaErrorIllegalAddress\): scratch/,
    );
    for (const p of [dq, dk, dv, dout, dscratch]) native.free(p);
  }
});

test("emulated native: spw_relu, spw_add, spw_copy, spw_embedding (bad id → NaN row)", () => {
  const native = device();
  const x = randomArray(33, 1);
  const y = randomArray(33, 2);
  const dx = put(native, x);
  const dy = put(native, y);
  native.relu(dx, 33, 0);
  const relu = x.slice();
  reluInPlace(relu);
  assertSameBits(getF32(native, dx, 33), relu, "relu");
  native.add(dx, dy, 33, 0);
  addInPlace(relu, y);
  assertSameBits(getF32(native, dx, 33), relu, "add");
  native.add(dy, dy, 33, 0);
  assertSameBits(
    getF32(native, dy, 33),
    y.map((v) => v + v),
    "add in place x == y",
  );
  const dcopy = native.malloc(33 * 4);
  native.copy(dx, dcopy, 33 * 4, 0);
  assertSameBits(getF32(native, dcopy, 33), relu, "copy");

  const [rows, dim] = [5, 6];
  const table = toFloat16Array(randomArray(rows * dim, 3, 4));
  const ids = Int32Array.of(3, 0, 7, -1, 4, 3);
  const dt = put(native, table);
  const di = put(native, ids);
  const de = native.malloc(ids.length * dim * 4);
  native.embedding(dt, di, ids.length, dim, rows, de, 0);
  const out = getF32(native, de, ids.length * dim);
  ids.forEach((id, i) => {
    const row = out.subarray(i * dim, (i + 1) * dim);
    if (id < 0 || id >= rows) assert.ok(row.every(Number.isNaN), `id ${id} gives a NaN row`);
    else assert.deepEqual(row, fromFloat16Array(table.subarray(id * dim, (id + 1) * dim)), `row for id ${id}`);
  });
});

test("emulated native: spw_f32_to_f16 rounds to nearest even like runtime/fp16, spw_f16_to_f32 round-trips every non-NaN half", () => {
  const native = device();
  const x = randomArray(1000, 5, 70000);
  x.set([
    0,
    -0,
    65504,
    65519.99,
    65520,
    -65520,
    1e-8,
    2 ** -24 * 0.5,
    2 ** -24 * 1.5,
    Infinity,
    -Infinity,
    Number.NaN,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
  ]);
  const dx = put(native, x);
  const dh = native.malloc(x.length * 2);
  native.f32ToF16(dx, dh, x.length, 0);
  assert.deepEqual(getU16(native, dh, x.length), toFloat16Array(x));

  const nonNaN: number[] = [];
  for (let bits = 0; bits < 65536; bits++) if ((bits & 0x7c00) !== 0x7c00 || (bits & 0x3ff) === 0) nonNaN.push(bits);
  const all = Uint16Array.from(nonNaN);
  const count = all.length;
  const dAll = put(native, all);
  const dF32 = native.malloc(count * 4);
  const dBack = native.malloc(count * 2);
  native.f16ToF32(dAll, dF32, count, 0);
  native.f32ToF16(dF32, dBack, count, 0);
  assertSameBits(getF32(native, dF32, count), fromFloat16Array(all), "f16 → f32");
  assert.deepEqual(getU16(native, dBack, count), all, "f16 → f32 → f16 is the identity");
});

test("emulated native: spw_quantize4 / spw_dequantize4 on rows stored back to back, bit-exact with tensor-codec", () => {
  const native = device();
  assert.equal(native.q4Bytes(100), 72);
  assert.equal(native.q4Bytes(128), 72);
  assert.equal(native.q4Bytes(129), 108);
  let seed = 70;
  for (const [rows, rowValues] of [
    [1, 64],
    [3, 100],
    [4, 128],
    [2, 1],
    [5, 191],
  ] as const) {
    const rowBytes = native.q4Bytes(rowValues);
    const x = randomArray(rows * rowValues, seed++, 3);
    if (rowValues > 10) x.fill(0.25, 2, 10); // a constant stretch
    const dx = put(native, x);
    const dq = native.malloc(rows * rowBytes);
    native.quantize4(dx, rows, rowValues, dq, 0);
    const stored = getBytes(native, dq, rows * rowBytes);
    const expectedStored = new Uint8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++)
      encode(
        x.subarray(r * rowValues, (r + 1) * rowValues),
        "q4",
        expectedStored.subarray(r * rowBytes, (r + 1) * rowBytes),
      );
    assert.deepEqual(stored, expectedStored, `quantize4 ${rows}x${rowValues}`);

    const d32 = native.malloc(rows * rowValues * 4);
    const d16 = native.malloc(rows * rowValues * 2);
    native.dequantize4F32(dq, rows, rowValues, d32, 0);
    native.dequantize4F16(dq, rows, rowValues, d16, 0);
    const expected32 = new Float32Array(rows * rowValues);
    const expected16 = new Uint16Array(rows * rowValues);
    for (let r = 0; r < rows; r++) {
      const bytes = expectedStored.subarray(r * rowBytes, (r + 1) * rowBytes);
      decode(bytes, "q4", rowValues, expected32.subarray(r * rowValues, (r + 1) * rowValues));
      decodeToFloat16(bytes, rowValues, expected16.subarray(r * rowValues, (r + 1) * rowValues), new Float32Array(64));
    }
    const out32 = getF32(native, d32, rows * rowValues);
    assertSameBits(out32, expected32, `dequantize4F32 ${rows}x${rowValues}`);
    assert.deepEqual(getU16(native, d16, rows * rowValues), expected16, `dequantize4F16 ${rows}x${rowValues}`);
    assert.ok(maxRelativeError(out32, x) < 0.1, "dequantised values are close to the originals");
    // kernels.cu assumes no alignment of `stored`: the same at an odd address.
    const odd = native.malloc(rows * rowBytes + 1);
    native.quantize4(dx, rows, rowValues, odd + 1, 0);
    assert.deepEqual(getBytes(native, odd + 1, rows * rowBytes), expectedStored, "quantize4 at an odd address");
    native.dequantize4F16(odd + 1, rows, rowValues, d16, 0);
    assert.deepEqual(getU16(native, d16, rows * rowValues), expected16, "dequantize4F16 from an odd address");
    native.free(odd);
    for (const p of [dx, dq, d32, d16]) native.free(p);
  }
});

test("emulated native: spw_quantize4 marks a group holding NaN or a value beyond fp16 as NaN, leaving the others exact", () => {
  const native = device();
  const rowValues = 192;
  const x = randomArray(rowValues, 9);
  x[70] = Number.NaN; // group 1
  x[150] = 70000; // group 2
  const dx = put(native, x);
  const dq = native.malloc(native.q4Bytes(rowValues));
  native.quantize4(dx, 1, rowValues, dq, 0);
  const stored = getBytes(native, dq, native.q4Bytes(rowValues));
  const expected = encode(
    Float32Array.from(x, (v, i) => (i >= 64 ? 0 : v)),
    "q4",
  );
  const halves = new DataView(stored.buffer);
  assert.deepEqual(stored.subarray(0, 32), expected.subarray(0, 32), "group 0 codes as the CPU");
  assert.ok(
    stored.subarray(32, 96).every((b) => b === 0xff),
    "groups 1 and 2 codes are 0xFF",
  );
  assert.equal(halves.getUint16(96, true), new DataView(expected.buffer).getUint16(96, true), "group 0 scale");
  for (const at of [98, 100, 104, 106]) assert.equal(halves.getUint16(at, true), 0x7e00, `NaN scale/min at byte ${at}`);
  const d32 = native.malloc(rowValues * 4);
  native.dequantize4F32(dq, 1, rowValues, d32, 0);
  const out = getF32(native, d32, rowValues);
  assert.ok(out.subarray(64).every(Number.isNaN), "a bad group cannot pass for data");
  assert.ok(out.subarray(0, 64).every(Number.isFinite));
});

test("emulated native: spw_argmax_rows: ties to the lowest index, NaN skipped, NaN/-inf rows give 0", () => {
  const native = device();
  const cols = 5;
  const x = Float32Array.of(
    1,
    3,
    3,
    2,
    0,
    Number.NaN,
    -1,
    4,
    4,
    Number.NaN,
    -Infinity,
    -Infinity,
    -Infinity,
    -Infinity,
    -Infinity,
    Number.NaN,
    Number.NaN,
    Number.NaN,
    Number.NaN,
    Number.NaN,
    -5,
    -4,
    -3,
    -2,
    -1,
  );
  const random32 = randomArray(7 * 300, 4);
  random32[300 + 17] = 2;
  random32[300 + 200] = 2;
  for (const [values, c] of [
    [x, cols],
    [random32, 300],
  ] as const) {
    const rows = values.length / c;
    const dx = put(native, values);
    const dout = native.malloc(rows * 4);
    native.argmaxRows(dx, rows, c, dout, 0);
    const out = new Int32Array(rows);
    native.memcpyDtoH(out, dout, 0);
    assert.deepEqual(out, argmaxRows(values, rows, c));
  }
  const out = new Int32Array(5);
  native.argmaxRows(put(native, x), 5, cols, native.malloc(20), 0);
  native.deviceSynchronize();
  assert.deepEqual([...argmaxRows(x, 5, cols, out)], [1, 2, 0, 0, 4]);
});

test("emulated native: spw_argmax_merge over column chunks of any width equals spw_argmax_rows over whole rows", () => {
  const native = device();
  const rows = 6;
  const cols = 230;
  const values = randomArray(rows * cols, 9);
  values[17] = 5; // row 0: a tie across chunks keeps the earlier one
  values[180] = 5;
  values.fill(Number.NaN, cols, 2 * cols); // row 1: all NaN
  values.fill(-Infinity, 2 * cols, 3 * cols); // row 2: all -inf
  values[3 * cols + 100] = Number.NaN; // row 3: a NaN among values
  const expected = argmaxRows(values, rows, cols);
  for (const chunk of [1, 7, 64, 229, 230]) {
    const bestValue = native.malloc(rows * 4);
    const bestIndex = native.malloc(rows * 4);
    for (let first = 0; first < cols; first += chunk) {
      const width = Math.min(chunk, cols - first);
      const part = new Float32Array(rows * width);
      for (let r = 0; r < rows; r++) part.set(values.subarray(r * cols + first, r * cols + first + width), r * width);
      native.argmaxMerge(put(native, part), rows, width, first, bestValue, bestIndex, first === 0 ? 1 : 0, 0);
    }
    const out = new Int32Array(rows);
    native.memcpyDtoH(out, bestIndex, 0);
    assert.deepEqual(out, expected, `chunks of ${chunk}`);
  }
});

// ---------------------------------------------------------------------------------------------------
// Out-of-bounds and misuse.
// ---------------------------------------------------------------------------------------------------

test("emulated native: malformed arguments throw the addon's TypeErrors before anything is queued", () => {
  const native = device();
  const x = native.malloc(64);
  const call = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  assert.throws(() => call.relu!(x, 4), {
    name: "TypeError",
    code: "ERR_MISSING_ARGS",
    message: "relu expects 3 arguments, got 2",
  });
  assert.throws(() => call.probe!(1), { code: "ERR_INVALID_ARG_COUNT" });
  assert.throws(() => native.relu(x, 1.5, 0), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "relu: n must be a count (a non-negative integer below 2^53), got 1.5",
  });
  assert.throws(() => call.relu!("0x1", 4, 0), {
    code: "ERR_INVALID_ARG_TYPE",
    message: "relu: x must be a number, got string",
  });
  assert.throws(() => native.linear(x, x, 0, x, -1, 1, 1, 0), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "linear: m must be an integer from 0 to 2147483647, got -1",
  });
  assert.throws(() => native.memset(x, 256, 4, 0), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "memset: byte must be an integer from 0 to 255, got 256",
  });
  assert.throws(() => native.layerNorm(x, x, x, x, 1, 1, Number.NaN, 0), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "layerNorm: eps must be a finite number, got NaN",
  });
  assert.throws(() => call.eventCreate!(1), { code: "ERR_INVALID_ARG_TYPE" });
  assert.throws(() => native.eventRecord(0, 0), {
    code: "ERR_INVALID_ARG_VALUE",
    message: "eventRecord: event must be an event from eventCreate(), got 0",
  });
  assert.throws(() => call.memcpyHtoD!(x, [1, 2], 0), { code: "ERR_INVALID_ARG_TYPE" });
  // An ArrayBuffer is accepted as host memory, as by the addon.
  native.memcpyHtoD(x, Float32Array.of(1.5, 2.5).buffer as unknown as ArrayBufferView, 0);
  assert.deepEqual([...getF32(native, x, 2)], [1.5, 2.5]);
  assert.equal(native.stats.pendingOps, 0);
});

test("emulated native: arguments are checked in order, the first malformed one named (as addon.cpp checks them)", () => {
  const native = device();
  const x = native.malloc(64);
  const call = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  // gatherRows(src, srcRows, index, rows, cols, dst, stream): srcRows comes before index and dst.
  assert.throws(() => call.gatherRows!(x, -1, "index", 1, 1, -1, 0), {
    message: "gatherRows: srcRows must be an integer from 0 to 2147483647, got -1",
  });
  // scatterRows(src, index, rows, cols, dst, dstRows, stream): rows comes before dst.
  assert.throws(() => call.scatterRows!(x, x, 1.5, 1, "dst", 1, 0), {
    message: "scatterRows: rows must be an integer from 0 to 2147483647, got 1.5",
  });
  assert.throws(() => call.linearGroupwiseBias!(x, x, 5, "bias", x, 1, 1, 1, 0), {
    message: "linearGroupwiseBias: bits must be 2, 3, 4, 8 or 16, got 5",
  });
  assert.throws(() => call.eventElapsedMs!(1, 0), {
    message: "eventElapsedMs: end must be an event from eventCreate(), got 0",
  });
  assert.throws(() => call.hostFree!(new Uint8Array(4)), {
    code: "ERR_INVALID_ARG_TYPE",
    message:
      "hostFree: buffer must be an ArrayBuffer from hostAlloc(), got object (not an ArrayBuffer; pass the buffer, not a view of it)",
  });
  assert.equal(native.stats.pendingOps, 0);
});

test("emulated native: kernels and copies refuse ranges outside a live allocation, misaligned views and overlapping outputs", () => {
  const native = device();
  const x = native.malloc(100 * 4);
  const w = native.malloc(10 * 16 * 2);
  const out = native.malloc(4 * 10 * 4);
  assert.throws(
    () => native.relu(x, 101, 0),
    /^Error: relu\(n=101\): an illegal memory access was encountered \(cudaErrorIllegalAddress\): x = 0x[0-9a-f]+, 404 bytes: runs 4 bytes past the end of its allocation/,
  );
  assert.throws(() => native.relu(x + 4, 100, 0), {
    code: "cudaErrorIllegalAddress",
    cudaError: 700,
    message: /runs 4 bytes past/,
  });
  assert.throws(
    () => native.linear(x, w, 0, out, 4, 16, 11, 0),
    /^Error: linear\(m=4, k=16, n=11\): .*: w = /,
    "w has 10 rows, not 11",
  );
  assert.throws(
    () => native.linear(x, w, 0, out, 4, 26, 10, 0),
    /^Error: linear\(m=4, k=26, n=10\): .*: x = /,
    "x holds 100 floats, not 104",
  );
  assert.throws(
    () => native.relu(x + 2, 4, 0),
    /^Error: relu\(n=4\): misaligned address \(cudaErrorMisalignedAddress\)/,
  );
  assert.throws(
    () => native.linear(x, w, 0, x, 2, 16, 10, 0),
    /^Error: linear\(m=2, k=16, n=10\): .*out .* overlaps x/,
  );
  assert.throws(
    () => native.memcpyHtoD(x + 396, new Float32Array(2), 0),
    /^Error: cudaMemcpyAsync\(HtoD, dst 0x[0-9a-f]+, 8 bytes, stream 0x0\): an illegal memory access .*runs 4 bytes past/,
  );
  assert.throws(
    () => native.memcpyDtoH(new Float32Array(2), x + 396, 0),
    /^Error: cudaMemcpyAsync\(DtoH, src 0x[0-9a-f]+, 8 bytes, stream 0x0\): an illegal memory access .*runs 4 bytes past/,
  );
  assert.throws(() => native.memset(0, 0, 4, 0), /null pointer/);
  assert.throws(() => native.relu(5 * DEVICE_BASE, 1, 0), /not inside any live allocation/);
  assert.throws(
    () => native.relu(x, 4, 777),
    /^Error: relu\(n=4\): invalid resource handle \(cudaErrorInvalidResourceHandle\)/,
  );
  // A range that spans two adjacent allocations is still out of bounds.
  const neighbour = native.malloc(256);
  const full = native.malloc(256);
  assert.equal(full, neighbour + 256);
  assert.throws(
    () => native.memset(neighbour, 0, 300, 0),
    /^Error: cudaMemsetAsync\(dst 0x[0-9a-f]+, byte 0, 300 bytes, stream 0x0\): .*runs 44 bytes past/,
  );
  native.free(x);
  assert.throws(() => native.relu(x, 1, 0), /^Error: relu\(n=1\): .*not inside any live allocation/, "freed memory");
  assert.equal(native.stats.pendingOps, 0, "nothing refused was queued");
});

test("emulated native: cudaFree waits for queued work; an op whose pinned buffer was transferred fails at the next synchronisation", () => {
  const native = device();
  const s = native.streamCreate();
  const p = native.malloc(16);
  const q = native.malloc(16);
  native.memset(p, 3, 16, s);
  native.memcpyDtoD(q, p, 16, s);
  native.free(p);
  assert.equal(native.stats.pendingOps, 0);
  assert.deepEqual([...getBytes(native, q, 4)], [3, 3, 3, 3]);

  const pinned = native.hostAlloc(16);
  native.memcpyHtoD(q, new Uint8Array(pinned), s);
  structuredClone(pinned, { transfer: [pinned] }); // the host gives the buffer away behind CUDA's back
  assert.throws(
    () => native.streamSynchronize(s),
    /^Error: cudaMemcpyAsync\(HtoD, dst 0x[0-9a-f]+, 16 bytes, stream 0x[0-9a-f]+\) on stream 0x[0-9a-f]+ failed when it ran: its pinned source buffer was detached/,
  );
  assert.equal(native.stats.pendingOps, 0);
});
