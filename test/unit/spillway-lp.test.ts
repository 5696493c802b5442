import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { costConstants } from "../../planner/spillway/cost-constants.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { buildSpillwayLp, spillwayLayerCosts } from "../../planner/spillway/spillway-lp.js";

test("the layer costs computed once per GPU batch size give, at every nb, the very LP built from scratch", () => {
  const t4 = resolveHardware("t4");
  const rates = hardwareRates(t4);
  const workload = { promptLen: 512, genLen: 32 };
  for (const [modelName, compressWeight, cpuAttention, activationTier, schedule, overlap] of [
    ["opt-175b", false, true, "cpu", "spillway", true],
    ["opt-30b", true, false, "gpu", "flexgen", true],
    ["opt-6.7b", false, false, "disk", "spillway", false],
  ] as const) {
    const model = findCatalogueModel(modelName)!;
    const constants = costConstants(model, compressWeight);
    for (const gbs of [1, 16]) {
      const settingsFor = (nb: number) => ({
        gbs,
        nb,
        compressWeight,
        compressCache: compressWeight,
        cpuAttention,
        activationTier,
        pinWeight: true,
        overlap,
        schedule,
      });
      const layerCosts = spillwayLayerCosts({ model, rates, workload, settings: settingsFor(1), constants });
      for (const nb of [1, 2, 7, 40]) {
        const input = { model, rates, workload, settings: settingsFor(nb), constants };
        assert.deepEqual(
          buildSpillwayLp({ ...input, layerCosts }),
          buildSpillwayLp(input),
          `${modelName} ${gbs}x${nb}`,
        );
      }
    }
  }
});
