import assert from "node:assert/strict";
import { test } from "node:test";
import type { Progress } from "../../core/progress.js";
import { plan, resolveHardware, resolveModel } from "../../index.js";
import { TINY_OPT } from "../helpers.js";
import { assertProgressPhases } from "../progress-checks.js";

test("the library API plans without the CLI, reporting the search's progress", async () => {
  const reports: Progress[] = [];
  const result = await plan({
    model: resolveModel("opt-30b"),
    hardware: resolveHardware("t4"),
    workload: { promptLen: 512, genLen: 32 },
    fixed: { compressWeight: true },
    onProgress: (p) => reports.push(p),
  });
  assertProgressPhases(reports, ["search"]);
  assert.ok(reports.length > 3, `${reports.length} reports`);
  assert.equal(result.policy.compressWeight, true);
  assert.equal(result.predicted.feasible, true);
  assert.ok(result.predicted.throughputTokensPerSecond > 0);
});

test("the library API compares plan, simulation and a real run of one policy without the CLI", async () => {
  const { compare, synthesizeOptWeights, resolveHardware: hardwareOf, withCapacities } = await import("../../index.js");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const tiny = TINY_OPT;
  const dir = mkdtempSync(join(tmpdir(), "spillway-api-"));
  try {
    const reports: Progress[] = [];
    synthesizeOptWeights(tiny, dir, { seed: 1, onProgress: (p) => reports.push(p) });
    const hardware = withCapacities(hardwareOf("t4"), { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
    const {
      plan: planned,
      simulated,
      measured,
      comparison,
    } = await compare({
      model: tiny,
      hardware,
      workload: { promptLen: 8, genLen: 4 },
      weightsDir: dir,
      fixed: { gbs: 2, nb: 1, percent: [50, 50, 100, 0, 100, 0] },
      onProgress: (p) => reports.push(p),
    });
    // A fixed policy is scored, not searched: the checkpoint, then the simulation, the run and its
    // reference, the runs one step per layer of each GPU batch and token.
    assertProgressPhases(reports, ["synth-weights", "simulate", "run", "reference"]);
    for (const phase of ["run", "reference"])
      assert.equal(reports.find((p) => p.phase === phase)?.total, 4 * tiny.numLayers * 1, phase);
    assert.equal(reports.find((p) => p.phase === "simulate")?.total, 4, "simulate: a step per token and GPU batch");
    assert.equal(comparison.policy, planned.policy);
    assert.equal(comparison.predicted.throughputTokensPerSecond, planned.predicted.throughputTokensPerSecond);
    assert.equal(comparison.simulated.throughputTokensPerSecond, simulated.throughputTokensPerSecond);
    assert.equal(comparison.measured.throughputTokensPerSecond, measured.throughputTokensPerSecond);
    assert.equal(comparison.matchesReference, true, "tokens equal the all-on-device reference");
    assert.ok(
      Math.abs(
        comparison.relativeError.throughput -
          (measured.throughputTokensPerSecond / planned.predicted.throughputTokensPerSecond - 1),
      ) < 1e-12,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The package root's values: the flow, its inputs' parsers and resolvers, trace sinks and errors. */
const ROOT_EXPORTS = [
  "BASELINE_NAMES",
  "EXPORT_TARGETS",
  "FileTraceSink",
  "InputError",
  "MODEL_CATALOGUE",
  "MemoryTraceSink",
  "NoTraceSink",
  "PlanError",
  "baselines",
  "buildReport",
  "compare",
  "cudaStatus",
  "exportPlan",
  "findCatalogueModel",
  "modelSpecFromHfConfig",
  "parseHardwareProfile",
  "parseModelSpec",
  "parsePlanFile",
  "plan",
  "readPlanFile",
  "readRoutingTrace",
  "resolveHardware",
  "resolveModel",
  "run",
  "runMoe",
  "shippedProfileNames",
  "simulate",
  "simulateMoe",
  "sweep",
  "synthesizeMixtralWeights",
  "synthesizeOptWeights",
  "tinyMixtralSpec",
  "withCapacities",
  // The plan parser and the one vocabulary (tiers, links, resources with display names, schedule names).
  "parsePlan",
  "TIERS",
  "LINKS",
  "RESOURCES",
  "RESOURCE_NAMES",
  "SCHEDULE_NAMES",
];

/** What the root exported before it was narrowed: each name is still exported, from the root or from spillway/internals. */
const FORMER_ROOT_EXPORTS = [
  "BASELINE_NAMES",
  "EXPORT_TARGETS",
  "InputError",
  "MODEL_CATALOGUE",
  "PlanError",
  "accelerateBaseline",
  "baselines",
  "buildReport",
  "compare",
  "compareRuns",
  "createEmulatedNative",
  "cudaProfileFromSamples",
  "cudaStatus",
  "deepspeedZeroBaseline",
  "defaultRoutingProfile",
  "effective",
  "evaluate",
  "evaluateMoePolicy",
  "evaluatePolicy",
  "exportPlan",
  "findCatalogueModel",
  "flexgenBaseline",
  "llamaCppBaseline",
  "llamaCppMoeAdvice",
  "loadLpSolvers",
  "measureCudaBackend",
  "modelSpecFromHfConfig",
  "parseHardwareProfile",
  "parseModelSpec",
  "parsePlanFile",
  "plan",
  "planSync",
  "readPlanFile",
  "readRoutingTrace",
  "renderChart",
  "resolveHardware",
  "resolveModel",
  "routingProfileFromTrace",
  "routingStats",
  "run",
  "runMoe",
  "shippedProfileNames",
  "simulate",
  "simulateMoe",
  "simulateSchedule",
  "synthRouting",
  "synthesizeMixtralWeights",
  "synthesizeOptWeights",
  "tinyMixtralSpec",
  "totalParams",
  "totalWeightBytes",
  "withCapacities",
];

/** The package's second entry point, resolved through package.json "exports" (a package may import itself by name). */
async function importInternals(): Promise<Record<string, unknown>> {
  const specifier: string = "spillway/internals";
  return (await import(specifier)) as Record<string, unknown>;
}

test("the package root exports the flow, the parsers and resolvers, the trace sinks and the errors, and nothing else", async () => {
  const root = await import("../../index.js");
  assert.deepEqual(Object.keys(root).sort(), [...ROOT_EXPORTS].sort());
  const self = (await import("spillway" as string)) as Record<string, unknown>;
  assert.equal(self.plan, root.plan, "the package name resolves to this index through package.json exports");
});

test("spillway/internals holds the building blocks the root no longer exports, so no caller loses one", async () => {
  const root = (await import("../../index.js")) as Record<string, unknown>;
  const internals = await importInternals();
  for (const name of Object.keys(internals))
    assert.ok(!(name in root), `${name} is in both the root and spillway/internals`);
  for (const name of FORMER_ROOT_EXPORTS) {
    const value = root[name] ?? internals[name];
    assert.ok(value !== undefined, `${name} is exported from neither the root nor spillway/internals`);
  }
  const { evaluatePolicy } = await import("../../planner/spillway/evaluate-policy.js");
  assert.equal(internals.evaluatePolicy, evaluatePolicy);
});

test("the library's compare() runs on the backend it is given (the emulated CUDA device here)", async () => {
  const { compare, synthesizeOptWeights, resolveHardware: hardwareOf, withCapacities } = await import("../../index.js");
  const { createEmulatedNative } = await import("../../runtime/cuda/emulated-native.js");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const tiny = TINY_OPT;
  const dir = mkdtempSync(join(tmpdir(), "spillway-api-"));
  try {
    synthesizeOptWeights(tiny, dir, { seed: 1 });
    const hardware = withCapacities(hardwareOf("t4"), { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
    const request = {
      model: tiny,
      hardware,
      workload: { promptLen: 8, genLen: 4 },
      weightsDir: dir,
      fixed: { gbs: 2, nb: 1, percent: [50, 50, 100, 0, 100, 0] as [number, number, number, number, number, number] },
    };
    const onCpu = await compare(request);
    const reports: Progress[] = [];
    const onCuda = await compare({
      ...request,
      backend: "cuda",
      cudaNative: createEmulatedNative({ deviceBytes: 64 * 2 ** 20, deviceName: "emulated test device" }),
      onProgress: (p) => reports.push(p),
    });
    // The CUDA backend counts the steps it issues as the CPU backend counts those it computes.
    assertProgressPhases(reports, ["simulate", "run", "reference"]);
    assert.equal(reports.find((p) => p.phase === "run")?.total, 4 * tiny.numLayers);
    assert.equal(onCpu.measured.backend, "cpu");
    assert.equal(onCuda.measured.backend, "cuda");
    assert.equal(onCuda.measured.device, "emulated test device");
    assert.equal(onCuda.comparison.matchesReference, true, "tokens equal the all-on-device reference");
    assert.deepEqual(onCuda.measured.tokens, onCpu.measured.tokens, "both backends generate the same tokens");
    assert.deepEqual(onCuda.measured.bytes, onCpu.measured.bytes, "and move the same bytes over each link");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
