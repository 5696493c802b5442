import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { InputError } from "../../core/input-error.js";
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  fromBfloat16Array,
  fromFloat16Array,
  toFloat16Array,
} from "../../runtime/fp16.js";
import { openSafetensors, safetensorsLayout, writeSafetensors } from "../../runtime/safetensors.js";
import { random } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("fp16 encoding is exact on the edge cases", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite
    [65519.99, 0x7bff], // just below the half-way point to 2^16
    [65520, 0x7c00], // the tie rounds to even: 2^16, which is infinity
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal (6.1035e-5)
    [6.1e-5, 0x03ff], // just below it: the largest subnormal
    [6.0e-5, 0x03ef], // 1006.63 units of 2^-24, rounds to 1007
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // half of it: tie, to even (zero)
    [3 * 2 ** -25, 0x0002], // 1.5 units: tie, to even (2)
    [2 ** -25 + 2 ** -40, 0x0001], // just above the tie
    [-(2 ** -26), 0x8000], // underflows to negative zero
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: to even
    [1 + 2 ** -11 + 2 ** -30, 0x3c01], // just above the tie
    [2047.5 / 1024, 0x4000], // significand rounds up into the next exponent
    [0.1, 0x2e66],
  ];
  for (const [value, bits] of cases) {
    assert.equal(
      float32ToFloat16Bits(value),
      bits,
      `${value} -> 0x${float32ToFloat16Bits(value).toString(16)}, expected 0x${bits.toString(16)}`,
    );
  }
  const nan = float32ToFloat16Bits(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.ok(Number.isNaN(float16BitsToFloat32(nan)));
  assert.equal(float16BitsToFloat32(0x7bff), 65504);
  assert.equal(float16BitsToFloat32(0x0001), 2 ** -24);
  assert.equal(float16BitsToFloat32(0xfc00), -Infinity);
  assert.ok(Object.is(float16BitsToFloat32(0x8000), -0));
});

test("every fp16 value decodes and re-encodes to itself, by the scalar and the table decoder", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const decoded = fromFloat16Array(all);
  const reencoded = toFloat16Array(decoded);
  for (let h = 0; h < 65536; h++) {
    const value = float16BitsToFloat32(h);
    if (Number.isNaN(value)) {
      assert.ok(Number.isNaN(decoded[h]!));
      assert.ok(Number.isNaN(float16BitsToFloat32(reencoded[h]!)));
      continue;
    }
    assert.ok(Object.is(decoded[h], value), `0x${h.toString(16)}`);
    assert.equal(float32ToFloat16Bits(value), h, `scalar 0x${h.toString(16)}`);
    assert.equal(reencoded[h], h, `array 0x${h.toString(16)}`);
  }
});

test("the array encoder agrees with the scalar encoder on random fp32 bit patterns", () => {
  const next = random(7);
  const bits = new Uint32Array(200_000);
  for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(next() * 2 ** 32);
  // Concentrate half of them where fp16 is interesting: exponents around its normal and subnormal range.
  for (let i = 0; i < bits.length; i += 2) bits[i] = (bits[i]! & 0x807fffff) | ((95 + Math.floor(next() * 50)) << 23);
  const values = new Float32Array(bits.buffer);
  const encoded = toFloat16Array(values);
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (Number.isNaN(value)) continue;
    assert.equal(encoded[i], float32ToFloat16Bits(value), `${value} (0x${bits[i]!.toString(16)})`);
  }
});

test("bfloat16 decodes as the top half of an fp32", () => {
  assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
  assert.equal(bfloat16BitsToFloat32(0xc000), -2);
  assert.equal(bfloat16BitsToFloat32(0x7f80), Infinity);
  assert.deepEqual([...fromBfloat16Array(new Uint16Array([0x3f80, 0xbfc0, 0x0000]))], [1, -1.5, 0]);
});

