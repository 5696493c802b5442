import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { ggufQuantisation } from "../../engines/llama-cpp/gguf-file-types.js";
import { llamaCppEngineMoeAdvice } from "../../engines/llama-cpp/moe-advice.js";
import { planForEngine, predictOnEngine, predictPlanOnEngine } from "../../engines/plan-for-engine.js";
import { exportPlan } from "../../exporters/export-plan.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planSync } from "../../planner/plan.js";
import { simulateEngine } from "../../simulator/simulate-engine.js";

const t4 = resolveHardware("t4");
const workload = { promptLen: 512, genLen: 32 };

test("a 4-bit MoE plan on llama.cpp: simulate --engine and export --to llama.cpp score the same Q4_K_M file and --n-cpu-moe", () => {
  const plan = planSync({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: t4,
    workload,
    experts: { batchSize: 1 },
  });
  assert.equal(plan.policy.experts?.bits, 4);
  const onLlamaCpp = predictPlanOnEngine(plan, "llama.cpp", t4);
  const exported = exportPlan(plan, "llama.cpp", { hardware: t4 });
  assert.equal(exported.engineKnobs?.ggufType, "Q4_K_M");
  assert.equal(exported.engineKnobs?.nCpuMoe, plan.llamaCpp?.nCpuMoe);
  assert.equal(onLlamaCpp.throughputTokensPerSecond, exported.predicted?.throughputTokensPerSecond);
  assert.equal(
    simulateEngine(plan, t4, { engine: "llama.cpp" }).predictedThroughputTokensPerSecond,
    onLlamaCpp.throughputTokensPerSecond,
  );
  // Not llama.cpp's 16-bit default, which would hold 87 GiB of weights.
  const f16 = predictOnEngine({
    engine: "llama.cpp",
    model: plan.modelSpec,
    hardware: t4,
    workload,
    policy: plan.policy,
  });
  assert.notEqual(f16.throughputTokensPerSecond, onLlamaCpp.throughputTokensPerSecond);
});

test("a dense plan's precision picks the GGUF type llama.cpp replays it with", async () => {
  await loadLpSolvers();
  const model = findCatalogueModel("llama-2-7b")!;
  const hardware = resolveHardware("rtx3060");
  for (const compressWeight of [false, true]) {
    const plan = planSync({ model, hardware, workload, fixed: { compressWeight } });
    assert.equal(ggufQuantisation(plan), compressWeight ? "Q4_K_M" : "F16");
    const replayed = predictPlanOnEngine(plan, "llama.cpp", hardware);
    const withType = predictOnEngine({
      engine: "llama.cpp",
      model,
      hardware,
      workload,
      policy: plan.policy,
      knobs: { ggufType: ggufQuantisation(plan) },
    });
    assert.equal(replayed.throughputTokensPerSecond, withType.throughputTokensPerSecond);
  }
});

test("export --to llama.cpp --hardware of another machine recomputes --n-cpu-moe there and says so", () => {
  const mixtral = findCatalogueModel("mixtral-8x7b")!;
  const plan = planSync({ model: mixtral, hardware: t4, workload, experts: { batchSize: 1 } });
  const rtx3060 = resolveHardware("rtx3060");
  const there = llamaCppEngineMoeAdvice(mixtral, rtx3060, workload);
  assert.notEqual(there.nCpuMoe, plan.llamaCpp?.nCpuMoe);
  const exported = exportPlan(plan, "llama.cpp", { hardware: rtx3060 });
  assert.equal(exported.engineKnobs?.nCpuMoe, there.nCpuMoe);
  assert.match(exported.text, /--n-cpu-moe recomputed on the rtx3060 profile \(the plan's advice is for t4\)/);
  // On the plan's own profile the plan's advice stands.
  assert.equal(exportPlan(plan, "llama.cpp", { hardware: t4 }).engineKnobs?.nCpuMoe, plan.llamaCpp?.nCpuMoe);
});

test("plan --engine llama.cpp for an MoE model is never slower on the engine's model than the plan's own llama.cpp advice", () => {
  const mixtral = findCatalogueModel("mixtral-8x7b")!;
  const rtx4090 = resolveHardware("rtx4090");
  const base = planSync({ model: mixtral, hardware: rtx4090, workload, experts: { batchSize: 1 } });
  const advice = base.llamaCpp!;
  const atAdvice = predictOnEngine({
    engine: "llama.cpp",
    model: mixtral,
    hardware: rtx4090,
    workload,
    policy: base.policy,
    knobs: { ggufType: advice.ggufType!, nGpuLayers: advice.nGpuLayers, nCpuMoe: advice.nCpuMoe! },
  });
  assert.ok(atAdvice.feasible);
  const onLlamaCpp = planForEngine(base, "llama.cpp", rtx4090, { fixedBatch: { gbs: 1, nb: 1 } });
  assert.ok(
    onLlamaCpp.predicted.throughputTokensPerSecond >= atAdvice.throughputTokensPerSecond - 1e-9,
    `${onLlamaCpp.predicted.throughputTokensPerSecond} < ${atAdvice.throughputTokensPerSecond} at ${JSON.stringify(onLlamaCpp.engineKnobs)}`,
  );
});
