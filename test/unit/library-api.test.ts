import assert from "node:assert/strict";
import { test } from "node:test";
import { plan, resolveHardware, resolveModel } from "../../index.js";

test("the library API plans without the CLI", async () => {
  const result = await plan({ model: resolveModel("opt-30b"), hardware: resolveHardware("t4"), workload: { promptLen: 512, genLen: 32 }, fixed: { compressWeight: true } });
  assert.equal(result.policy.compressWeight, true);
  assert.equal(result.predicted.feasible, true);
  assert.ok(result.predicted.throughputTokensPerSecond > 0);
});

test("the library API compares plan, simulation and a real run of one policy without the CLI", async () => {
  const { compare, synthesizeOptWeights, resolveHardware: hardwareOf, withCapacities } = await import("../../index.js");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const tiny = {
    name: "opt-tiny", family: "opt" as const, numLayers: 2, hiddenSize: 64, ffnSize: 256, numHeads: 4, numKvHeads: 4,
    vocabSize: 512, maxPositions: 256, ffnKind: "relu" as const, wordEmbedDim: 64, tiedEmbeddings: true, bytesPerParam: 2,
  };
  const dir = mkdtempSync(join(tmpdir(), "spillway-api-"));
  try {
    synthesizeOptWeights(tiny, dir, { seed: 1 });
    const hardware = withCapacities(hardwareOf("t4"), { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
    const { plan: planned, simulated, measured, comparison } = await compare({
      model: tiny, hardware, workload: { promptLen: 8, genLen: 4 }, weightsDir: dir,
      fixed: { gbs: 2, nb: 1, percent: [50, 50, 100, 0, 100, 0] },
    });
    assert.equal(comparison.policy, planned.policy);
    assert.equal(comparison.predicted.throughputTokensPerSecond, planned.predicted.throughputTokensPerSecond);
    assert.equal(comparison.simulated.throughputTokensPerSecond, simulated.throughputTokensPerSecond);
    assert.equal(comparison.measured.throughputTokensPerSecond, measured.throughputTokensPerSecond);
    assert.equal(comparison.matchesReference, true, "tokens equal the all-on-device reference");
    assert.ok(Math.abs(comparison.relativeError.throughput - (measured.throughputTokensPerSecond / planned.predicted.throughputTokensPerSecond - 1)) < 1e-12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
