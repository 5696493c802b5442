import assert from "node:assert/strict";
import { test } from "node:test";
import { effective, parseHardwareProfile } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { VariableSpace } from "../../planner/lp/affine.js";
import { costConstants } from "../../planner/spillway/cost-constants.js";
import { hardwareRates, matmulSecondsPerWeight } from "../../planner/spillway/hardware-rates.js";
import { StepCostModel } from "../../planner/spillway/step-costs.js";
import {
  defaultCapacities,
  measureCpuBackend,
  profileFromSamples,
  samplesFromCsv,
  samplesToCsv,
} from "../../runtime/profile-cpu.js";

test("spillway profile --backend cpu --quick: samples survive the CSV round trip and make a valid, measured profile", () => {
  const progress: number[] = [];
  const samples = measureCpuBackend({
    quick: true,
    gpuBytes: 2 ** 28,
    onProgress: (done) => progress.push(done),
    hostRates: { values: 1 << 16, trials: 2 },
  });
  assert.ok(progress.length > 10 && progress[progress.length - 1] === progress.length, "progress reaches the end");
  for (const kind of [
    "h2d",
    "d2h",
    "diskRead",
    "diskWrite",
    "gemm",
    "matmul",
    "quantizedMatmul",
    "dequantize",
    "attention",
    "launch",
    "memcpy",
    "date",
    "streamCopy",
    "streamTriad",
    "fp16ToFp32",
    "firstTouch",
    "singleThreadCopy",
  ])
    assert.ok(
      samples.some((s) => s.measurement === kind),
      kind,
    );
  const back = samplesFromCsv(samplesToCsv(samples), "samples.csv");
  assert.deepEqual(back, samples);
  const profile = parseHardwareProfile(
    JSON.parse(JSON.stringify(profileFromSamples(back, defaultCapacities(2 ** 28)))),
    "profile.json",
  );
  assert.equal(profile.capacityBytes.gpu.value, 2 ** 28);
  assert.ok(profile.hostToDevice.pinnedBytesPerSecond.measured, "link rates are measured values");
  // Measured rates are positive numbers; how fast they are depends on the machine and its load, and is
  // printed by npm run bench, not asserted.
  const measured = (x: number) => Number.isFinite(x) && x > 0;
  assert.ok(measured(effective(profile.gpu.fp16MatmulFlopsPerSecond)));
  assert.ok(measured(effective(profile.disk.readBytesPerSecond)));
  assert.ok(effective(profile.hostToDevice.latencySeconds) >= 0);
  assert.equal(profile.hostToDevice.curve?.samples.length, samples.filter((s) => s.measurement === "h2d").length);
  // The GEMM curve: one measured point per row count.
  const curve = profile.gpu.matmulCurve!.samples;
  assert.deepEqual(
    curve.map((c) => c.rows),
    [1, 2, 4, 8, 16, 32, 64, 128, 256],
  );
  assert.ok(curve.every((c) => measured(c.secondsPerWeight)));
  // The MoE runtime's dequantising GEMM, one curve per stored width below 16 bits.
  const quantized = profile.gpu.quantizedMatmulCurves!;
  assert.deepEqual(Object.keys(quantized).sort(), ["2", "3", "4", "8"]);
  for (const bits of ["8", "4", "3", "2"] as const) {
    assert.deepEqual(
      quantized[bits]!.samples.map((c) => c.rows),
      [1, 4, 16, 64],
    );
    assert.ok(quantized[bits]!.samples.every((c) => measured(c.secondsPerWeight)));
    assert.match(quantized[bits]!.source, new RegExp(`${bits}-bit group-wise weights`));
  }
  assert.ok(hardwareRates(profile).quantizedMatmulCurves?.[2]?.length === 4, "the planner reads them by width");
  // The host computes CPU experts with the same kernels: the same curves on the cpu side.
  assert.deepEqual(profile.cpu.matmulCurve?.samples, curve);
  assert.deepEqual(profile.cpu.quantizedMatmulCurves?.["4"]?.samples, quantized["4"]!.samples);
  assert.ok(hardwareRates(profile).cpuQuantizedMatmulCurves?.[3]?.length === 4);
  assert.equal(profile.gpu.workingBytesPerValue?.value, 4, "the CPU backend computes in fp32");
  assert.equal(profile.gpu.sharesHostCores?.value, true, "the CPU backend's device is the host's cores");
  assert.equal(hardwareRates(profile).deviceSharesHostCores, true);
  assert.ok(measured(effective(profile.gpu.dequantizeValuesPerSecond!)), "4-bit dequantisation is measured");
  // The host's kernel-class rates, measured and sourced to this command and day.
  for (const q of [
    profile.cpu.streamBytesPerSecond,
    profile.cpu.fp16ToFp32ValuesPerSecond,
    profile.cpu.firstTouchBytesPerSecond,
    profile.cpu.singleThreadCopyBytesPerSecond,
  ]) {
    assert.ok(q?.measured && measured(q.measured.value));
    assert.match(q.measured.source, /spillway profile --backend cpu on \d{4}-\d{2}-\d{2}: /);
  }
});

