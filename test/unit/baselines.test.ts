import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { parsePlan as parsePlanFile } from "../../core/parse-plan.js";
import type { Plan } from "../../core/plan.js";
import type { LayerGroup, Policy } from "../../core/policy.js";
import { realizePlacement } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { predictOnEngine } from "../../engines/plan-for-engine.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import {
  accelerateBaseline,
  deepspeedZeroBaseline,
  flexgenBaseline,
  llamaCppBaseline,
  SMALL_BATCHES,
} from "../../planner/baselines.js";
import { type FixedPolicy, PlanError, plan } from "../../planner/plan.js";
import { run } from "../../runtime/run.js";
import { simulate } from "../../simulator/simulate.js";
import { runCli } from "../helpers.js";

const request = {
  model: findCatalogueModel("opt-30b")!,
  hardware: resolveHardware("t4"),
  workload: { promptLen: 512, genLen: 32 },
};

test("deepspeed-zero baseline: every weight off the GPU, KV and activations on it, one batch, the largest that fits", async () => {
  const b = await deepspeedZeroBaseline(request);
  const p = b.plan!;
  assert.equal(p.predicted.feasible, true);
  assert.equal(p.policy.weights.gpu, 0);
  assert.equal(p.policy.cache.gpu, 1);
  assert.equal(p.policy.activations.gpu, 1);
  assert.equal(p.policy.numGpuBatches, 1);
  assert.equal(p.policy.compressWeight || p.policy.compressCache || p.policy.cpuAttention, false);
  const bigger = await plan({
    ...request,
    fixed: {
      gbs: p.policy.gpuBatchSize + 1,
      nb: 1,
      percent: [0, 100, 100, 0, 100, 0],
      overlap: true,
      pinWeight: true,
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
    },
  });
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
  assert.match(
    text.stdout,
    /Baselines: "model" is Spillway's cost model for every row; "engine" is each on the engine/,
  );
  // name, batch, token/s on Spillway's model, token/s on its own engine's model, engine vs plan
  for (const name of ["spillway", "deepspeed-zero", "flexgen"])
    assert.match(text.stdout, new RegExp(`\\n  ${name} +\\d+x\\d+ +[\\d.]+ +[\\d.]+ +[\\d.]+x`));
  const json = runCli([...args, "--json"]);
  const out = JSON.parse(json.stdout) as {
    predicted: { throughputTokensPerSecond: number };
    modelSpec: Plan["modelSpec"];
    workload: Plan["workload"];
    baselines: {
      name: string;
      engine: string;
      policy: Policy;
      predicted: { throughputTokensPerSecond: number };
      enginePrediction?: { engine: string; throughputTokensPerSecond: number; feasible: boolean };
      engineReason?: string;
    }[];
  };
  // Each baseline on the engine it stands for: the same prediction the engine model gives its policy.
  assert.deepEqual(
    out.baselines.map((b) => b.engine),
    ["accelerate", "deepspeed", "llama.cpp", "flexgen"],
  );
  for (const b of out.baselines.filter((x) => x.engine !== "llama.cpp")) {
    const direct = predictOnEngine({
      engine: b.engine as "flexgen",
      model: out.modelSpec,
      hardware: resolveHardware("t4"),
      workload: out.workload,
      policy: b.policy,
    });
    assert.equal(b.enginePrediction?.throughputTokensPerSecond, direct.throughputTokensPerSecond, b.name);
    assert.equal(b.enginePrediction?.feasible, direct.feasible, b.name);
  }
  assert.match(out.baselines.find((b) => b.engine === "llama.cpp")!.engineReason ?? "", /no OPT architecture/);
  assert.deepEqual(
    out.baselines.map((b) => b.name),
    ["accelerate", "deepspeed-zero", "llama.cpp", "flexgen"],
  );
  // Spillway's search covers the uniform baselines' policies, so neither beats its plan.
  for (const b of out.baselines.filter((x) => x.name === "deepspeed-zero" || x.name === "flexgen")) {
    assert.ok(b.predicted.throughputTokensPerSecond <= out.predicted.throughputTokensPerSecond * (1 + 1e-9), b.name);
  }
});

/** The same fixed policy with different layer groups. */
function regrouped(p: Plan, layerGroups: LayerGroup[]): FixedPolicy {
  const q = p.policy;
  return {
    gbs: q.gpuBatchSize,
    nb: q.numGpuBatches,
    percent: [0, 100, 100, 0, 100, 0],
    compressWeight: q.compressWeight,
    compressCache: q.compressCache,
    cpuAttention: q.cpuAttention,
    overlap: q.overlap,
    pinWeight: q.pinWeight,
    embeddings: q.embeddings!,
    layerGroups,
  };
}

const onlyTier = (w: Policy["weights"]) => (["gpu", "cpu", "disk"] as const).find((t) => w[t] === 1);

