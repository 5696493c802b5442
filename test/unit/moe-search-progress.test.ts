/**
 * The MoE search reports its progress like the dense one (core/progress.ts), so `spillway plan` of an MoE
 * model shows progress on stderr when the search is long (qwen3-30b-a3b on an RTX 4090: ~12 s).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Progress } from "../../core/progress.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";

test("an MoE plan search reports monotone progress in one phase, ending at its total", () => {
  const events: Progress[] = [];
  const plan = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: resolveHardware("t4"),
    workload: { promptLen: 512, genLen: 32 },
    experts: { batchSize: 1, bits: 4 },
    onProgress: (p) => events.push(p),
  });
  assert.ok(plan.policy.experts, "an MoE plan");
  assert.ok(events.length >= 4, `${events.length} progress events`);
  const total = events[0]!.total;
  for (const [i, e] of events.entries()) {
    assert.equal(e.phase, "search");
    assert.equal(e.total, total);
    assert.ok(e.done >= 0 && e.done <= total, `done ${e.done} of ${total}`);
    if (i > 0) assert.ok(e.done >= events[i - 1]!.done, "done never decreases");
  }
  assert.equal(events.at(-1)!.done, total);
  // 4-bit experts fixed: one batch, the three attention precisions, then the exact scoring.
  assert.equal(total, 3 + 1);
});
