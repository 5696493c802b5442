/**
 * `spillway simulate` of a plan that generates one token (--gen-len 1): the plan has no decode phase, and
 * the sliver the simulation counts there (the last step's store) is no disagreement ("+Infinity%").
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { simulate } from "../../simulator/simulate.js";

test("a one-token plan simulates without a decode disagreement", async () => {
  const t4 = resolveHardware("t4");
  const planned = await plan({
    model: findCatalogueModel("opt-125m")!,
    hardware: t4,
    workload: { promptLen: 512, genLen: 1 },
  });
  assert.equal(planned.predicted.decodeSeconds, 0);
  const r = simulate(planned, t4, { schedule: planned.schedule, capacityBytes: planned.predicted.capacityBytes });
  assert.ok(r.decodeSeconds < 1e-3 * r.prefillSeconds, `decode ${r.decodeSeconds} s`);
  assert.deepEqual(
    r.disagreements.filter((d) => d.startsWith("decode")),
    [],
  );
  for (const d of r.disagreements) assert.doesNotMatch(d, /Infinity/);
});