test("accelerate baseline: whole layers only, GPU first then CPU then disk, filled until one more layer would not fit", async () => {
  const p = (await accelerateBaseline(request)).plan!;
  const groups = p.policy.layerGroups!;
  assert.equal(p.predicted.feasible, true);
  // Never a layer split across tiers: every group's weights sit on exactly one tier, in device-map order.
  const tiers = groups.map((g) => onlyTier(g.weights));
  assert.ok(
    tiers.every((t) => t !== undefined),
    JSON.stringify(groups),
  );
  assert.deepEqual(
    tiers,
    ["gpu", "cpu", "disk"].filter((t) => tiers.includes(t as "gpu")),
  );
  assert.ok(groups.every((g) => g.compute === "gpu"));
  assert.equal(
    groups.reduce((n, g) => n + g.layers, 0),
    request.model.numLayers,
  );
  assert.equal(p.policy.cache.gpu, 1);
  assert.equal(p.policy.activations.gpu, 1);
  assert.equal(p.policy.numGpuBatches, 1);
  assert.ok((SMALL_BATCHES as readonly number[]).includes(p.policy.gpuBatchSize));
  assert.equal(p.policy.overlap, false, "weights are fetched when a layer runs");
  const gpuLayers = groups.find((g) => g.weights.gpu === 1)?.layers ?? 0;
  assert.ok(gpuLayers > 0 && gpuLayers < request.model.numLayers, `OPT-30B fp16 fits partly on a T4: ${gpuLayers}`);
  const offGpu = request.model.numLayers - gpuLayers - 1;
  const more = await plan({
    ...request,
    fixed: regrouped(p, [
      { layers: gpuLayers + 1, weights: { gpu: 1, cpu: 0, disk: 0 }, compute: "gpu" },
      { layers: offGpu, weights: { gpu: 0, cpu: 1, disk: 0 }, compute: "gpu" },
    ]),
  });
  assert.ok(more.predicted.peakBytes.gpu > more.predicted.capacityBytes.gpu, "one more layer on the GPU does not fit");
});

test("llama.cpp baseline: the last N layers on the GPU, the rest computed on the CPU in place, the largest N that fits", async () => {
  const p = (await llamaCppBaseline(request)).plan!;
  const [cpu, gpu] = p.policy.layerGroups!;
  assert.equal(p.predicted.feasible, true);
  assert.deepEqual(
    [cpu!.compute, onlyTier(cpu!.weights), gpu!.compute, onlyTier(gpu!.weights)],
    ["cpu", "cpu", "gpu", "gpu"],
  );
  assert.equal(cpu!.layers + gpu!.layers, request.model.numLayers);
  const more = await plan({
    ...request,
    fixed: regrouped(p, [
      { layers: cpu!.layers - 1, weights: cpu!.weights, compute: "cpu" },
      { layers: gpu!.layers + 1, weights: gpu!.weights, compute: "gpu" },
    ]),
  });
  assert.ok(more.predicted.peakBytes.gpu > more.predicted.capacityBytes.gpu, "-ngl N+1 does not fit");
  // No weight or KV traffic: the links carry the LM head's table each token step, the hidden state
  // across the CPU-GPU boundary and back, and the generated tokens.
  const { promptLen: s, genLen: n } = request.workload;
  const h = request.model.hiddenSize;
  const gbs = p.policy.gpuBatchSize;
  const realized = realizePlacement(request.model, { ...p.policy, weights: gpu!.weights });
  const hiddenBytes = gbs * (s + n - 1) * h * 2;
  const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * b, `${what}: ${a} vs ${b}`);
  close(
    p.predicted.bytes.h2d,
    n * (realized.embeddingBytes.cpu + realized.embeddingBytes.disk) + hiddenBytes,
    "host->GPU",
  );
  close(p.predicted.bytes.d2h, hiddenBytes + n * gbs * 4, "GPU->host");
  assert.equal(p.predicted.bytes.diskRead, 0);
  assert.ok(p.predicted.busySeconds.cpu! > p.predicted.busySeconds.gpu!, "the CPU layers dominate");
});

test("per-layer baselines simulate as planned: same traffic per link, same throughput, nothing overflows", async () => {
  for (const baseline of [await accelerateBaseline(request), await llamaCppBaseline(request)]) {
    const p = baseline.plan!;
    const sim = simulate(p, request.hardware, { schedule: p.schedule, capacityBytes: p.predicted.capacityBytes });
    assert.equal(sim.overflow, undefined, baseline.name);
    for (const link of ["h2d", "d2h", "diskRead", "diskWrite"] as const) {
      assert.ok(
        Math.abs(sim.bytes[link] - p.predicted.bytes[link]) <= 1e-6 * Math.max(1, p.predicted.bytes[link]),
        `${baseline.name} ${link}`,
      );
    }
    const error = Math.abs(sim.throughputTokensPerSecond / p.predicted.throughputTokensPerSecond - 1);
    assert.ok(
      error < 0.02,
      `${baseline.name}: simulated ${sim.throughputTokensPerSecond} vs planned ${p.predicted.throughputTokensPerSecond}`,
    );
    assert.ok(
      sim.peakBytes.gpu <= p.predicted.peakBytes.gpu * (1 + 1e-9),
      `${baseline.name}: the planner's GPU peak bounds the simulation's`,
    );
  }
});

