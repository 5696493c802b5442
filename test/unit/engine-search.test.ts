/**
 * `plan --engine E` searching E's own knobs on E's model (engines/engine-search.ts): never slower on E's
 * model than Spillway's placement at the batches `plan --engine` tried before (the seeds alone, scored
 * here the same way), deterministic, and a fixed policy or fixed knobs are scored, not searched.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Plan } from "../../core/plan.js";
import type { Policy } from "../../core/policy.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { searchOnEngine } from "../../engines/engine-search.js";
import { BATCH_SIZES, engineSearchDimensions } from "../../engines/engine-search-space.js";
import { planForEngine, predictOnEngine } from "../../engines/plan-for-engine.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";

const t4 = resolveHardware("t4");
const workload = { promptLen: 512, genLen: 32 };

/** A scored (not searched) Spillway plan: cheap, and its policy is the search's starting point. */
function basePlan(model: string, fixed: Parameters<typeof planSync>[0]["fixed"], hardware = t4): Plan {
  return planSync({ model: findCatalogueModel(model)!, hardware, workload, fixed });
}

/** What `plan --engine` chose before it searched: Spillway's placement, the batch re-chosen among these. */
function previousChoice(base: Plan, engine: "flexgen" | "mixtral-offloading" | "llama.cpp"): number {
  const p = base.policy;
  const seeds = [...new Set([p.numGpuBatches, 1])].flatMap((nb) =>
    [...new Set([p.gpuBatchSize, ...BATCH_SIZES])].map((gbs) => ({
      policy: { ...p, gpuBatchSize: gbs, numGpuBatches: nb },
      knobs: {},
      full: true,
    })),
  );
  const r = searchOnEngine({ engine, model: base.modelSpec, hardware: t4, workload, seeds, dimensions: [] });
  return r.best?.prediction.throughputTokensPerSecond ?? 0;
}

test("FlexGen: the searched policy is at least as fast on FlexGen's model as Spillway's placement at its best batch, and the search is recorded", () => {
  const base = basePlan("opt-350m", { gbs: 8, nb: 2, percent: [0, 100, 0, 100, 100, 0], cpuAttention: true });
  const before = previousChoice(base, "flexgen");
  const searched = planForEngine(base, "flexgen", t4);
  assert.ok(before > 0);
  assert.equal(searched.predicted.feasible, true);
  assert.ok(
    searched.predicted.throughputTokensPerSecond >= before,
    `${searched.predicted.throughputTokensPerSecond} < ${before}`,
  );
  // The prediction is the engine's for the policy the plan carries, not a proxy's.
  const direct = predictOnEngine({
    engine: "flexgen",
    model: base.modelSpec,
    hardware: t4,
    workload,
    policy: searched.policy,
  });
  assert.equal(direct.throughputTokensPerSecond, searched.predicted.throughputTokensPerSecond);
  const s = searched.search;
  assert.ok(s.engineCandidates! > 28, `${s.engineCandidates} candidates`);
  assert.ok(s.engineCandidatesFeasible! >= 1 && s.engineCandidatesFeasible! <= s.engineCandidates!);
  assert.ok(s.engineEvaluations! >= 1);
  assert.equal(typeof s.engineEvaluationLimitReached, "boolean");
  assert.ok(searched.notes.some((n) => /searched on flexgen's model: \d+ candidates/.test(n)));
  // Spillway's own fields are those of the base plan.
  assert.equal(s.lpSolves, base.search.lpSolves);
});

test("mixtral-offloading: searching its expert cache size and HQQ bits beats Spillway's policy at its best batch", () => {
  const base = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: t4,
    workload,
    experts: {
      batchSize: 1,
      cacheSize: 2,
      bits: 4,
      attentionBits: 4,
      prefetchExperts: 0,
      prefetchLayers: 1,
      compute: "gpu",
      eviction: "lru",
      pregated: false,
      offloadTier: "cpu",
      cacheOnCpu: false,
    },
  });
  const before = previousChoice(base, "mixtral-offloading");
  const searched = planForEngine(base, "mixtral-offloading", t4);
  assert.equal(searched.predicted.feasible, true);
  assert.ok(
    searched.predicted.throughputTokensPerSecond > before,
    `${searched.predicted.throughputTokensPerSecond} <= ${before}`,
  );
});

test("llama.cpp: the search is deterministic and keeps the knobs the user fixed", () => {
  const base = basePlan("llama-2-7b", { gbs: 4, nb: 1, percent: [50, 50, 100, 0, 100, 0] });
  const before = previousChoice(base, "llama.cpp");
  const a = planForEngine(base, "llama.cpp", t4);
  const b = planForEngine(base, "llama.cpp", t4);
  assert.deepEqual(a, b);
  assert.ok(a.predicted.throughputTokensPerSecond >= before);
  const fixed = planForEngine(base, "llama.cpp", t4, { knobs: { ggufType: "Q8_0", nGpuLayers: 12 } });
  assert.equal(fixed.engineKnobs?.ggufType, "Q8_0");
  assert.equal(fixed.engineKnobs?.nGpuLayers, 12);
  // --no-compress-weight: no quantized file type is searched.
  const dims = engineSearchDimensions("llama.cpp", base.modelSpec, { policy: { compressWeight: false } }, {});
  assert.ok(!dims.some((d) => d.name === "GGUF type"));
});

test("a fixed policy is scored exactly, and fixed --percent keeps the placement while the rest is searched", () => {
  const base = basePlan("opt-350m", { gbs: 8, nb: 2, percent: [0, 100, 0, 100, 100, 0], cpuAttention: true });
  const requested: Policy = base.policy;
  const scored = planForEngine(base, "flexgen", t4, { requested });
  assert.deepEqual(scored.policy, requested);
  assert.equal(scored.search.engineCandidates, undefined);
  const direct = predictOnEngine({
    engine: "flexgen",
    model: base.modelSpec,
    hardware: t4,
    workload,
    policy: requested,
  });
  assert.equal(scored.predicted.throughputTokensPerSecond, direct.throughputTokensPerSecond);

  const percent = planForEngine(base, "flexgen", t4, {
    fixed: { policy: { percent: [0, 100, 0, 100, 100, 0], cpuAttention: true } },
    fixedBatch: { nb: 2 },
  });
  assert.deepEqual(
    [percent.policy.weights, percent.policy.cache, percent.policy.activations],
    [base.policy.weights, base.policy.cache, base.policy.activations],
  );
  assert.equal(percent.policy.numGpuBatches, 2);
  assert.equal(percent.policy.cpuAttention, true);
});

test("FlexGen: a policy FlexGen cannot run (compressed KV split over tiers) is made expressible and searched from there", () => {
  const base = basePlan("opt-1.3b", {
    gbs: 16,
    nb: 2,
    percent: [0, 100, 20, 80, 0, 100],
    compressWeight: true,
    compressCache: true,
    cpuAttention: true,
  });
  assert.throws(() =>
    predictOnEngine({ engine: "flexgen", model: base.modelSpec, hardware: t4, workload, policy: base.policy }),
  );
  const searched = planForEngine(base, "flexgen", t4);
  assert.equal(searched.predicted.feasible, true);
  assert.ok(searched.predicted.throughputTokensPerSecond > 0);
});
