import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { costConstants } from "../../planner/spillway/cost-constants.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { buildSpillwayLp, SpillwayLpFamily, spillwayLayerCosts } from "../../planner/spillway/spillway-lp.js";
import { spillwaySettings } from "../lp-fixtures.js";

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
      const settingsFor = (nb: number) =>
        spillwaySettings(gbs, nb, { compress: compressWeight, cpuAttention, activationTier, schedule, overlap });
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

test("the LP family interpolated in nb gives buildSpillwayLp's rows and objective, up to rounding", () => {
  const rates = hardwareRates(resolveHardware("t4"));
  const workload = { promptLen: 512, genLen: 32 };
  for (const [modelName, compress, cpuAttention, activationTier, schedule, overlap] of [
    ["opt-175b", true, true, "cpu", "spillway", true],
    ["opt-30b", false, false, "gpu", "flexgen", true],
    ["opt-6.7b", false, true, "disk", "spillway", false],
  ] as const) {
    const model = findCatalogueModel(modelName)!;
    const constants = costConstants(model, compress);
    for (const gbs of [1, 24]) {
      const lpInputAt = (nb: number) => ({
        model,
        rates,
        workload,
        constants,
        settings: spillwaySettings(gbs, nb, { compress, cpuAttention, activationTier, schedule, overlap }),
      });
      const family = new SpillwayLpFamily(lpInputAt, gbs);
      for (const nb of [1, 2, 3, 11, 90, 4096, 65536]) {
        const built = buildSpillwayLp(lpInputAt(nb));
        const interpolated = family.at(nb);
        const where = `${modelName} ${gbs}x${nb}`;
        assert.equal(interpolated.constraints.length, built.constraints.length, where);
        const close = (a: number, b: number, scale: number, what: string) =>
          assert.ok(Math.abs(a - b) <= 1e-12 * scale, `${where} ${what}: ${a} vs ${b}`);
        const objectiveScale = Math.max(...built.objective.map(Math.abs));
        built.objective.forEach((c, j) => close(interpolated.objective[j]!, c, objectiveScale, `objective ${j}`));
        built.constraints.forEach((row, i) => {
          const other = interpolated.constraints[i]!;
          assert.equal(other.name, row.name);
          assert.equal(other.op, row.op);
          const scale = Math.max(Math.abs(row.rhs), ...row.coefficients.map(Math.abs), 1e-300);
          close(other.rhs, row.rhs, scale, `${row.name} rhs`);
          row.coefficients.forEach((c, j) => close(other.coefficients[j]!, c, scale, `${row.name}[${j}]`));
        });
      }
    }
  }
});
