import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { llamaCppEngineMoeAdvice, ONE_SEQUENCE } from "../../engines/llama-cpp/moe-advice.js";
import { llamaCppEngine } from "../../engines/llama-cpp.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";

const MIXTRAL = findCatalogueModel("mixtral-8x7b")!;
const WORKLOAD = { promptLen: 512, genLen: 32 };

function gpuPeak(hardware: string, nCpuMoe: number) {
  const p = llamaCppEngine.predict({
    model: MIXTRAL,
    hardware: resolveHardware(hardware),
    workload: WORKLOAD,
    policy: ONE_SEQUENCE,
    knobs: { ggufType: "Q4_K_M", nGpuLayers: 33, nCpuMoe },
  });
  return { peak: p.peakBytes.gpu, capacity: p.capacityBytes.gpu, decode: p.decodeSeconds };
}

test("llama.cpp MoE advice: the fewest --n-cpu-moe whose Q4_K_M file fits the GPU by the engine's count, at the engine's decode speed", () => {
  for (const hardware of ["t4", "rtx3060", "rtx3090"]) {
    const advice = llamaCppEngineMoeAdvice(MIXTRAL, resolveHardware(hardware), WORKLOAD);
    const n = advice.nCpuMoe!;
    assert.equal(advice.nGpuLayers, 33);
    assert.equal(advice.ggufType, "Q4_K_M");
    const at = gpuPeak(hardware, n);
    assert.ok(at.peak <= at.capacity, hardware);
    assert.equal(advice.gpuPeakBytes, at.peak);
    if (n > 0) {
      const fewer = gpuPeak(hardware, n - 1);
      assert.ok(fewer.peak > fewer.capacity, `${hardware}: --n-cpu-moe ${n - 1} fits too`);
    }
    assert.ok(Math.abs(advice.decodeTokensPerSecond! - (WORKLOAD.genLen - 1) / at.decode) < 1e-9);
  }
});

test("Mixtral on the T4 profile: the advice moves from the MoE step model's --n-cpu-moe 14 (which the engine counts 1.4 GiB over) to 16", () => {
  const t4 = resolveHardware("t4");
  const over = gpuPeak("t4", 14);
  assert.ok(over.peak > over.capacity + 2 ** 30, `${over.peak} vs ${over.capacity}`);
  const advice = llamaCppEngineMoeAdvice(MIXTRAL, t4, WORKLOAD);
  assert.equal(advice.nCpuMoe, 16);
  const p = planSync({ model: MIXTRAL, hardware: t4, workload: WORKLOAD, experts: { batchSize: 1 } });
  assert.deepEqual(p.llamaCpp, advice);
});

test("a GPU too small for attention, routers and embeddings gets no --n-cpu-moe and says why", () => {
  const small = resolveHardware("t4");
  const tiny = { ...small, capacityBytes: { ...small.capacityBytes, gpu: { value: 2 ** 30, source: "test: 1 GiB" } } };
  const advice = llamaCppEngineMoeAdvice(MIXTRAL, tiny, WORKLOAD);
  assert.equal(advice.nCpuMoe, undefined);
  assert.match(advice.reason!, /do not fit on the GPU even with every routed expert in host memory/);
});

test("the advice's bisection rests on this: more layers' experts in host memory never need more GPU memory", () => {
  let previous = Number.POSITIVE_INFINITY;
  for (let n = 0; n <= MIXTRAL.numLayers; n++) {
    const { peak } = gpuPeak("t4", n);
    assert.ok(peak <= previous, `--n-cpu-moe ${n}: GPU peak ${peak} above ${previous} at ${n - 1}`);
    previous = peak;
  }
});
