import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ENCODE_CHUNK_VALUES, readEncodedTensor } from "../../runtime/encode-tensor.js";
import { quantize4bit, quantize4bitInto } from "../../runtime/kernels/quantize-4bit.js";
import { loadOptCheckpoint } from "../../runtime/opt-checkpoint.js";
import { encodeQuantized, ParallelEncoder } from "../../runtime/parallel-encoder.js";
import { openSafetensors, writeSafetensors } from "../../runtime/safetensors.js";
import { synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { encode, encodedByteLength, encodeRange } from "../../runtime/tensor-codec.js";
import { random, TINY_OPT } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-encode-tensor-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Values of every kind a group can hold: spread, constant (scale 0), tiny, and an odd tail. */
function values(count: number, seed: number): Float32Array {
  const next = random(seed);
  const x = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const group = Math.floor(i / 64);
    x[i] = group % 5 === 1 ? 0.25 : group % 5 === 2 ? (next() - 0.5) * 1e-6 : (next() - 0.5) * 4;
  }
  return x;
}

// Lengths: under one group, an odd partial group, several chunks of a small scratch, and more than one full chunk.
const LENGTHS = [7, 64 * 3 + 33, 64 * 20 + 1, ENCODE_CHUNK_VALUES + 64 * 2 + 5];
const path = join(dir, "t.safetensors");
writeSafetensors(
  path,
  LENGTHS.flatMap((n, i) => [
    { name: `f16.${i}`, dtype: "F16" as const, shape: [n], data: values(n, i + 1) },
    { name: `f32.${i}`, dtype: "F32" as const, shape: [n], data: values(n, i + 11) },
  ]),
);

test("a tensor read straight into its encoding gives encode()'s bytes: F16 and F32, fp16 and 4-bit, whole or in chunks, into dirty memory", () => {
  const file = openSafetensors(path);
  try {
    for (const [i, n] of LENGTHS.entries()) {
      for (const dtype of ["f16", "f32"]) {
        const name = `${dtype}.${i}`;
        for (const encoding of ["f16", "q4"] as const) {
          const expected = encode(file.readFloat32(name), encoding);
          assert.deepEqual(readEncodedTensor(file, name, encoding), expected, `${name} ${encoding}`);
          // Every byte is written: a destination full of garbage ends up the same.
          const dirty = new Uint8Array(encodedByteLength(n, encoding) + 3).fill(0xa5);
          readEncodedTensor(file, name, encoding, dirty, new Float32Array(64 * 3));
          assert.deepEqual(dirty.subarray(0, expected.length), expected, `${name} ${encoding} in chunks of 3 groups`);
          assert.deepEqual(
            [...dirty.subarray(expected.length)],
            [0xa5, 0xa5, 0xa5],
            "nothing past the tensor is written",
          );
        }
      }
    }
    assert.throws(() => readEncodedTensor(file, "f16.1", "q4", new Uint8Array(10)), /out holds 10 bytes/);
  } finally {
    file.close();
  }
});

