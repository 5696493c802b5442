import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseHardwareProfile, withCapacities } from "../../core/hardware-profile.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { cudaProfileFromSamples, measureCudaBackend } from "../../runtime/cuda/profile-cuda.js";
import { samplesToCsv } from "../../runtime/profile-cpu.js";
import { HOST_SAMPLES as HOST } from "../cuda-profile-fixtures.js";
import { CLI } from "../helpers.js";
import { hostCudaAddon } from "../host-cuda-addon.js";

test("spillway profile --backend cuda: samples from a device (emulated here) make a valid profile the planner uses, and survive --from-samples", async () => {
  const native = createEmulatedNative({ deviceBytes: 64 << 20 });
  const samples = [
    { measurement: "device", size: 1, shape: "Emulated CUDA device", seconds: 1 },
    ...measureCudaBackend(native, { quick: true, tiny: true, hostSamples: HOST }),
  ];
  for (const m of [
    "h2d",
    "d2h",
    "h2dPageable",
    "d2hPageable",
    "deviceCopy",
    "matmul",
    "gemm",
    "launch",
    "dequantize",
    "gpuAttention",
    "deviceElementwise",
    "deviceUnpack",
  ]) {
    assert.ok(
      samples.some((s) => s.measurement === m && s.seconds > 0),
      `a ${m} sample`,
    );
  }
  const capacity = { gpu: 8 << 30, cpu: 64 << 30, disk: 256 << 30 };
  const profile = parseHardwareProfile(
    JSON.parse(JSON.stringify(cudaProfileFromSamples(samples, capacity, "Emulated CUDA device"))),
    "profile",
  );
  assert.equal(profile.name, "cuda-emulated-cuda-device");
  const largestH2d = samples.filter((s) => s.measurement === "h2d").sort((a, b) => b.size - a.size)[0]!;
  assert.equal(profile.hostToDevice.pinnedBytesPerSecond.measured!.value, largestH2d.size / largestH2d.seconds);
  assert.ok(profile.hostToDevice.pageableBytesPerSecond!.measured!.value > 0);
  assert.ok(profile.gpu.matmulCurve!.samples.length === 4);
  assert.equal(profile.disk.readBytesPerSecond.measured!.value, (16 << 20) / 8e-3);
  assert.match(
    profile.gpu.fp16MatmulFlopsPerSecond.measured!.source,
    /spillway profile --backend cuda on \d{4}-\d{2}-\d{2}: /,
  );
  // The GPU kernel-class rates: the add kernel (12 bytes per element), the 4-bit unpacking kernel, the GEMM curve.
  const add = samples.find((s) => s.measurement === "deviceElementwise")!;
  assert.equal(profile.gpu.elementwiseBytesPerSecond?.measured?.value, add.size / add.seconds);
  assert.ok(profile.gpu.stridedBytesPerSecond!.measured!.value > 0);
  const oneRow = samples.filter((s) => s.measurement === "matmul" && s.shape.startsWith("1x"));
  assert.deepEqual(profile.gpu.gemmCurve!.samples[0], {
    rows: 1,
    flopsPerSecond: oneRow.reduce((a, s) => a + s.size, 0) / oneRow.reduce((a, s) => a + s.seconds, 0),
  });
  // The planner takes it.
  const p = await plan({
    model: findCatalogueModel("opt-1.3b")!,
    hardware: withCapacities(profile, { gpu: 2 ** 30 }),
    workload: { promptLen: 64, genLen: 8 },
  });
  assert.equal(p.predicted.feasible, true);
  // The samples CSV rebuilds the same profile; it is recognised as a CUDA one by its rows.
  const dir = mkdtempSync(join(tmpdir(), "spillway-cuda-profile-"));
  try {
    writeFileSync(join(dir, "s.csv"), samplesToCsv(samples));
    const out = execFileSync(
      process.execPath,
      [CLI, "profile", "--from-samples", join(dir, "s.csv"), "--gpu-mem", "8", "--out", join(dir, "p.json"), "--json"],
      { encoding: "utf8" },
    );
    assert.equal(JSON.parse(out).name, "cuda-emulated-cuda-device");
    const rebuilt = JSON.parse(readFileSync(join(dir, "p.json"), "utf8"));
    assert.deepEqual(rebuilt.gpu.matmulCurve, JSON.parse(JSON.stringify(profile.gpu.matmulCurve)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const host = hostCudaAddon();

test(
  "the CUDA profiler's measurements run through the addon's own binding and kernels (built for the CPU): every kind sampled, every time positive, nothing left allocated",
  "reason" in host ? { skip: `no host build of the CUDA sources here: ${host.reason}` } : {},
  () => {
    if (!("native" in host)) return;
    const samples = measureCudaBackend(host.native, { quick: true, tiny: true, hostSamples: HOST });
    for (const m of [
      "h2d",
      "d2h",
      "h2dPageable",
      "d2hPageable",
      "deviceCopy",
      "matmul",
      "gemm",
      "launch",
      "dequantize",
      "gpuAttention",
      "deviceElementwise",
      "deviceUnpack",
    ]) {
      assert.ok(
        samples.some((s) => s.measurement === m),
        `a ${m} sample`,
      );
    }
    for (const s of samples)
      assert.ok(s.seconds > 0 && Number.isFinite(s.seconds), `${s.measurement} ${s.size} ${s.shape}: ${s.seconds} s`);
    const memory = host.native.memGetInfo();
    assert.equal(memory.freeBytes, memory.totalBytes, "device memory left allocated");
  },
);

test("spillway profile --backend cuda without the addon built is a usage problem (exit 2, one line saying how to build it), writing nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-cuda-profile-"));
  try {
    const r = spawnSync(process.execPath, [CLI, "profile", "--backend", "cuda", "--out", join(dir, "p.json")], {
      encoding: "utf8",
      env: { ...process.env, SPILLWAY_CUDA_ADDON: join(dir, "missing.node") },
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^spillway: --backend cuda: the CUDA addon is not built .*run `npm run build:cuda`.*\n$/);
    assert.equal(r.stderr.split("\n").length, 2, r.stderr);
    assert.throws(() => readFileSync(join(dir, "p.json")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("spillway devices --json reports a missing addon or GPU as a reason, never a crash (exit 0)", () => {
  const missing = spawnSync(process.execPath, [CLI, "devices", "--json"], {
    encoding: "utf8",
    env: { ...process.env, SPILLWAY_CUDA_ADDON: join(tmpdir(), "no-such-addon.node") },
  });
  assert.equal(missing.status, 0, missing.stderr);
  const report = JSON.parse(missing.stdout);
  assert.equal(report.cuda.available, false);
  assert.match(report.cuda.reason, /not built .*npm run build:cuda/);
  assert.equal(report.cpu.available, true);
  // With whatever this machine has (the built addon, or none): available with devices, or a reason.
  const here = JSON.parse(execFileSync(process.execPath, [CLI, "devices", "--json"], { encoding: "utf8" }));
  if (here.cuda.available) {
    assert.ok(here.cuda.devices.length > 0);
    for (const d of here.cuda.devices) assert.match(d.computeCapability, /^\d+\.\d+$/);
  } else assert.ok(typeof here.cuda.reason === "string" && here.cuda.reason.length > 0 && !("devices" in here.cuda));
  const text = execFileSync(process.execPath, [CLI, "devices"], {
    encoding: "utf8",
    env: { ...process.env, SPILLWAY_CUDA_ADDON: join(tmpdir(), "no-such-addon.node") },
  });
  assert.match(text, /^CUDA: not available — the CUDA addon is not built/m);
});
