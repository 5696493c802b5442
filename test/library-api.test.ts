import assert from "node:assert/strict";
import { test } from "node:test";
import { plan, resolveHardware, resolveModel } from "../index.js";

test("the library API plans without the CLI", async () => {
  const result = await plan({ model: resolveModel("opt-30b"), hardware: resolveHardware("t4"), workload: { promptLen: 512, genLen: 32 }, fixed: { compressWeight: true } });
  assert.equal(result.policy.compressWeight, true);
  assert.equal(result.predicted.feasible, true);
  assert.ok(result.predicted.throughputTokensPerSecond > 0);
});
