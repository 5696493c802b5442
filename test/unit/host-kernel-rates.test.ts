import assert from "node:assert/strict";
import { test } from "node:test";
import { parseHardwareProfile } from "../../core/hardware-profile.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import { firstTouchSeconds, measureHostKernelRates } from "../../runtime/host-kernel-rates.js";
import { COMMAND, runKernel, sliceOf, viewsOf } from "../../runtime/host-rate-kernels.js";
import {
  dateSample,
  hostKernelRatesFromSamples,
  measurementSource,
  type ProfileSample,
  profileFromSamples,
  samplesFromCsv,
  samplesToCsv,
} from "../../runtime/profile-cpu.js";

// Small arrays keep this fast; the rates are then cache rates, which is fine for checking the plumbing.
const SMALL = { values: 1 << 15, trials: 2, firstTouchBytes: 1 << 20 };

test("the host-rate kernels compute STREAM copy and triad and the fp16 decode on their slice only", () => {
  const n = 10;
  const buffer = (bytes: number) => new SharedArrayBuffer(bytes);
  const shared = {
    control: buffer(16),
    a: buffer(8 * n),
    b: buffer(8 * n),
    c: buffer(8 * n),
    half: buffer(2 * n),
    out: buffer(4 * n),
  };
  const v = viewsOf(shared);
  v.a.fill(1);
  v.b.fill(2);
  v.c.fill(0.5);
  v.half.fill(0x3c00); // 1.0 in fp16
  const [start, end] = sliceOf(n, 1, 2);
  assert.deepEqual([start, end], [5, 10]);
  runKernel(COMMAND.copy, v, start, end);
  assert.deepEqual([...v.c], [0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1]);
  runKernel(COMMAND.triad, v, 0, n);
  // a = b + 3c: 2 + 1.5 where c was left alone, 2 + 3 where the copy wrote c = a = 1.
  assert.deepEqual([...v.a], [3.5, 3.5, 3.5, 3.5, 3.5, 5, 5, 5, 5, 5]);
  runKernel(COMMAND.fp16ToFp32, v, 0, 3);
  assert.deepEqual([...v.out.subarray(0, 4)], [1, 1, 1, 0]);
  // Slices of any count cover every element once.
  for (const count of [1, 3, 7]) {
    const slices = Array.from({ length: count }, (_, i) => sliceOf(1000, i, count));
    assert.equal(slices[0]![0], 0);
    assert.equal(slices[count - 1]![1], 1000);
    for (let i = 1; i < count; i++) assert.equal(slices[i]![0], slices[i - 1]![1]);
  }
});

test("measureHostKernelRates: positive times for every kernel, STREAM's byte counts, on workers or on one thread", () => {
  for (const threads of [2, 1]) {
    const samples = measureHostKernelRates({ ...SMALL, threads });
    const by = new Map(samples.map((s) => [s.measurement, s]));
    assert.deepEqual([...by.keys()], ["streamCopy", "streamTriad", "fp16ToFp32", "firstTouch", "singleThreadCopy"]);
    assert.equal(by.get("streamCopy")!.size, 16 * SMALL.values);
    assert.equal(by.get("streamTriad")!.size, 24 * SMALL.values);
    assert.equal(by.get("fp16ToFp32")!.size, SMALL.values);
    assert.equal(by.get("firstTouch")!.size, SMALL.firstTouchBytes);
    assert.equal(by.get("singleThreadCopy")!.size, SMALL.firstTouchBytes);
    assert.equal(by.get("singleThreadCopy")!.shape, "1 thread");
    for (const s of samples) assert.ok(Number.isFinite(s.seconds) && s.seconds > 0, `${s.measurement}: ${s.seconds}`);
    assert.match(by.get("streamTriad")!.shape, new RegExp(`^${threads} threads? x ${SMALL.values} values per array$`));
  }
  assert.ok(firstTouchSeconds(1 << 20, 1) > 0);
  assert.throws(() => measureHostKernelRates({ ...SMALL, values: 0 }), /values must be a positive integer, got 0/);
  assert.throws(() => measureHostKernelRates({ ...SMALL, threads: 1.5 }), /threads must be a positive integer/);
});

