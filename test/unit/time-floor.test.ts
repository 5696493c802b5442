import assert from "node:assert/strict";
import test from "node:test";
import type { Policy } from "../../core/policy.js";
import { realizePlacement } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { costSettings, evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";
import { placementFreeSecondsFloor } from "../../planner/spillway/time-floor.js";
import { random as seededRandom } from "../helpers.js";

const workload = { promptLen: 256, genLen: 12 };

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
        compressWeight: random() < 0.5,
        compressCache: random() < 0.5,
        cpuAttention: random() < 0.5,
        overlap: i % 5 !== 0,
        pinWeight: i % 7 !== 0,
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
