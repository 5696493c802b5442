/** `spillway simulate` of an MoE plan as text: a replay with no expert lookups claims no hit rate. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatMoeSimulation } from "../../cli/format-moe-simulation.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";
import { simulateMoe } from "../../simulator/simulate-moe.js";

test("a one-token MoE plan (no decode step, no lookups) prints no replayed hit rate, not 100%", () => {
  const t4 = resolveHardware("t4");
  const plan = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: t4,
    workload: { promptLen: 512, genLen: 1 },
    experts: { batchSize: 1, cacheSize: 4, bits: 4, attentionBits: 4, prefetchExperts: 0 },
  });
  const r = simulateMoe(plan, t4);
  assert.equal(r.experts.lookups, 0);
  const line = formatMoeSimulation(r)
    .split("\n")
    .find((l) => l.trimStart().startsWith("hit rate"))!;
  assert.match(line, /hit rate {5}- \(no lookups\) replayed/);
});