test("readFloat32Range reads any slice of readFloat32's values; readRaw fills a given destination", () => {
  const file = openSafetensors(path);
  try {
    for (const name of ["f16.2", "f32.2"]) {
      const all = file.readFloat32(name);
      for (const [first, count] of [
        [0, 5],
        [63, 66],
        [all.length - 9, 9],
        [all.length, 0],
      ] as const)
        assert.deepEqual(
          file.readFloat32Range(name, first, new Float32Array(count)),
          all.subarray(first, first + count),
        );
      assert.throws(() => file.readFloat32Range(name, all.length - 3, new Float32Array(4)), /outside the tensor's/);
      assert.throws(() => file.readFloat32Range(name, -1, new Float32Array(1)), /outside the tensor's/);
    }
    const raw = file.readRaw("f16.1");
    const into = new Uint8Array(raw.length + 4).fill(7);
    assert.equal(file.readRaw("f16.1", into).buffer, into.buffer);
    assert.deepEqual(into.subarray(0, raw.length), raw);
    assert.deepEqual([...into.subarray(raw.length)], [7, 7, 7, 7]);
    assert.throws(() => file.readRaw("f16.1", new Uint8Array(raw.length - 1)), /destination holds/);
  } finally {
    file.close();
  }
});

test("4-bit encoding in chunks must cut at whole groups; quantize4bitInto writes every byte quantize4bit does", () => {
  const x = values(64 * 4 + 3, 5);
  const out = new Uint8Array(encodedByteLength(x.length, "q4"));
  assert.throws(() => encodeRange(x.subarray(32, 96), "q4", out, x.length, 32), /whole groups of 64/);
  assert.throws(() => encodeRange(x.subarray(0, 100), "q4", out, x.length, 0), /whole groups of 64/);
  // At an odd address (rows back to back on the emulated device), in two chunks: the same bytes.
  const whole = encode(x, "q4");
  const odd = new Uint8Array(whole.length + 1).subarray(1);
  encodeRange(x.subarray(0, 128), "q4", odd, x.length, 0);
  encodeRange(x.subarray(128), "q4", odd, x.length, 128);
  assert.deepEqual(odd, whole);
  for (const groupSize of [64, 6]) {
    const q = quantize4bit(x, groupSize);
    const groups = q.scale.length;
    const dirty = {
      packed: new Uint8Array(q.packed.length).fill(0xff),
      scale: new Uint16Array(groups).fill(1),
      min: new Uint16Array(groups).fill(1),
      groupSize,
    };
    quantize4bitInto(x, dirty);
    assert.deepEqual(dirty.packed, q.packed, `codes, groups of ${groupSize}`);
    assert.deepEqual(dirty.scale, q.scale);
    assert.deepEqual(dirty.min, q.min);
  }
  assert.throws(
    () =>
      quantize4bitInto(x, {
        packed: new Uint8Array(8),
        scale: new Uint16Array(5),
        min: new Uint16Array(5),
        groupSize: 64,
      }),
    /too short/,
  );
});

test("the parallel encoder's threads give readEncodedTensor's bytes for every 4-bit tensor, leave fp16 ones to the caller, and pass a quantiser's error on", async () => {
  const checkpoint = join(dir, "tiny");
  synthesizeOptWeights(TINY_OPT, checkpoint, { seed: 2 });
  const weights = loadOptCheckpoint(checkpoint);
  const encoder = await ParallelEncoder.start(2);
  assert.ok(encoder, "two threads start an encoder");
  try {
    const tensors = [...weights.layerTensorNames(1), ...weights.embeddingTensorNames()].map((name) => ({
      name,
      encoding: name.endsWith(".weight") && !name.includes("norm") ? ("q4" as const) : ("f16" as const),
    }));
    const encoded = await encodeQuantized(encoder, weights, tensors);
    const quantized = tensors.filter((t) => t.encoding === "q4");
    assert.deepEqual([...encoded.keys()].sort(), quantized.map((t) => t.name).sort());
    for (const t of quantized) {
      const bytes = encoded.get(t.name)!;
      assert.ok(bytes.buffer instanceof SharedArrayBuffer, `${t.name}: on a shared array`);
      assert.deepEqual(bytes, weights.encoded(t.name, "q4"), t.name);
    }
    assert.equal((await encodeQuantized(undefined, weights, quantized)).size, 0, "no encoder: nothing encoded ahead");
    // A NaN cannot be quantised: the thread's error reaches the caller, and the encoder goes on working.
    const bad = join(dir, "nan.safetensors");
    writeSafetensors(bad, [{ name: "x", dtype: "F32", shape: [128], data: new Float32Array(128).fill(Number.NaN) }]);
    const nan = openSafetensors(bad);
    const fake = { ...weights, info: () => ({ ...nan.info("x"), file: bad, storedName: "x" }) };
    await assert.rejects(
      encoder.encode(fake, [{ name: "x", encoding: "q4" }]),
      /group 0 holds a value outside fp16's range \(or NaN\)/,
    );
    nan.close();
    const again = await encoder.encode(weights, quantized.slice(0, 1));
    assert.deepEqual(again.get(quantized[0]!.name), weights.encoded(quantized[0]!.name, "q4"));
  } finally {
    await encoder.close();
    weights.close();
  }
  for (const threads of [1, 1.5, 0, -3, Number.NaN])
    assert.equal(await ParallelEncoder.start(threads), undefined, `${threads} threads: the main thread encodes`);
  assert.equal(ParallelEncoder.threadsAvailable(1), 1, "one core: the main thread encodes");
  assert.equal(ParallelEncoder.threadsAvailable(2), 2);
  assert.equal(ParallelEncoder.threadsAvailable(8), 8);
  assert.equal(ParallelEncoder.threadsAvailable(64), 16);
});