test("F16 and F32 tensors round-trip through a file, with metadata, in order, streamed or whole", () => {
  const path = join(dir, "roundtrip.safetensors");
  const f32 = new Float32Array([1.5, -2.25, 3e-3, 1e10, -0, 7]);
  const f16Bits = toFloat16Array(new Float32Array([0.5, -1, 65504, 2 ** -24]));
  const fromFp32 = new Float32Array([0.1, 0.2, 0.3]);
  const streamed = new Float32Array(10).map((_, i) => i / 4);
  const bytes = writeSafetensors(
    path,
    [
      { name: "b.f32", dtype: "F32", shape: [2, 3], data: f32 },
      { name: "a.f16", dtype: "F16", shape: [4], data: f16Bits },
      { name: "rounded", dtype: "F16", shape: [3, 1], data: fromFp32 },
      { name: "empty", dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
      {
        name: "streamed",
        dtype: "F16",
        shape: [2, 5],
        data: function* () {
          for (let i = 0; i < 10; i += 3) yield streamed.subarray(i, i + 3);
        },
      },
    ],
    { format: "pt", note: "héllo" },
  );

  const raw = readFileSync(path);
  assert.equal(bytes, raw.length);
  const headerBytes = Number(raw.readBigUInt64LE(0));
  assert.equal(headerBytes % 8, 0, "the header is padded to 8 bytes");
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes("tmp")),
    [],
    "no temporary file is left",
  );

  const file = openSafetensors(path);
  try {
    assert.deepEqual(file.names(), ["b.f32", "a.f16", "rounded", "empty", "streamed"]);
    assert.deepEqual(file.metadata(), { format: "pt", note: "héllo" });
    assert.deepEqual(file.info("b.f32"), { dtype: "F32", shape: [2, 3], byteLength: 24 });
    assert.deepEqual(file.info("a.f16"), { dtype: "F16", shape: [4], byteLength: 8 });
    assert.deepEqual([...file.readFloat32("b.f32")], [...f32]);
    assert.deepEqual([...file.readFloat32("a.f16")], [0.5, -1, 65504, 2 ** -24]);
    assert.deepEqual([...file.readFloat32("rounded")], [...fromFloat16Array(toFloat16Array(fromFp32))]);
    assert.equal(file.readFloat32("empty").length, 0);
    assert.deepEqual([...file.readFloat32("streamed")], [...streamed]);
    assert.deepEqual(new Uint16Array(file.readRaw("a.f16").slice().buffer), f16Bits);
    const into = new Float32Array(8);
    assert.equal(file.readFloat32("a.f16", into), into);
    assert.throws(() => file.info("nope"), /tensor nope: not in this file/);
  } finally {
    file.close();
  }
  assert.equal(safetensorsLayout([{ name: "x", dtype: "F16", shape: [3] }]).fileBytes, 8 + 56 + 6);
});

test("a failed write leaves no file and keeps the old one", () => {
  const path = join(dir, "atomic.safetensors");
  writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]);
  const before = readFileSync(path);
  const failing = function* (): Generator<Float32Array> {
    yield new Float32Array(1);
    throw new Error("generator failed");
  };
  assert.throws(
    () => writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [2], data: failing }]),
    /generator failed/,
  );
  assert.throws(
    () => writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [3], data: new Float32Array(2) }]),
    /needs 3 values, its data has 2/,
  );
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes("tmp")),
    [],
  );
  assert.throws(
    () =>
      writeSafetensors(join(dir, "no-such-dir", "x.safetensors"), [
        { name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) },
      ]),
    (e: unknown) => e instanceof InputError && /cannot write/.test(e.message),
  );
});

/** A file with the given header (an object or raw text) and `dataBytes` zero bytes of data. */
function rawFile(name: string, header: unknown, dataBytes: number, lengthField?: bigint): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(lengthField ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([length, json, Buffer.alloc(dataBytes)]));
  return path;
}

function assertOpenFails(path: string, pattern: RegExp): void {
  assert.throws(
    () => openSafetensors(path),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
      assert.match(e.message, pattern);
      assert.ok(e.message.startsWith(path), e.message);
      return true;
    },
  );
}