test("per-layer plans: plan files validate their layer groups, and the runtime refuses them clearly", async () => {
  const p = (await llamaCppBaseline(request)).plan!;
  const file = JSON.parse(JSON.stringify(p)) as Record<string, unknown> & {
    policy: { layerGroups: { layers: number; compute: string; weights: unknown }[] };
  };
  assert.deepEqual(parsePlanFile(file, "plan.json").policy.layerGroups, p.policy.layerGroups);
  const bad = (edit: (f: typeof file) => void, pattern: RegExp) => {
    const copy = JSON.parse(JSON.stringify(file)) as typeof file;
    edit(copy);
    assert.throws(
      () => parsePlanFile(copy, "plan.json"),
      (e: unknown) => e instanceof InputError && pattern.test(e.message),
      pattern.source,
    );
  };
  bad((f) => {
    f.policy.layerGroups[0]!.layers += 1;
  }, /plan\.json.*policy\.layerGroups.*cover 49 layers; opt-30b has 48/);
  bad((f) => {
    f.policy.layerGroups[0]!.weights = { gpu: 1, cpu: 0, disk: 0 };
  }, /policy\.layerGroups\[0\]\.weights.*host memory/);
  bad((f) => {
    f.policy.layerGroups[1]!.compute = "tpu";
  }, /policy\.layerGroups\[1\]\.compute/);
  bad((f) => {
    f.policy.layerGroups = [] as never;
  }, /policy\.layerGroups.*non-empty array/);
  await assert.rejects(
    run(p, request.hardware, {
      weightsDir: "/nonexistent",
      schedule: "spillway",
      capacityBytes: p.predicted.capacityBytes,
    }),
    (e: unknown) => e instanceof PlanError && /per-layer placement/.test(e.message),
  );
});

test("flexgen baseline for a model FlexGen cannot run: a reason, not a crash", async () => {
  const b = await flexgenBaseline({ ...request, model: findCatalogueModel("llama-2-7b")! });
  assert.equal(b.plan, undefined);
  assert.match(b.reason!, /FlexGen runs OPT models only; llama-2-7b is a llama model/);
});

test("a batch the user fixed holds for every baseline: one-batch engines serve gbs x nb sequences at once, FlexGen's search keeps gbs and nb", async () => {
  const request13 = { ...request, model: findCatalogueModel("opt-13b")! };
  const fixed = { gbs: 4, nb: 2 };
  const blocks = await Promise.all([
    accelerateBaseline(request13, fixed),
    deepspeedZeroBaseline(request13, fixed),
    llamaCppBaseline(request13, fixed),
  ]);
  for (const b of blocks) {
    assert.ok(b.plan, `${b.name}: ${b.reason}`);
    assert.deepEqual([b.plan.policy.gpuBatchSize, b.plan.policy.numGpuBatches], [8, 1], b.name);
    assert.match(b.description, /batch 8 \(fixed for the plan\)/);
  }
  // Without the fixed batch, ZeRO-Inference takes the largest batch that fits: more than 8 sequences here.
  assert.ok((await deepspeedZeroBaseline(request13)).plan!.policy.gpuBatchSize > 8);
  const flex = await flexgenBaseline(request13, fixed);
  assert.deepEqual([flex.plan!.policy.gpuBatchSize, flex.plan!.policy.numGpuBatches], [4, 2]);
  const own = await plan({ ...request13, costModel: "flexgen", fixed });
  for (const key of ["compressWeight", "compressCache", "cpuAttention"] as const)
    assert.equal(flex.plan!.policy[key], own.policy[key], key);
});

test("FlexGen's search failing at a fixed batch is the baseline's reason, not a failed comparison", async () => {
  // At one sequence FlexGen's LP (alpha-relaxed memory) keeps OPT-30B's weights on the T4, which Spillway's exact
  // allocation cannot fit: plan() throws a PlanError, which the baseline reports.
  const b = await flexgenBaseline(request, { gbs: 1, nb: 1 });
  assert.equal(b.plan, undefined);
  assert.match(b.reason ?? "", /FlexGen's LP finds no policy .* gbs 1 x nb 1, does not fit/);
  await assert.rejects(plan({ ...request, costModel: "flexgen", fixed: { gbs: 1, nb: 1 } }), PlanError);
});

test("plan --compare with --batch-size 1 compares each engine decoding one sequence, and says so", () => {
  const args = ["plan", "--model", "mixtral-8x7b", "--hardware", "rtx4090", "--batch-size", "1", "--compare"];
  const text = runCli(args);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /each serving the plan's fixed batch of 1 sequence at once/);
  for (const name of ["spillway", "accelerate", "deepspeed-zero", "llama.cpp"])
    assert.match(text.stdout, new RegExp(`\\n  ${name} +1x1 `), name);
  const json = JSON.parse(runCli([...args, "--json"]).stdout) as { baselines: { name: string; policy?: Policy }[] };
  for (const b of json.baselines.filter((x) => x.policy))
    assert.equal(b.policy!.gpuBatchSize * b.policy!.numGpuBatches, 1, b.name);
});