test("measured host rates become cpu.streamBytesPerSecond, fp16ToFp32ValuesPerSecond and firstTouchBytesPerSecond, sourced to the command and the day", () => {
  const samples: ProfileSample[] = [
    { measurement: "date", size: 1, shape: "2025-06-01", seconds: 1 },
    { measurement: "streamCopy", size: 16e6, shape: "4 threads x 1000000 values per array", seconds: 1e-3 },
    { measurement: "streamTriad", size: 24e6, shape: "4 threads x 1000000 values per array", seconds: 2e-3 },
    { measurement: "fp16ToFp32", size: 1e6, shape: "4 threads x 1000000 values per array", seconds: 4e-4 },
    { measurement: "firstTouch", size: 64e6, shape: "1 thread", seconds: 0.02 },
    { measurement: "singleThreadCopy", size: 64e6, shape: "1 thread", seconds: 0.008 },
  ];
  const rates = hostKernelRatesFromSamples(samples, measurementSource("cpu", samples));
  // The better of copy (16 GB/s) and triad (12 GB/s).
  assert.equal(rates.streamBytesPerSecond?.measured?.value, 16e6 / 1e-3);
  assert.match(
    rates.streamBytesPerSecond!.measured!.source,
    /spillway profile --backend cpu on 2025-06-01: STREAM-like copy/,
  );
  assert.equal(rates.fp16ToFp32ValuesPerSecond?.measured?.value, 1e6 / 4e-4);
  assert.equal(rates.firstTouchBytesPerSecond?.measured?.value, 64e6 / 0.02);
  assert.match(rates.firstTouchBytesPerSecond!.measured!.source, /fresh 64000000-byte allocation/);
  assert.equal(rates.singleThreadCopyBytesPerSecond?.measured?.value, 64e6 / 0.008);
  assert.match(rates.singleThreadCopyBytesPerSecond!.measured!.source, /one thread copying 64000000 bytes/);
  // One thread is said so; no samples, no fields.
  const single = hostKernelRatesFromSamples(
    [{ measurement: "streamTriad", size: 24, shape: "1 thread x 1 values per array", seconds: 1e-9 }],
    measurementSource("cpu", []),
  );
  assert.match(single.streamBytesPerSecond!.measured!.source, /Single-threaded/);
  assert.doesNotMatch(single.streamBytesPerSecond!.measured!.source, / on \d{4}-/);
  assert.deepEqual(hostKernelRatesFromSamples([], measurementSource("cpu", [])), {});
  assert.match(dateSample().shape, /^\d{4}-\d{2}-\d{2}$/);
});

test("a CPU-backend profile from measured samples carries the host rates as measured kernel-class rates (CSV round trip included)", () => {
  const host = measureHostKernelRates({ ...SMALL, threads: 2 });
  const rest: ProfileSample[] = [
    dateSample(),
    { measurement: "h2d", size: 4096, shape: "", seconds: 1e-6 },
    { measurement: "h2d", size: 1 << 20, shape: "", seconds: 1e-4 },
    { measurement: "d2h", size: 4096, shape: "", seconds: 1e-6 },
    { measurement: "d2h", size: 1 << 20, shape: "", seconds: 1e-4 },
    { measurement: "diskRead", size: 4096, shape: "", seconds: 1e-5 },
    { measurement: "diskRead", size: 1 << 20, shape: "", seconds: 1e-3 },
    { measurement: "diskWrite", size: 4096, shape: "", seconds: 1e-5 },
    { measurement: "diskWrite", size: 1 << 20, shape: "", seconds: 2e-3 },
    { measurement: "gemm", size: 2 * 768 * 3072, shape: "1x768x3072", seconds: 1e-3 },
    { measurement: "attention", size: 4 * 128 * 768, shape: "1x128x768", seconds: 1e-4 },
    { measurement: "launch", size: 512, shape: "1x16x16", seconds: 1e-6 },
    { measurement: "memcpy", size: 1 << 20, shape: "", seconds: 1e-4 },
  ];
  const samples = samplesFromCsv(samplesToCsv([...rest, ...host]), "s.csv");
  const profile = parseHardwareProfile(
    JSON.parse(JSON.stringify(profileFromSamples(samples, { gpu: 1 << 30, cpu: 1 << 30, disk: 1 << 30 }))),
    "p.json",
  );
  const uses = resolveRates(profile).uses;
  for (const name of [
    "cpuStreamBytesPerSecond",
    "cpuFp16ToFp32ValuesPerSecond",
    "cpuFirstTouchBytesPerSecond",
  ] as const) {
    assert.equal(uses[name].kind, "measured", name);
    assert.ok(uses[name].value > 0 && Number.isFinite(uses[name].value), name);
    assert.match(uses[name].source, /by spillway profile --backend cpu on \d{4}-\d{2}-\d{2}: /);
  }
  // Not measured by the CPU backend: derived from the rates it did measure.
  assert.equal(uses.pageableRelayBytesPerSecond.kind, "derived");
});