test("bad files get clear errors: truncated, not safetensors, bad entries", () => {
  const good = join(dir, "good.safetensors");
  writeSafetensors(good, [
    { name: "w", dtype: "F16", shape: [100], data: new Uint16Array(100) },
    { name: "b", dtype: "F32", shape: [10], data: new Float32Array(10) },
  ]);
  const truncated = join(dir, "truncated.safetensors");
  writeFileSync(truncated, readFileSync(good));
  const fullSize = readFileSync(good).length;
  truncateSync(truncated, fullSize - 7);
  assertOpenFails(
    truncated,
    /truncated: header says 240 bytes of data but the file has 233 \(tensor b ends at byte 240\)/,
  );

  truncateSync(truncated, 20);
  assertOpenFails(truncated, /truncated: the header is \d+ bytes but the file ends 12 bytes into it/);

  const zip = join(dir, "archive.zip");
  writeFileSync(zip, Buffer.concat([Buffer.from("PK\x03\x04\x14\x00\x00\x00"), Buffer.alloc(100)]));
  assertOpenFails(zip, /not a safetensors file: header length \d+ is larger than the file \(108 bytes\)/);
  const tiny = join(dir, "tiny.safetensors");
  writeFileSync(tiny, "abc");
  assertOpenFails(tiny, /not a safetensors file: 3 bytes, too short for the 8-byte header length/);
  assertOpenFails(
    rawFile("huge-length.safetensors", {}, 0, 8589934592n),
    /header length 8589934592 is larger than the file/,
  );
  assertOpenFails(
    rawFile("not-json.safetensors", "this is not json", 0),
    /not a safetensors file: the header is not JSON/,
  );
  assertOpenFails(rawFile("array.safetensors", [1, 2], 0), /the header is an array, expected a JSON object/);
  assertOpenFails(join(dir, "missing.safetensors"), /no such file/);

  const entry = (dtype: unknown, shape: unknown, offsets: unknown): unknown => ({
    t: { dtype, shape, data_offsets: offsets },
  });
  assertOpenFails(
    rawFile("dtype.safetensors", entry("Q7", [2], [0, 2]), 2),
    /tensor t: unknown dtype "Q7"; expected one of .*F16/,
  );
  assertOpenFails(
    rawFile("shape.safetensors", entry("F16", [2, -1], [0, 4]), 4),
    /tensor t: shape must be a list of non-negative integers, got \[2,-1\]/,
  );
  assertOpenFails(
    rawFile("offsets.safetensors", entry("F16", [2], [0]), 4),
    /tensor t: data_offsets must be two non-negative integers/,
  );
  assertOpenFails(
    rawFile("backwards.safetensors", entry("F16", [2], [4, 0]), 4),
    /tensor t: data_offsets \[4, 0\] end before they begin/,
  );
  assertOpenFails(
    rawFile("size.safetensors", entry("F32", [2, 3], [0, 12]), 12),
    /tensor t: data_offsets \[0, 12\] span 12 bytes, but F32 \[2, 3\] needs 24/,
  );
  assertOpenFails(
    rawFile("outside.safetensors", entry("F16", [2], [1000, 1004]), 8),
    /truncated: header says 1004 bytes of data but the file has 8/,
  );
  assertOpenFails(
    rawFile(
      "overlap.safetensors",
      {
        a: { dtype: "F16", shape: [4], data_offsets: [0, 8] },
        b: { dtype: "F16", shape: [4], data_offsets: [6, 14] },
      },
      14,
    ),
    /tensor b: data_offsets overlap tensor a/,
  );
  assertOpenFails(
    rawFile("metadata.safetensors", { __metadata__: { n: 3 } }, 0),
    /__metadata__\.n: expected a string, got the number 3/,
  );

  const ints = openSafetensors(rawFile("ints.safetensors", entry("I64", [2], [0, 16]), 16));
  try {
    assert.throws(() => ints.readFloat32("t"), /tensor t: dtype I64 is not a floating-point type/);
    assert.equal(ints.readRaw("t").length, 16);
  } finally {
    ints.close();
  }
});
