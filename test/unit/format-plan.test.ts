/** `spillway plan`'s text: every figure printed is a finite number with its unit, whatever the workload. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPlan } from "../../cli/format-plan.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";

test("an MoE plan generating one token prints no decode rate (it has no decode step), not Infinity", () => {
  const plan = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: resolveHardware("t4"),
    workload: { promptLen: 512, genLen: 1 },
    experts: { batchSize: 1, cacheSize: 4, bits: 4, attentionBits: 4, prefetchExperts: 0 },
  });
  const text = formatPlan(plan);
  assert.doesNotMatch(text, /Infinity|NaN/);
  assert.match(text, /decode step {2}none/);
});
