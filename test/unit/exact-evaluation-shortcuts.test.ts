import assert from "node:assert/strict";
import { test } from "node:test";
import type { Policy } from "../../core/policy.js";
import { realizedPolicy, realizePlacement } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";
import { shiftWeights } from "../../planner/spillway/spillway-search.js";
import { random } from "../helpers.js";

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

test("shiftWeights finds the amount the 0.005-step scan finds (its binary search relies on monotonicity)", () => {
  const rand = random(3);
  for (const name of ["opt-30b", "opt-175b", "llama-2-7b"]) {
    const model = findCatalogueModel(name)!;
    for (let trial = 0; trial < 60; trial++) {
      const a = rand();
      const b = rand() * (1 - a);
      const policy: Policy = {
        gpuBatchSize: 8,
        numGpuBatches: 2,
        weights: { gpu: a, cpu: b, disk: 1 - a - b },
        cache: { gpu: 0, cpu: 1, disk: 0 },
        activations: { gpu: 0, cpu: 1, disk: 0 },
        compressWeight: trial % 2 === 0,
        compressCache: false,
        cpuAttention: false,
        overlap: true,
        pinWeight: true,
      };
      for (const [from, to] of [
        ["gpu", "cpu"],
        ["cpu", "disk"],
      ] as const) {
        // The scan as it was: the first 0.005 step that moves a whole tensor off `from`.
        const before = realizePlacement(model, policy).weights[from];
        let scanned: Policy | undefined;
        if (before > 0)
          for (let amount = 0.005; amount <= before + 0.005; amount += 0.005) {
            const moved = Math.min(amount, policy.weights[from]);
            const candidate = {
              ...policy,
              weights: { ...policy.weights, [from]: policy.weights[from] - moved, [to]: policy.weights[to] + moved },
            };
            if (realizePlacement(model, candidate).weights[from] < before - 1e-12) {
              scanned = realizedPolicy(model, candidate);
              break;
            }
          }
        assert.deepEqual(shiftWeights(model, policy, from, to), scanned, `${name} trial ${trial} ${from}->${to}`);
      }
    }
  }
});
