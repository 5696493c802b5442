import assert from "node:assert/strict";
import { test } from "node:test";
import type { Policy } from "../../core/policy.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";

test("exact evaluations sharing a layer-cost memo give, to the last bit, what each gives alone", () => {
  const model = findCatalogueModel("opt-30b")!;
  const rates = hardwareRates(resolveHardware("t4"));
  const workload = { promptLen: 128, genLen: 8 };
  const base: Policy = {
    gpuBatchSize: 16,
    numGpuBatches: 4,
    weights: { gpu: 0.2, cpu: 0.8, disk: 0 },
    cache: { gpu: 0.25, cpu: 0.5, disk: 0.25 },
    activations: { gpu: 0, cpu: 1, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: true,
    overlap: true,
    pinWeight: true,
  };
  // Policies that share layer costs (same gbs and flags, other placements or nb) and some that do not.
  const policies: Policy[] = [
    base,
    { ...base, weights: { gpu: 0, cpu: 0.5, disk: 0.5 }, numGpuBatches: 7 },
    { ...base, cache: { gpu: 1, cpu: 0, disk: 0 } },
    { ...base, cpuAttention: false },
    { ...base, gpuBatchSize: 32, compressCache: true },
    { ...base, overlap: false },
    { ...base, activations: { gpu: 1, cpu: 0, disk: 0 } },
    base,
  ];
  for (const schedule of ["spillway", "flexgen"] as const) {
    const cache = new LayerCostCache();
    for (const [i, policy] of policies.entries())
      assert.deepEqual(
        evaluatePolicy(model, rates, workload, policy, schedule, cache),
        evaluatePolicy(model, rates, workload, policy, schedule),
        `${schedule} policy ${i}`,
      );
  }
});