test("GEMM time from a measured curve: log-interpolated, never below streaming the weights, proportional to rows beyond it", () => {
  const curve = [
    { rows: 1, secondsPerWeight: 1e-9 },
    { rows: 16, secondsPerWeight: 3e-9 },
    { rows: 256, secondsPerWeight: 40e-9 },
  ];
  assert.equal(matmulSecondsPerWeight(curve, 1), 1e-9);
  assert.equal(matmulSecondsPerWeight(curve, 16), 3e-9);
  assert.ok(Math.abs(matmulSecondsPerWeight(curve, 4) - 2e-9) < 1e-21, "halfway in log(rows)");
  assert.equal(matmulSecondsPerWeight(curve, 512), 80e-9);
  // The cost model uses it in place of the roofline.
  const base = parseHardwareProfile(JSON.parse(JSON.stringify(loadShippedProfile("t4"))), "t4");
  const withCurve = { ...base, gpu: { ...base.gpu, matmulCurve: { samples: curve, source: "test" } } };
  const space = new VariableSpace([]);
  const model = findCatalogueModel("opt-1.3b")!;
  const settings = {
    gbs: 8,
    nb: 1,
    activationTier: "gpu" as const,
    cpuAttention: false,
    compressCache: false,
    compressWeight: false,
    pinWeight: true,
    overlap: true,
    schedule: "spillway" as const,
  };
  const costs = (p: typeof base) =>
    new StepCostModel(
      model,
      hardwareRates(p),
      { promptLen: 64, genLen: 8 },
      settings,
      costConstants(model, false),
      space,
    );
  const h = model.hiddenSize;
  assert.equal(
    costs(withCurve).gemmSeconds(32, h, 4 * h),
    4 * h * h * matmulSecondsPerWeight(curve, 32) + hardwareRates(withCurve).kernelLaunchSeconds,
  );
  assert.notEqual(costs(base).gemmSeconds(32, h, 4 * h), costs(withCurve).gemmSeconds(32, h, 4 * h));
});

test("a profile's GEMM curve and working precision are validated", () => {
  const base = JSON.parse(JSON.stringify(loadShippedProfile("t4")));
  const bad = (gpu: object) => () => parseHardwareProfile({ ...base, gpu: { ...base.gpu, ...gpu } }, "p.json");
  assert.throws(
    bad({
      matmulCurve: {
        samples: [
          { rows: 4, secondsPerWeight: 1e-9 },
          { rows: 2, secondsPerWeight: 1e-9 },
        ],
        source: "x",
      },
    }),
    /p\.json: gpu\.matmulCurve\.samples.*1.*increasing rows/,
  );
  assert.throws(bad({ matmulCurve: { samples: [{ rows: 1.5, secondsPerWeight: 1e-9 }], source: "x" } }), /rows/);
  assert.throws(bad({ matmulCurve: { samples: [], source: "x" } }), /non-empty/);
  // A calibrated curve sits beside the measured one, at the same rows; the cost model reads it.
  const measured = [
    { rows: 1, secondsPerWeight: 1e-9 },
    { rows: 16, secondsPerWeight: 3e-9 },
  ];
  const fitted = { samples: measured.map((s) => ({ ...s, secondsPerWeight: 2 * s.secondsPerWeight })), source: "f" };
  const calibrated = bad({ matmulCurve: { samples: measured, source: "x", fitted } })();
  assert.deepEqual(hardwareRates(calibrated).matmulCurve, fitted.samples);
  assert.throws(
    bad({ matmulCurve: { samples: measured, source: "x", fitted: { ...fitted, samples: fitted.samples.slice(1) } } }),
    /p\.json: gpu\.matmulCurve\.fitted\.samples: expected the measured curve's rows \(1, 16\), got 16/,
  );
  assert.throws(bad({ matmulCurve: { samples: measured, source: "x", extra: 1 } }), /extra/);
  const q = { samples: [{ rows: 1, secondsPerWeight: 1e-9 }], source: "x" };
  assert.equal(
    parseHardwareProfile({ ...base, gpu: { ...base.gpu, quantizedMatmulCurves: { "4": q } } }, "p.json").gpu
      .quantizedMatmulCurves?.["4"]?.samples[0]?.rows,
    1,
  );
  assert.throws(bad({ quantizedMatmulCurves: { "5": q } }), /p\.json: gpu\.quantizedMatmulCurves.*5/);
  assert.throws(
    bad({ quantizedMatmulCurves: { "2": { samples: [{ rows: 0, secondsPerWeight: 1e-9 }], source: "x" } } }),
    /gpu\.quantizedMatmulCurves\.2\.samples/,
  );
  assert.throws(bad({ workingBytesPerValue: { value: 3, source: "x" } }), /expected 2 \(fp16\) or 4 \(fp32\)/);
  const shares = { value: true, source: "the CPU backend" };
  assert.deepEqual(
    parseHardwareProfile({ ...base, gpu: { ...base.gpu, sharesHostCores: shares } }, "p.json").gpu.sharesHostCores,
    shares,
  );
  assert.equal(
    hardwareRates(parseHardwareProfile(base, "p.json")).deviceSharesHostCores,
    false,
    "absent: a device apart",
  );
  assert.throws(
    bad({ sharesHostCores: { value: "yes", source: "x" } }),
    /p\.json: gpu\.sharesHostCores\.value: expected true or false/,
  );
  assert.throws(bad({ sharesHostCores: { value: true } }), /gpu\.sharesHostCores\.source/);
});

test("a malformed samples CSV is refused with the line and column", () => {
  assert.throws(
    () => samplesFromCsv("measurement,size,shape,seconds\nh2d,4096,,1e-6\nd2h,-5,,1e-6\n", "s.csv"),
    (e: unknown) =>
      e instanceof InputError && /s\.csv: line 3, column size: expected a positive number, got "-5"/.test(e.message),
  );
  assert.throws(
    () => samplesFromCsv("measurement,size\nh2d,4096\n", "s.csv"),
    (e: unknown) =>
      e instanceof InputError &&
      /line 1, header: missing column "shape"; expected the header measurement,size,shape,seconds/.test(e.message),
  );
  assert.throws(
    () => samplesFromCsv('measurement,size,shape,seconds\n"h2d,4096,,1\n', "s.csv"),
    (e: unknown) => e instanceof InputError && /not valid CSV/.test(e.message),
  );
});
