/**
 * `plan --engine E` searches E's own settings for seconds (FlexGen on OPT-6.7B: ~5-9 s on two cores);
 * the search reports its progress (core/progress.ts) so the CLI shows it on stderr, and reporting it
 * changes nothing in the plan.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Progress } from "../../core/progress.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { planForEngine } from "../../engines/plan-for-engine.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";

test("the engine search reports monotone progress in one phase, ending at its total, and the plan is unchanged", () => {
  const t4 = resolveHardware("t4");
  const base = planSync({
    model: findCatalogueModel("opt-1.3b")!,
    hardware: t4,
    workload: { promptLen: 512, genLen: 32 },
    fixed: { gbs: 8, nb: 1, percent: [50, 50, 100, 0, 100, 0] },
  });
  const events: Progress[] = [];
  const withProgress = planForEngine(base, "accelerate", t4, { onProgress: (p) => events.push(p) });
  const without = planForEngine(base, "accelerate", t4);
  assert.deepEqual(withProgress.predicted, without.predicted);
  assert.deepEqual(withProgress.policy, without.policy);
  assert.ok(events.length > 2, `${events.length} progress events`);
  const total = events[0]!.total;
  for (const [i, e] of events.entries()) {
    assert.equal(e.phase, "accelerate search");
    assert.equal(e.total, total);
    assert.ok(e.done >= 0 && e.done <= total, `done ${e.done} of ${total}`);
    if (i > 0) assert.ok(e.done >= events[i - 1]!.done, "done never decreases");
  }
  assert.equal(events.at(-1)!.done, total);
});
