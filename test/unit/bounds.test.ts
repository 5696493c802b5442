/**
 * Bounded everything (issue 18): inputs that pass validation stay within physically meaningful ranges,
 * so no LP gets a non-finite row, no prediction is feasible with a NaN peak, the search and the
 * simulator are bounded before they start, and synth-weights sizes a checkpoint before laying it out.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type PlanArgs, planRequestFromArgs } from "../../cli/plan-options.js";
import { runSimulate, type SimulateArgs } from "../../cli/simulate-command.js";
import { plainExpertPolicy } from "../../core/expert-policy.js";
import { parseHardwareProfile, withCapacities } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { parseModelSpec } from "../../core/parse-model-spec.js";
import { parsePlan } from "../../core/parse-plan.js";
import { MAX_CAPACITY_BYTES, MAX_GPU_BATCHES } from "../../core/physical-bounds.js";
import type { Plan } from "../../core/plan.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import {
  MAX_SIMULATION_TASKS,
  simulationOverBudget,
  simulationTaskBound,
  simulationTasksPerToken,
} from "../../core/simulation-budget.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { modelSpecFromHfConfig } from "../../models/hf-config.js";
import { LinearProgramBuilder } from "../../planner/lp/linear-program.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { PlanError, planSync } from "../../planner/plan.js";
import { capacityShortfalls } from "../../planner/prediction.js";
import {
  EXACT_EVALUATION_TOKEN_BUDGET,
  exactEvaluationLimit,
  MAX_LP_SOLVES_PER_SEARCH,
} from "../../planner/search-budget.js";
import { checkpointBytesLowerBound, synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { simulate } from "../../simulator/simulate.js";

const root = mkdtempSync(join(tmpdir(), "spillway-bounds-"));
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  await loadLpSolvers();
});

const t4File = JSON.parse(readFileSync(new URL("../../../profiles/t4.json", import.meta.url), "utf8"));
const inputError = (pattern: RegExp) => (e: unknown) =>
  e instanceof InputError && pattern.test(e.message) ? true : assert.fail(`unexpected: ${String(e)}`);

test("profiles with absurd rates, latencies or capacities are refused at parse time, naming the field and range", () => {
  const edited = (edit: (p: typeof t4File) => void) => {
    const p = structuredClone(t4File);
    edit(p);
    return () => parseHardwareProfile(p, "hw.json");
  };
  assert.throws(
    edited((p) => {
      p.gpu.fp16MatmulFlopsPerSecond = { datasheet: { value: 5e-324, source: "x" } };
    }),
    inputError(
      /^hw\.json: gpu\.fp16MatmulFlopsPerSecond\.datasheet\.value: expected a number >= 1000 and <= 1000000000000000000, got 5e-324$/,
    ),
  );
  assert.throws(
    edited((p) => {
      p.hostToDevice.latencySeconds = { measured: { value: 1e308, source: "x" } };
    }),
    inputError(/^hw\.json: hostToDevice\.latencySeconds\.measured\.value: expected a number >= 0 and <= 3600/),
  );
  assert.throws(
    edited((p) => {
      p.capacityBytes.cpu.value = 1e308;
    }),
    inputError(/^hw\.json: capacityBytes\.cpu\.value: expected a number >= 0 and <= 70368744177664/),
  );
  assert.throws(
    edited((p) => {
      p.disk.readBytesPerSecond = { datasheet: { value: 1e300, source: "x" } };
    }),
    inputError(/^hw\.json: disk\.readBytesPerSecond\.datasheet\.value: expected a number >= 1000/),
  );
  // The shipped profile itself is within every range.
  assert.equal(parseHardwareProfile(t4File, "t4.json").name, "t4");
});

test("plan flags beyond the physical ranges are refused naming the flag and the maximum", () => {
  const args = (extra: Record<string, string>) =>
    ({
      model: "opt-175b",
      hardware: "t4",
      "prompt-len": "512",
      "gen-len": "32",
      "cost-model": "spillway",
      schedule: "spillway",
      ...extra,
    }) as unknown as PlanArgs;
  assert.throws(
    () => planRequestFromArgs(args({ "cpu-mem": "1e6" })),
    inputError(/^--cpu-mem: expected at most 65536 GiB, got 1000000$/),
  );
  assert.throws(
    () => planRequestFromArgs(args({ "gen-len": "1000000" })),
    inputError(/^--gen-len: expected at most 131072, got 1000000$/),
  );
  assert.throws(
    () => planRequestFromArgs(args({ nb: "1e9" })),
    inputError(/^--nb: expected at most 65536, got 1000000000$/),
  );
  assert.equal(planRequestFromArgs(args({ "cpu-mem": "65536" })).hardware.capacityBytes.cpu.value, 2 ** 46);
});

const TINY_OPT = {
  name: "deep",
  family: "opt",
  numLayers: 12,
  hiddenSize: 768,
  ffnSize: 3072,
  numHeads: 12,
  vocabSize: 50272,
  maxPositions: 2048,
  ffnKind: "relu",
  tiedEmbeddings: true,
};

test("model specs and Hugging Face configs with absurd shapes are refused, naming the field and range", () => {
  assert.throws(
    () => parseModelSpec({ ...TINY_OPT, numLayers: 1e9 }, "m.json"),
    inputError(/^m\.json: numLayers: expected .*<= 100000, got 1000000000$/),
  );
  assert.throws(
    () => parseModelSpec({ ...TINY_OPT, hiddenSize: 1e308 }, "m.json"),
    inputError(/^m\.json: hiddenSize: expected/),
  );
  const hf = {
    model_type: "opt",
    num_hidden_layers: 1e9,
    hidden_size: 768,
    ffn_dim: 3072,
    num_attention_heads: 12,
    vocab_size: 50272,
    max_position_embeddings: 2048,
  };
  assert.throws(
    () => modelSpecFromHfConfig(hf, "config.json"),
    inputError(/^config\.json: num_hidden_layers: expected .*<= 100000/),
  );
  // Each field within range, but together too many parameters.
  assert.throws(
    () =>
      parseModelSpec(
        { ...TINY_OPT, numLayers: 1e5, hiddenSize: 1e6, ffnSize: 1e7, numHeads: 1000, vocabSize: 1000 },
        "m.json",
      ),
    inputError(/^m\.json: numLayers: the model would have .* parameters; expected at most 1e\+15/),
  );
});

test("the LP builder refuses a non-finite row with a PlanError naming it; a NaN peak never fits", () => {
  const lp = new LinearProgramBuilder(["x", "y"]);
  const { space } = lp;
  assert.throws(
    () => lp.add("Tpre_0", space.term(1, "x"), ">=", Infinity),
    (e: unknown) => e instanceof PlanError && /row Tpre_0 has a right-hand side Infinity/.test(e.message),
  );
  assert.throws(
    () => lp.add("Tgen_0", space.term(Number.NaN, "y"), "<=", 1),
    (e: unknown) => e instanceof PlanError && /row Tgen_0 has a coefficient NaN on y/.test(e.message),
  );
  const capacity = { gpu: 1, cpu: 1, disk: 1 };
  assert.equal(capacityShortfalls({ gpu: Number.NaN, cpu: 0, disk: 0 }, capacity).length, 1);
  assert.equal(capacityShortfalls({ gpu: 0, cpu: Infinity, disk: 0 }, capacity).length, 1);
  assert.deepEqual(capacityShortfalls({ gpu: 1, cpu: 0, disk: 0 }, capacity), []);
});

const workload = { promptLen: 64, genLen: 8 };

function opt125mPlan(gbs: number, nb: number): Plan {
  return planSync({
    model: findCatalogueModel("opt-125m")!,
    hardware: resolveHardware("t4"),
    workload,
    fixed: { gbs, nb, percent: [100, 0, 100, 0, 100, 0] },
  });
}

test("plan files are checked against their model: positions, experts, batch ranges", () => {
  const doc = JSON.parse(JSON.stringify(opt125mPlan(2, 1)));
  const fails = (edit: (d: typeof doc) => void, expected: RegExp) => {
    const copy = structuredClone(doc);
    edit(copy);
    assert.throws(() => parsePlan(copy, "p.json"), inputError(expected));
  };
  fails((d) => {
    d.workload.promptLen = 2041;
  }, /^p\.json: modelSpec\.maxPositions: the workload's prompt 2041 \+ generated 8 tokens exceed opt-125m's 2048 positions$/);
  fails((d) => {
    d.policy.gpuBatchSize = 1e300;
  }, /^p\.json: policy\.gpuBatchSize: expected/);
  fails((d) => {
    d.policy.numGpuBatches = 1e9;
  }, /^p\.json: policy\.numGpuBatches: expected .*<= 65536/);
  fails((d) => {
    d.policy.experts = plainExpertPolicy({ cacheSize: 1 });
  }, /^p\.json: policy\.experts: opt-125m is dense/);
  fails((d) => {
    d.predicted.capacityBytes.gpu = 1e300;
  }, /^p\.json: predicted\.capacityBytes\.gpu: expected/);
  fails((d) => {
    d.hardwareProfile.gpu.fp16MatmulFlopsPerSecond.datasheet.value = 5e-324;
  }, /^p\.json: hardwareProfile\.gpu\.fp16MatmulFlopsPerSecond\.datasheet\.value: expected a number >= 1000/);
});

test("a plan too large to simulate is refused up front, naming the task count and the budget", () => {
  const plan = opt125mPlan(1, MAX_GPU_BATCHES);
  const shape = { numLayers: 12, numGpuBatches: MAX_GPU_BATCHES, genLen: 8 };
  assert.ok(simulationTaskBound(shape) > MAX_SIMULATION_TASKS);
  assert.match(simulationOverBudget(shape)!, /up to 1\.44e\+7 tasks per token .* the budget is 2e\+5/);
  const t4 = resolveHardware("t4");
  assert.throws(
    () => simulate(plan, t4, { schedule: "spillway", capacityBytes: plan.predicted.capacityBytes }),
    (e: unknown) => e instanceof PlanError && /^the plan is too large to simulate: .*the budget is/.test(e.message),
  );
  // The CLI says the same as bad input (exit 2), naming the plan file and the field.
  const path = join(root, "big.json");
  writeFileSync(path, JSON.stringify(plan));
  const args = { plan: path, json: true, quiet: true, timeline: false } as unknown as SimulateArgs;
  assert.throws(
    () => runSimulate(args),
    inputError(/^.*big\.json: policy\.numGpuBatches: the plan is too large to simulate: /),
  );
  // A plan within budget simulates and reports its budget use.
  const small = opt125mPlan(2, 3);
  const result = simulate(small, t4, { schedule: "spillway", capacityBytes: small.predicted.capacityBytes });
  assert.ok(result.budget);
  assert.ok(
    result.events <= result.budget.taskBound,
    `${result.events} tasks within the bound ${result.budget.taskBound}`,
  );
  assert.equal(result.budget.taskBoundPerToken, simulationTasksPerToken({ numLayers: 12, numGpuBatches: 3 }));
});

test("the task bound bounds the tasks the simulator really issues, across schedules and placements", () => {
  const t4 = resolveHardware("t4");
  const model = findCatalogueModel("opt-125m")!;
  const percents: [number, number, number, number, number, number][] = [
    [0, 50, 0, 50, 0, 100],
    [100, 0, 100, 0, 100, 0],
    [0, 0, 0, 0, 0, 100],
  ];
  for (const percent of percents)
    for (const cpuAttention of [false, true])
      for (const schedule of ["spillway", "flexgen"] as const) {
        const plan = planSync({
          model,
          hardware: t4,
          workload,
          schedule,
          fixed: { gbs: 2, nb: 3, percent, cpuAttention, compressWeight: true },
        });
        const r = simulate(plan, t4, { schedule, capacityBytes: plan.predicted.capacityBytes });
        assert.ok(r.events <= r.budget!.taskBound, `${percent} ${cpuAttention} ${schedule}: ${r.events}`);
      }
});

test("the searches stay within their budgets and say so in the plan", () => {
  const model = findCatalogueModel("opt-1.3b")!;
  // Far more CPU memory than any machine of today.
  const hardware = withCapacities(resolveHardware("t4"), { cpu: MAX_CAPACITY_BYTES.cpu });
  for (const costModel of ["flexgen", "spillway"] as const) {
    const plan = planSync({ model, hardware, workload, costModel });
    assert.equal(plan.search.maxLpSolves, MAX_LP_SOLVES_PER_SEARCH, costModel);
    assert.equal(plan.search.lpLimitReached, false, costModel);
    assert.ok(plan.search.lpSolves <= MAX_LP_SOLVES_PER_SEARCH);
    assert.equal(plan.search.maxGpuBatches, MAX_GPU_BATCHES, costModel);
    assert.ok(plan.policy.numGpuBatches <= MAX_GPU_BATCHES, costModel);
    if (costModel === "spillway") {
      assert.equal(plan.search.maxExactEvaluations, exactEvaluationLimit(workload.genLen));
      assert.equal(plan.search.evaluationLimitReached, false);
      assert.ok(plan.search.exactEvaluations! <= plan.search.maxExactEvaluations!);
    }
  }
});

test("the exact-evaluation budget shrinks with the generated tokens, to at least one evaluation", () => {
  assert.equal(exactEvaluationLimit(32), EXACT_EVALUATION_TOKEN_BUDGET / 32);
  assert.equal(exactEvaluationLimit(131072), 3);
  assert.equal(exactEvaluationLimit(10 * EXACT_EVALUATION_TOKEN_BUDGET), 1);
});

const DEEP: ModelSpec = {
  name: "deep-opt",
  family: "opt",
  numLayers: 100_000,
  hiddenSize: 10_000,
  ffnSize: 40_000,
  numHeads: 100,
  numKvHeads: 100,
  vocabSize: 1000,
  maxPositions: 2048,
  ffnKind: "relu",
  wordEmbedDim: 10_000,
  tiedEmbeddings: true,
  bytesPerParam: 2,
};

test("synth-weights sizes a checkpoint arithmetically and refuses one over its cap before laying it out", () => {
  const dir = join(root, "deep");
  assert.throws(
    () => synthesizeOptWeights(DEEP, dir, { seed: 0 }),
    inputError(
      /^--model: deep-opt's fp16 checkpoint would take at least .* synth-weights writes checkpoints of at most 1024\.00 GiB$/,
    ),
  );
  assert.equal(existsSync(dir), false, "nothing is created");
  const tiny: ModelSpec = {
    ...DEEP,
    name: "tiny",
    numLayers: 2,
    hiddenSize: 64,
    ffnSize: 256,
    numHeads: 4,
    numKvHeads: 4,
    wordEmbedDim: 64,
    maxPositions: 128,
  };
  const result = synthesizeOptWeights(tiny, join(root, "tiny"), { seed: 0 });
  const tensorBytes = checkpointBytesLowerBound(tiny);
  assert.ok(tensorBytes <= result.bytes && result.bytes < tensorBytes + 64 * 1024, `${tensorBytes} vs ${result.bytes}`);
});
