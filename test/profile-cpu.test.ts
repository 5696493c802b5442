import assert from "node:assert/strict";
import { test } from "node:test";
import { effective, parseHardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples, samplesFromCsv, samplesToCsv } from "../runtime/profile-cpu.js";

test("spillway profile --backend cpu --quick: samples survive the CSV round trip and make a valid, measured profile", () => {
  const progress: number[] = [];
  const samples = measureCpuBackend({ quick: true, gpuBytes: 2 ** 28, onProgress: (done) => progress.push(done) });
  assert.ok(progress.length > 10 && progress[progress.length - 1] === progress.length, "progress reaches the end");
  for (const kind of ["h2d", "d2h", "diskRead", "diskWrite", "gemm", "attention", "launch", "memcpy"]) assert.ok(samples.some((s) => s.measurement === kind), kind);
  const back = samplesFromCsv(samplesToCsv(samples), "samples.csv");
  assert.deepEqual(back, samples);
  const profile = parseHardwareProfile(JSON.parse(JSON.stringify(profileFromSamples(back, defaultCapacities(2 ** 28)))), "profile.json");
  assert.equal(profile.capacityBytes.gpu.value, 2 ** 28);
  assert.ok(profile.hostToDevice.pinnedBytesPerSecond.measured, "link rates are measured values");
  assert.ok(effective(profile.gpu.fp16MatmulFlopsPerSecond) > 1e8);
  assert.ok(effective(profile.disk.readBytesPerSecond) > 1e6);
  assert.ok(effective(profile.hostToDevice.latencySeconds) >= 0);
  assert.equal(profile.hostToDevice.curve?.samples.length, samples.filter((s) => s.measurement === "h2d").length);
});

test("a malformed samples CSV is refused with the line and column", () => {
  assert.throws(() => samplesFromCsv("measurement,size,shape,seconds\nh2d,4096,,1e-6\nd2h,-5,,1e-6\n", "s.csv"), (e: unknown) => e instanceof InputError && /s\.csv: line 3, column size: expected a positive number, got "-5"/.test(e.message));
  assert.throws(() => samplesFromCsv("measurement,size\nh2d,4096\n", "s.csv"), (e: unknown) => e instanceof InputError && /line 2: missing column "shape"/.test(e.message));
  assert.throws(() => samplesFromCsv('measurement,size,shape,seconds\n"h2d,4096,,1\n', "s.csv"), (e: unknown) => e instanceof InputError && /not valid CSV/.test(e.message));
});
