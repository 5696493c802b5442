import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../core/resolve-hardware.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { deepspeedZeroBaseline, flexgenBaseline } from "../planner/baselines.js";
import { plan } from "../planner/plan.js";
import { runCli } from "./helpers.js";

const request = { model: findCatalogueModel("opt-30b")!, hardware: resolveHardware("t4"), workload: { promptLen: 512, genLen: 32 } };

test("deepspeed-zero baseline: every weight off the GPU, KV and activations on it, one batch, the largest that fits", async () => {
  const b = await deepspeedZeroBaseline(request);
  const p = b.plan!;
  assert.equal(p.predicted.feasible, true);
  assert.equal(p.policy.weights.gpu, 0);
  assert.equal(p.policy.cache.gpu, 1);
  assert.equal(p.policy.activations.gpu, 1);
  assert.equal(p.policy.numGpuBatches, 1);
  assert.equal(p.policy.compressWeight || p.policy.compressCache || p.policy.cpuAttention, false);
  const bigger = await plan({ ...request, fixed: { gbs: p.policy.gpuBatchSize + 1, nb: 1, percent: [0, 100, 100, 0, 100, 0], overlap: true, pinWeight: true, compressWeight: false, compressCache: false, cpuAttention: false } });
  assert.equal(bigger.predicted.feasible, false, "one more sequence does not fit");
});

test("flexgen baseline: FlexGen's own search's policy, scored by the Spillway model", async () => {
  const b = await flexgenBaseline(request);
  const own = await plan({ ...request, costModel: "flexgen" });
  assert.equal(b.plan!.costModel, "spillway");
  assert.equal(b.plan!.policy.gpuBatchSize, own.policy.gpuBatchSize);
  assert.equal(b.plan!.policy.numGpuBatches, own.policy.numGpuBatches);
  assert.equal(b.plan!.policy.compressWeight, own.policy.compressWeight);
  assert.equal(b.plan!.policy.cpuAttention, own.policy.cpuAttention);
});

test("spillway plan --compare prints the baselines beside the plan, and --json carries them", () => {
  const args = ["plan", "--model", "opt-6.7b", "--prompt-len", "256", "--gen-len", "16", "--compare"];
  const text = runCli(args);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /Baselines, scored by the same cost model/);
  for (const name of ["spillway", "deepspeed-zero", "flexgen"]) assert.match(text.stdout, new RegExp(`\\n  ${name} +\\d+x\\d+ +[\\d.]+ +[\\d.]+x`));
  const json = runCli([...args, "--json"]);
  const out = JSON.parse(json.stdout) as { predicted: { throughputTokensPerSecond: number }; baselines: { name: string; predicted: { throughputTokensPerSecond: number } }[] };
  assert.deepEqual(out.baselines.map((b) => b.name), ["deepspeed-zero", "flexgen"]);
  // Spillway's search covers both baselines' policies, so neither beats its plan.
  for (const b of out.baselines) assert.ok(b.predicted.throughputTokensPerSecond <= out.predicted.throughputTokensPerSecond * (1 + 1e-9), b.name);
});
