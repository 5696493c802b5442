import assert from "node:assert/strict";
import { test } from "node:test";
import { type CpuBufferTypes, CpuDeviceOps } from "../../runtime/cpu-device-ops.js";
import { type CudaBufferTypes, CudaDeviceOps } from "../../runtime/cuda/cuda-device-ops.js";
import { createEmulatedNative, type EmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { toFloat16Array } from "../../runtime/fp16.js";
import { attention } from "../../runtime/kernels/attention.js";
import { layerNorm } from "../../runtime/kernels/layer-norm.js";
import {
  attendSequence,
  headFeatures,
  layerChunk,
  type OptLayerShape,
  type OptLayerWeights,
  scoreHeadChunk,
} from "../../runtime/opt-forward.js";
import { decode, type Encoding, encode, encodedByteLength } from "../../runtime/tensor-codec.js";
import { random } from "../helpers.js";

/**
 * The forward pass is written once over DeviceOps; these tests run it over the CPU backend's
 * operations (typed arrays) and the CUDA backend's (device addresses on the emulated device) and
 * require the same bits, so an operation mapped to the wrong kernel, stride or offset on either side
 * shows up here, before a whole run's tokens.
 */

const shape: OptLayerShape = { h: 8, f: 16, heads: 2, headDim: 4 };
const MATRICES: Record<string, [number, number]> = {
  "self_attn.q_proj.weight": [8, 8],
  "self_attn.k_proj.weight": [8, 8],
  "self_attn.v_proj.weight": [8, 8],
  "self_attn.out_proj.weight": [8, 8],
  "fc1.weight": [16, 8],
  "fc2.weight": [8, 16],
};
const VECTORS: Record<string, number> = {
  "self_attn_layer_norm.weight": 8,
  "self_attn_layer_norm.bias": 8,
  "self_attn.q_proj.bias": 8,
  "self_attn.k_proj.bias": 8,
  "self_attn.v_proj.bias": 8,
  "self_attn.out_proj.bias": 8,
  "final_layer_norm.weight": 8,
  "final_layer_norm.bias": 8,
  "fc1.bias": 16,
  "fc2.bias": 8,
};

function randomArray(length: number, seed: number): Float32Array {
  const next = random(seed);
  return Float32Array.from({ length }, () => next() * 2 - 1);
}

/** A layer's random weights: fp16 matrices and fp32 vectors (LayerNorm gains around 1). */
function layerWeights(seed: number) {
  const matrices = new Map<string, Uint16Array>();
  const vectors = new Map<string, Float32Array>();
  let s = seed;
  for (const [name, [rows, cols]] of Object.entries(MATRICES))
    matrices.set(name, toFloat16Array(randomArray(rows * cols, s++)));
  for (const [name, length] of Object.entries(VECTORS))
    vectors.set(
      name,
      randomArray(length, s++).map((x) => (name.endsWith("norm.weight") ? 1 + x / 4 : x)),
    );
  return { matrices, vectors };
}

interface Step {
  readonly encoding: Encoding;
  readonly sequences: number;
  readonly t: number;
  readonly past: number;
}

/** Stored past K and V rows per sequence, encoded as the cache stores them. */
function pastRows(step: Step, seed: number): Uint8Array[] {
  const rowBytes = encodedByteLength(shape.h, step.encoding);
  return Array.from({ length: 2 * step.sequences }, (_, i) => {
    const rows = randomArray(step.past * shape.h, seed + i);
    const out = new Uint8Array(step.past * rowBytes);
    for (let r = 0; r < step.past; r++)
      encode(
        rows.subarray(r * shape.h, (r + 1) * shape.h),
        step.encoding,
        out.subarray(r * rowBytes, (r + 1) * rowBytes),
      );
    return out;
  });
}

/** One chunk through the layer over the CPU backend's operations: the new hidden states and the new KV rows as stored. */
function layerOnCpu(step: Step, hidden: Uint16Array, past: Uint8Array[], seed: number) {
  const { h, f } = shape;
  const rows = step.sequences * step.t;
  const ctx = step.past + step.t;
  const rowBytes = encodedByteLength(h, step.encoding);
  const { matrices, vectors } = layerWeights(seed);
  const w: OptLayerWeights<CpuBufferTypes> = { matrix: (n) => matrices.get(n)!, vector: (n) => vectors.get(n)! };
  const ops = new CpuDeviceOps({
    linearTile: new Float32Array(16 * f),
    linearTileOut: new Float32Array(rows * 16),
    attention: new Float32Array(4096),
  });
  const shared = new Float32Array(rows * Math.max(4 * h, f));
  const b = {
    x: new Float32Array(rows * h),
    y: new Float32Array(rows * h),
    ffn: shared,
    q: shared.subarray(0, rows * h),
    k: shared.subarray(rows * h),
    v: shared.subarray(2 * rows * h),
    o: shared.subarray(3 * rows * h),
  };
  const out = hidden.slice();
  const fresh = Array.from({ length: 2 * step.sequences }, () => new Uint8Array(step.t * rowBytes));
  const work = { kAll: new Float32Array(ctx * h), vAll: new Float32Array(ctx * h) };
  layerChunk(ops, w, shape, out, step.sequences, step.t, b, (c) =>
    attendSequence(
      ops,
      shape,
      step.encoding,
      b,
      c,
      step.t,
      step.past,
      { past: past[2 * c]!, fresh: fresh[2 * c]! },
      { past: past[2 * c + 1]!, fresh: fresh[2 * c + 1]! },
      work,
    ),
  );
  return { hidden: out, fresh };
}

/** The same chunk over the CUDA backend's operations on the emulated device. */
function layerOnCuda(native: EmulatedNative, step: Step, hidden: Uint16Array, past: Uint8Array[], seed: number) {
  const { h, f } = shape;
  const rows = step.sequences * step.t;
  const ctx = step.past + step.t;
  const rowBytes = encodedByteLength(h, step.encoding);
  const stream = native.streamCreate();
  const put = (data: ArrayBufferView) => {
    const p = native.malloc(Math.max(data.byteLength, 4));
    if (data.byteLength > 0) native.memcpyHtoD(p, data, stream);
    return p;
  };
  const { matrices, vectors } = layerWeights(seed);
  const onDevice = {
    matrices: new Map([...matrices].map(([n, m]) => [n, put(m)])),
    vectors: new Map([...vectors].map(([n, v]) => [n, put(v)])),
  };
  const w: OptLayerWeights<CudaBufferTypes> = {
    matrix: (n) => onDevice.matrices.get(n)!,
    vector: (n) => onDevice.vectors.get(n)!,
  };
  const scratchFloats = 4096;
  const ops = new CudaDeviceOps(native, stream, native.malloc(scratchFloats * 4), scratchFloats);
  const shared = native.malloc(rows * Math.max(4 * h, f) * 4);
  const b = {
    x: native.malloc(rows * h * 4),
    y: native.malloc(rows * h * 4),
    ffn: shared,
    q: shared,
    k: shared + rows * h * 4,
    v: shared + 2 * rows * h * 4,
    o: shared + 3 * rows * h * 4,
  };
  const hiddenAt = put(hidden);
  const pastAt = past.map(put);
  const freshAt = Array.from({ length: 2 * step.sequences }, () => native.malloc(step.t * rowBytes));
  const work = { kAll: native.malloc(ctx * h * 4), vAll: native.malloc(ctx * h * 4) };
  layerChunk(ops, w, shape, hiddenAt, step.sequences, step.t, b, (c) =>
    attendSequence(
      ops,
      shape,
      step.encoding,
      b,
      c,
      step.t,
      step.past,
      { past: pastAt[2 * c]!, fresh: freshAt[2 * c]! },
      { past: pastAt[2 * c + 1]!, fresh: freshAt[2 * c + 1]! },
      work,
    ),
  );
  const out = new Uint16Array(hidden.length);
  native.memcpyDtoH(out, hiddenAt, stream);
  const fresh = freshAt.map((p) => {
    const bytes = new Uint8Array(step.t * rowBytes);
    native.memcpyDtoH(bytes, p, stream);
    return bytes;
  });
  native.streamSynchronize(stream);
  return { hidden: out, fresh };
}

const STEPS: Step[] = [
  { encoding: "f16", sequences: 2, t: 5, past: 0 },
  { encoding: "f16", sequences: 3, t: 1, past: 6 },
  { encoding: "q4", sequences: 2, t: 4, past: 0 },
  { encoding: "q4", sequences: 2, t: 1, past: 7 },
];

for (const step of STEPS) {
  test(`forward pass: a layer (${step.encoding} KV, ${step.sequences} sequences, t ${step.t}, past ${step.past}) gives the same bits over the CPU and the CUDA device operations`, () => {
    const hidden = toFloat16Array(randomArray(step.sequences * step.t * shape.h, 11));
    const past = pastRows(step, 100);
    const cpu = layerOnCpu(step, hidden, past, 200);
    const cuda = layerOnCuda(
      createEmulatedNative({ deviceBytes: 2 ** 20, order: "others-first" }),
      step,
      hidden,
      past,
      200,
    );
    assert.notDeepEqual(cpu.hidden, hidden, "the layer changed the hidden states");
    assert.deepEqual(cuda.hidden, cpu.hidden);
    assert.deepEqual(cuda.fresh, cpu.fresh);
  });
}

test("forward pass: attention sees the KV rows as stored (the layer's attention equals the kernel over the decoded cache)", () => {
  // One sequence, no FFN effects to untangle: compare the attention output the layer computes internally
  // with the kernel run on the decoded past rows and the decoded new rows.
  const step: Step = { encoding: "q4", sequences: 1, t: 1, past: 5 };
  const { h } = shape;
  const past = pastRows(step, 300);
  const q = randomArray(h, 1),
    k = randomArray(h, 2),
    v = randomArray(h, 3);
  const ops = new CpuDeviceOps({ attention: new Float32Array(4096) });
  const rowBytes = encodedByteLength(h, "q4");
  const kFresh = new Uint8Array(rowBytes),
    vFresh = new Uint8Array(rowBytes);
  const o = new Float32Array(h);
  const work = { kAll: new Float32Array(6 * h), vAll: new Float32Array(6 * h) };
  attendSequence(
    ops,
    shape,
    "q4",
    { x: new Float32Array(h), y: new Float32Array(h), q, k, v, o },
    0,
    1,
    5,
    { past: past[0]!, fresh: kFresh },
    { past: past[1]!, fresh: vFresh },
    work,
  );
  assert.deepEqual(kFresh, encode(k, "q4"));
  const kAll = new Float32Array(6 * h),
    vAll = new Float32Array(6 * h);
  for (let r = 0; r < 5; r++) {
    decode(past[0]!.subarray(r * rowBytes, (r + 1) * rowBytes), "q4", h, kAll.subarray(r * h, (r + 1) * h));
    decode(past[1]!.subarray(r * rowBytes, (r + 1) * rowBytes), "q4", h, vAll.subarray(r * h, (r + 1) * h));
  }
  decode(kFresh, "q4", h, kAll.subarray(5 * h));
  decode(vFresh, "q4", h, vAll.subarray(5 * h));
  const expected = new Float32Array(h);
  attention(q, kAll, vAll, expected, 1, 5, shape.heads, shape.headDim);
  assert.deepEqual(o, expected);
});

test("forward pass: the LM head scored in streamed chunks picks the tokens of one pass over the whole table, on both backends' operations", () => {
  const { h } = shape;
  const sequences = 3,
    t = 2,
    vocab = 37;
  const hidden = toFloat16Array(randomArray(sequences * t * h, 21));
  const gamma = randomArray(h, 22).map((x) => 1 + x / 4),
    beta = randomArray(h, 23);
  const table = toFloat16Array(randomArray(vocab * h, 24));
  const last = new Float32Array(sequences * h);
  const cpu = new CpuDeviceOps({
    linearTile: new Float32Array(16 * h),
    linearTileOut: new Float32Array(sequences * 16),
  });
  const normed = headFeatures(
    cpu,
    hidden,
    sequences,
    t,
    h,
    h,
    gamma,
    beta,
    undefined,
    new Float32Array(sequences * h),
    new Float32Array(sequences * h),
    new Float32Array(0),
  );
  const whole = { value: new Float32Array(sequences), index: new Int32Array(sequences) };
  scoreHeadChunk(
    cpu,
    normed,
    sequences,
    h,
    table,
    0,
    vocab,
    new Float32Array(sequences * vocab),
    whole.value,
    whole.index,
  );
  // The reference's features are the LayerNorm of the decoded last positions.
  for (let s = 0; s < sequences; s++) cpu.f16ToF32(hidden.subarray((s * t + t - 1) * h), last.subarray(s * h), h);
  const expectedNormed = new Float32Array(sequences * h);
  layerNorm(last, gamma, beta, expectedNormed, sequences, h);
  assert.deepEqual(normed, expectedNormed);
  // One pass over the whole table picks each sequence's float64 argmax.
  const decodedTable = new Float32Array(vocab * h);
  cpu.f16ToF32(table, decodedTable, vocab * h);
  for (let s = 0; s < sequences; s++) {
    let bestToken = 0,
      bestLogit = -Infinity;
    for (let r = 0; r < vocab; r++) {
      let logit = 0;
      for (let c = 0; c < h; c++) logit += normed[s * h + c]! * decodedTable[r * h + c]!;
      if (logit > bestLogit) [bestToken, bestLogit] = [r, logit];
    }
    assert.equal(whole.index[s], bestToken, `sequence ${s}`);
  }
  for (const rowsPerChunk of [5, 16, 36]) {
    const streamed = { value: new Float32Array(sequences), index: new Int32Array(sequences) };
    for (let first = 0; first < vocab; first += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, vocab - first);
      scoreHeadChunk(
        cpu,
        normed,
        sequences,
        h,
        table.subarray(first * h),
        first,
        rows,
        new Float32Array(sequences * rows),
        streamed.value,
        streamed.index,
      );
    }
    assert.deepEqual(streamed.index, whole.index, `chunks of ${rowsPerChunk} rows`);
    // The CUDA backend's operations on the emulated device, streaming the same chunks.
    const native = createEmulatedNative({ deviceBytes: 2 ** 20 });
    const stream = native.streamCreate();
    const put = (data: ArrayBufferView) => {
      const p = native.malloc(data.byteLength);
      native.memcpyHtoD(p, data, stream);
      return p;
    };
    const ops = new CudaDeviceOps(native, stream, native.malloc(4096), 1024);
    const features = native.malloc(sequences * h * 4);
    const lastAt = native.malloc(sequences * h * 4);
    const gammaAt = put(gamma),
      betaAt = put(beta),
      hiddenAt = put(hidden),
      tableAt = put(table);
    const logits = native.malloc(sequences * rowsPerChunk * 4),
      best = native.malloc(sequences * 4),
      index = native.malloc(sequences * 4);
    headFeatures(ops, hiddenAt, sequences, t, h, h, gammaAt, betaAt, undefined, lastAt, features, features);
    for (let first = 0; first < vocab; first += rowsPerChunk)
      scoreHeadChunk(
        ops,
        features,
        sequences,
        h,
        tableAt + first * h * 2,
        first,
        Math.min(rowsPerChunk, vocab - first),
        logits,
        best,
        index,
      );
    const tokens = new Int32Array(sequences);
    native.memcpyDtoH(tokens, index, stream);
    native.streamSynchronize(stream);
    assert.deepEqual(tokens, whole.index, `CUDA operations, chunks of ${rowsPerChunk} rows`);
  }
  assert.ok(new Set(whole.index).size > 1, "the sequences pick different tokens");
});
