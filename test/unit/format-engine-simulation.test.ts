/**
 * `spillway simulate PLAN --engine E` as text: a step whose critical path crosses the lanes hundreds of
 * times (llama.cpp's prompt of a Mixtral plan, the routed experts of half the layers in host memory) prints a bounded line; `--json`
 * keeps the whole path. A plan replayed on an engine it was not made for is checked against that engine's
 * model of its policy, labelled as such.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatEngineSimulation } from "../../cli/format-engine-simulation.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";
import { simulateEngine } from "../../simulator/simulate-engine.js";

const MAX_LINE_CHARS = 240;

const t4 = resolveHardware("t4");
/** A Spillway plan of Mixtral on a T4, one sequence (its prediction is Spillway's, not llama.cpp's). */
const plan = planSync({
  model: findCatalogueModel("mixtral-8x7b")!,
  hardware: t4,
  workload: { promptLen: 512, genLen: 32 },
  experts: { batchSize: 1, cacheSize: 4, bits: 4, attentionBits: 4, prefetchExperts: 0 },
});

test("a step's critical path prints on one bounded line, cut with the count of the lanes left out", () => {
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

test("a plan replayed on another engine is checked against that engine's model, and says so (not 'plan:')", () => {
  const simulation = simulateEngine(plan, t4, { engine: "llama.cpp" });
  assert.equal(simulation.predictedBy, "engine");
  assert.notEqual(
    simulation.predictedThroughputTokensPerSecond.toPrecision(4),
    plan.predicted.throughputTokensPerSecond.toPrecision(4),
  );
  const line = formatEngineSimulation(simulation)
    .split("\n")
    .find((l) => l.trimStart().startsWith("throughput"))!;
  assert.doesNotMatch(line, /\(plan:/);
  assert.match(
    line,
    new RegExp(
      `\\(llama\\.cpp's model of the plan's policy: ${simulation.predictedThroughputTokensPerSecond.toPrecision(4)},`,
    ),
  );
});
