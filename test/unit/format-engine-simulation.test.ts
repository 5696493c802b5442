/**
 * `spillway simulate PLAN --engine E` as text: a step whose critical path crosses the lanes hundreds of
 * times (llama.cpp's prompt of a Mixtral plan, the routed experts of half the layers in host memory) prints a bounded line; `--json`
 * keeps the whole path.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatEngineSimulation } from "../../cli/format-engine-simulation.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";
import { simulateEngine } from "../../simulator/simulate-engine.js";

const MAX_LINE_CHARS = 240;

test("a step's critical path prints on one bounded line, cut with the count of the lanes left out", () => {
  const t4 = resolveHardware("t4");
  const plan = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: t4,
    workload: { promptLen: 512, genLen: 32 },
    experts: { batchSize: 1, cacheSize: 4, bits: 4, attentionBits: 4, prefetchExperts: 0 },
  });
  const simulation = simulateEngine(plan, t4, { engine: "llama.cpp" });
  const longest = Math.max(...simulation.steps.map((s) => s.criticalLanes.length));
  assert.ok(longest > 40, `the case should have a long critical path, has ${longest} lanes`);
  const text = formatEngineSimulation(simulation);
  for (const line of text.split("\n"))
    assert.ok(line.length <= MAX_LINE_CHARS, `${line.length} characters: ${line.slice(0, 120)}...`);
  const cut = /\.\.\. (\d+) more\]$/m.exec(text);
  assert.ok(cut, text);
  assert.equal(Number(cut[1]) + 12, longest);
});
