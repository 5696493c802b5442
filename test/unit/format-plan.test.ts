/** `spillway plan`'s text: every figure printed is a finite number with its unit, whatever the workload. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPlan } from "../../cli/format-plan.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { formatSignificant } from "../../core/units.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan, planSync } from "../../planner/plan.js";

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

test("a throughput of tens of thousands of token/s prints as a whole number, not in exponent notation", async () => {
  // One layer: the runtime's per-sequence attention launches (planner/spillway/per-sequence-attention-work.ts)
  // cap a twelve-layer OPT-125M at about 2,400 token/s.
  const planned = await plan({
    model: { ...findCatalogueModel("opt-125m")!, name: "opt-125m-one-layer", numLayers: 1 },
    hardware: resolveHardware("rtx3060"),
    workload: { promptLen: 1, genLen: 1 },
  });
  assert.ok(planned.predicted.throughputTokensPerSecond >= 1e4, `${planned.predicted.throughputTokensPerSecond}`);
  const text = formatPlan(planned);
  assert.doesNotMatch(text, /\de[+-]\d/);
  assert.match(text, new RegExp(`throughput {3}${Math.round(planned.predicted.throughputTokensPerSecond)} token/s`));
});

test("formatSignificant keeps four significant digits below 10^4 and whole numbers above", () => {
  assert.equal(formatSignificant(3.2681), "3.268");
  assert.equal(formatSignificant(9999.4), "9999");
  assert.equal(formatSignificant(85490.4), "85490");
  assert.equal(formatSignificant(0.019371), "0.01937");
  assert.equal(formatSignificant(1234.5, 3), "1235");
});

test("the block line agrees in number: one GPU batch of one sequence is not '1 GPU batches' or '1 sequences'", async () => {
  const request = {
    model: findCatalogueModel("opt-1.3b")!,
    hardware: resolveHardware("t4"),
    workload: { promptLen: 64, genLen: 4 },
  };
  const one = formatPlan(await plan({ ...request, fixed: { gbs: 1, nb: 1 } }));
  assert.match(one, /GPU batch size 1 x 1 GPU batch = block of 1 sequence\n/);
  const many = formatPlan(await plan({ ...request, fixed: { gbs: 2, nb: 3 } }));
  assert.match(many, /GPU batch size 2 x 3 GPU batches = block of 6 sequences\n/);
});
