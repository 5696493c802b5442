import assert from "node:assert/strict";
import { test } from "node:test";
import type { HardwareProfile } from "../../core/hardware-profile.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { cudaProfileFromSamples, measureCudaBackend } from "../../runtime/cuda/profile-cuda.js";
import { HOST_SAMPLES as HOST } from "../cuda-profile-fixtures.js";

test("a CUDA profile's attention rate is 4 x P^2 x W FLOPs over its PxPxW prompt sample's time (the sample's size counts the causal half)", () => {
  const samples = measureCudaBackend(createEmulatedNative({ deviceBytes: 64 << 20 }), {
    quick: true,
    tiny: true,
    hostSamples: HOST,
  });
  const decodeOnly = samples.filter((e) => !(e.measurement === "gpuAttention" && /^(\d+)x\1x/.test(e.shape)));
  assert.equal(decodeOnly.length, samples.length - 1, "one prompt sample");
  const prompt = {
    measurement: "gpuAttention",
    size: (4 * 512 * 512 * 4096) / 2,
    shape: "512x512x4096",
    seconds: 8e-4,
  };
  const capacity = { gpu: 8 << 30, cpu: 64 << 30, disk: 256 << 30 };
  const measured = cudaProfileFromSamples([...decodeOnly, prompt], capacity, "GPU");
  assert.equal(measured.gpu.attentionFlopsPerSecond?.measured?.value, (4 * 512 * 512 * 4096) / 8e-4);
  assert.match(measured.gpu.kernelLaunchSeconds.measured!.source, /64 launches .* back to back/);
  // No prompt sample (decode ones only): no rate, and the planner prices attention at the GEMM rate.
  assert.equal(cudaProfileFromSamples(decodeOnly, capacity, "GPU").gpu.attentionFlopsPerSecond, undefined);
});

test("the planner prices prefill attention at the profile's measured attention rate where it has one, and decode is untouched", async () => {
  const t4 = resolveHardware("t4");
  const slow: HardwareProfile = {
    ...t4,
    gpu: { ...t4.gpu, attentionFlopsPerSecond: { measured: { value: 1e12, source: "test: a slow attention kernel" } } },
  };
  assert.equal(hardwareRates(slow).gpuAttentionFlopsPerSecond, 1e12);
  assert.equal(hardwareRates(t4).gpuAttentionFlopsPerSecond, undefined);
  const request = {
    model: findCatalogueModel("opt-1.3b")!,
    workload: { promptLen: 512, genLen: 8 },
    fixed: {
      gbs: 8,
      nb: 1,
      percent: [100, 0, 100, 0, 100, 0] as [number, number, number, number, number, number],
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
    },
  };
  const fast = await plan({ ...request, hardware: t4 });
  const slowed = await plan({ ...request, hardware: slow });
  // All on the GPU: prefill is compute, and its attention takes 4 s^2 q FLOPs per sequence and layer at 1 TFLOP/s.
  const attentionAtSlowRate = (8 * 24 * 4 * 512 * 512 * 2048) / 1e12;
  assert.ok(slowed.predicted.prefillSeconds > fast.predicted.prefillSeconds + 0.5 * attentionAtSlowRate);
  assert.equal(slowed.predicted.decodeSeconds, fast.predicted.decodeSeconds);
});
