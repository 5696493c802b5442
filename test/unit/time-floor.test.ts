import assert from "node:assert/strict";
import test from "node:test";
import type { Policy } from "../../core/policy.js";
import { realizePlacement } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { costSettings, evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";
import { batchThroughputCeiling, placementFreeSecondsFloor } from "../../planner/spillway/time-floor.js";
import { random as seededRandom } from "../helpers.js";

const workload = { promptLen: 256, genLen: 12 };
/** Compression, CPU attention, overlap and pinning drawn for the i-th policy. */
function discreteChoices(random: () => number, i: number) {
  return {
    compressWeight: random() < 0.5,
    compressCache: random() < 0.5,
    cpuAttention: random() < 0.5,
    overlap: i % 5 !== 0,
    pinWeight: i % 7 !== 0,
  };
}
const onGpu = { gpu: 1, cpu: 0, disk: 0 };
const onGpuPolicy: Policy = {
  gpuBatchSize: 4,
  numGpuBatches: 1,
  weights: onGpu,
  cache: onGpu,
  activations: onGpu,
  compressWeight: false,
  compressCache: false,
  cpuAttention: false,
  overlap: true,
  pinWeight: true,
};

test("the time floor is at most the exact time of every placement, for every setting and schedule", () => {
  const random = seededRandom(5);
  const split = () => {
    const a = random();
    const b = random() * (1 - a);
    return { gpu: a, cpu: b, disk: 1 - a - b };
  };
  let compared = 0;
  let closest = 0;
  for (const [modelName, hardware] of [
    ["opt-6.7b", "t4"],
    ["opt-30b", "t4"],
    ["llama-2-7b", "l4"],
  ] as const) {
    const model = findCatalogueModel(modelName)!;
    const rates = hardwareRates(resolveHardware(hardware));
    // One memo for every floor and no evaluation: the floor fills it as a search's would.
    const memo = new LayerCostCache();
    for (let i = 0; i < 120; i++) {
      const policy: Policy = {
        gpuBatchSize: [1, 3, 8, 32][i % 4]!,
        numGpuBatches: 1 + Math.floor(random() * 6),
        weights: split(),
        cache: split(),
        activations: [
          { gpu: 1, cpu: 0, disk: 0 },
          { gpu: 0, cpu: 1, disk: 0 },
          { gpu: 0, cpu: 0, disk: 1 },
        ][i % 3]!,
        ...discreteChoices(random, i),
      };
      for (const schedule of ["spillway", "flexgen"] as const) {
        const exact = evaluatePolicy(model, rates, workload, policy, schedule);
        const settings = costSettings(policy, realizePlacement(model, policy), schedule);
        // The floor at GPU activations holds wherever the activations are.
        for (const activationTier of ["gpu", settings.activationTier] as const) {
          const floor = placementFreeSecondsFloor(model, rates, workload, { ...settings, activationTier }, memo);
          compared++;
          closest = Math.max(closest, floor / exact.totalSeconds);
          assert.ok(
            floor <= exact.totalSeconds,
            `${modelName} ${JSON.stringify(policy)} (${schedule}, floor at ${activationTier}): floor ${floor} s, exact ${exact.totalSeconds} s`,
          );
        }
      }
    }
  }
  assert.ok(compared > 1000);
  // Not a vacuous floor: where compute or a fixed cost dominates, it comes close to the exact time.
  assert.ok(closest > 0.9, `the closest floor is ${closest} of the exact time`);
});

test("a GPU batch size's throughput ceiling is above the exact throughput of every fitting placement at any nb up to its limit", () => {
  const random = seededRandom(11);
  const model = findCatalogueModel("opt-30b")!;
  const rates = hardwareRates(resolveHardware("t4"));
  const memo = new LayerCostCache();
  let fitting = 0;
  let closest = 0;
  for (let i = 0; i < 300; i++) {
    const kvGpu = 0.3 * random();
    const weightsGpu = 0.4 * random();
    const policy: Policy = {
      gpuBatchSize: [1, 4, 16, 48][i % 4]!,
      numGpuBatches: 1 + Math.floor(random() * 8),
      weights: { gpu: weightsGpu, cpu: 1 - weightsGpu, disk: 0 },
      cache: { gpu: kvGpu, cpu: 1 - kvGpu, disk: 0 },
      activations: [
        { gpu: 1, cpu: 0, disk: 0 },
        { gpu: 0, cpu: 1, disk: 0 },
      ][i % 2]!,
      ...discreteChoices(random, i),
    };
    for (const schedule of ["spillway", "flexgen"] as const) {
      const exact = evaluatePolicy(model, rates, workload, policy, schedule);
      if (!exact.feasible) continue;
      fitting++;
      const settings = {
        ...costSettings(policy, realizePlacement(model, policy), schedule),
        activationTier: "gpu" as const,
      };
      // At the policy's own nb as the limit, and at a larger one.
      for (const maxNb of [policy.numGpuBatches, policy.numGpuBatches + 5]) {
        const ceiling = batchThroughputCeiling(model, rates, workload, settings, maxNb, memo);
        closest = Math.max(closest, exact.throughputTokensPerSecond / ceiling);
        assert.ok(
          exact.throughputTokensPerSecond <= ceiling,
          `${JSON.stringify(policy)} (${schedule}, nb up to ${maxNb}): ${exact.throughputTokensPerSecond} token/s, ceiling ${ceiling}`,
        );
      }
    }
  }
  assert.ok(fitting >= 50, `enough fitting policies (${fitting})`);
  assert.ok(closest > 0.5, `the closest policy reaches ${closest} of its ceiling`);
  const anySettings = { ...costSettings(onGpuPolicy, realizePlacement(model, onGpuPolicy), "spillway") };
  assert.equal(batchThroughputCeiling(model, rates, workload, anySettings, 0, memo), 0, "no nb, no throughput");
});
