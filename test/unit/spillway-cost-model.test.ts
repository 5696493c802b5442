import assert from "node:assert/strict";
import { test } from "node:test";
import { withCapacities } from "../../core/hardware-profile.js";
import { totalWeightBytes } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { cacheSequences, flexgenLayerWeightBytes, realizedPolicy } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { GIB } from "../../core/units.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { evaluate } from "../../planner/evaluate.js";
import { defaultRoutingProfile } from "../../planner/moe/default-routing.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { type RoutingProfile, uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import { plan } from "../../planner/plan.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { random, runCli } from "../helpers.js";

const t4 = resolveHardware("t4");
const rates = hardwareRates(t4);
const workload = { promptLen: 512, genLen: 32 };

function policy(p: Partial<Policy> & { w: [number, number]; c: [number, number]; h: [number, number] }): Policy {
  const tri = ([g, c]: [number, number]) => ({ gpu: g / 100, cpu: c / 100, disk: (100 - g - c) / 100 });
  return {
    gpuBatchSize: 1,
    numGpuBatches: 1,
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: true,
    pinWeight: true,
    ...p,
    weights: tri(p.w),
    cache: tri(p.c),
    activations: tri(p.h),
  };
}

test("FlexGen's per-part midpoint rule: OPT-30B --percent 20 80 puts ~8% of the weights on the GPU, 30 70 ~42%", () => {
  const model = findCatalogueModel("opt-30b")!;
  const at = (wg: number) => {
    const b = flexgenLayerWeightBytes(model, { gpu: wg / 100, cpu: 1 - wg / 100, disk: 0 }, false);
    return b.gpu / (b.gpu + b.cpu + b.disk);
  };
  assert.ok(Math.abs(at(20) - 1 / 12) < 0.003, `${at(20)}`);
  assert.ok(Math.abs(at(30) - 5 / 12) < 0.003, `${at(30)}`);
  assert.equal(at(0), 0);
  assert.ok(at(100) > 0.999);
});

test("Spillway's placement is whole tensors over the whole layer, and a realized placement realizes to itself", () => {
  const model = findCatalogueModel("opt-30b")!;
  const rand = random(3);
  for (let i = 0; i < 200; i++) {
    const g = Math.floor(rand() * 101);
    const c = Math.floor(rand() * (101 - g));
    const first = realizedPolicy(
      model,
      policy({ w: [g, c], c: [Math.floor(rand() * 101), 0], h: [100, 0], gpuBatchSize: 1 + Math.floor(rand() * 40) }),
    );
    const again = realizedPolicy(model, first);
    assert.deepEqual(again, first, `case ${i}`);
    // Fractions fall on tensor boundaries: multiples of h^2 out of 12 h^2 (biases and norms aside).
    const twelfths = first.weights.gpu * 12;
    assert.ok(Math.abs(twelfths - Math.round(twelfths)) < 0.01, `${first.weights.gpu}`);
  }
});

test("KV cache splits on whole sequences, GPU rounded down first", () => {
  assert.deepEqual(cacheSequences(8, { gpu: 0.3, cpu: 0.7, disk: 0 }), { gpu: 2, cpu: 6, disk: 0 });
  assert.deepEqual(cacheSequences(8, { gpu: 0.3, cpu: 0.3, disk: 0.4 }), { gpu: 2, cpu: 2, disk: 4 });
  assert.deepEqual(cacheSequences(1, { gpu: 0.99, cpu: 0.01, disk: 0 }), { gpu: 0, cpu: 1, disk: 0 });
});

test("a small all-GPU batch is bounded by GPU memory bandwidth, not just FLOPs (FlexGen's model has no such term)", async () => {
  const model = findCatalogueModel("opt-1.3b")!;
  const p = evaluatePolicy(model, rates, workload, policy({ w: [100, 0], c: [100, 0], h: [100, 0] }));
  const perToken = p.decodeSeconds / (workload.genLen - 1);
  const weightsOverBandwidth = totalWeightBytes(model) / rates.gpuMemoryBytesPerSecond;
  assert.ok(perToken >= weightsOverBandwidth, `${perToken} < ${weightsOverBandwidth}`);
  assert.ok(
    perToken < 3 * weightsOverBandwidth,
    `${perToken} is far above the bandwidth bound ${weightsOverBandwidth}`,
  );
  const flexgen = await plan({
    model,
    hardware: t4,
    workload,
    costModel: "flexgen",
    fixed: { gbs: 1, nb: 1, percent: [100, 0, 100, 0, 100, 0] },
  });
  assert.ok(
    flexgen.predicted.decodeSeconds / (workload.genLen - 1) < weightsOverBandwidth,
    "FlexGen's model predicts faster than memory allows",
  );
});

test("4-bit weights move 4.5/16 of the bytes across the link", () => {
  const model = findCatalogueModel("opt-13b")!;
  const base = {
    w: [0, 100] as [number, number],
    c: [100, 0] as [number, number],
    h: [100, 0] as [number, number],
    gpuBatchSize: 4,
  };
  const plain = evaluatePolicy(model, rates, workload, policy(base));
  const packed = evaluatePolicy(model, rates, workload, policy({ ...base, compressWeight: true }));
  const ratio = packed.bytes.h2d / plain.bytes.h2d;
  assert.ok(Math.abs(ratio - 4.5 / 16) < 0.01, `${ratio}`);
  assert.ok(packed.busySeconds.gpu > plain.busySeconds.gpu, "dequantisation costs GPU time");
});

test("the spillway schedule is never slower than FlexGen's per-step sync, and no-overlap is slowest", () => {
  const rand = random(11);
  const models = ["opt-6.7b", "opt-30b", "opt-175b", "llama-2-70b", "mixtral-8x7b"];
  for (let i = 0; i < 40; i++) {
    const model = findCatalogueModel(models[Math.floor(rand() * models.length)]!)!;
    const split = () => {
      const g = Math.floor(rand() * 101);
      return [g, Math.floor(rand() * (101 - g))] as [number, number];
    };
    const p = policy({
      w: split(),
      c: split(),
      h: rand() < 0.5 ? [100, 0] : [0, 100],
      gpuBatchSize: 1 + Math.floor(rand() * 64),
      numGpuBatches: 1 + Math.floor(rand() * 16),
      compressWeight: rand() < 0.5,
      compressCache: rand() < 0.5,
      cpuAttention: rand() < 0.5,
    });
    const spillway = evaluatePolicy(model, rates, workload, p, "spillway");
    const flexgen = evaluatePolicy(model, rates, workload, p, "flexgen");
    const serial = evaluatePolicy(model, rates, workload, { ...p, overlap: false }, "spillway");
    assert.ok(spillway.totalSeconds <= flexgen.totalSeconds * (1 + 1e-9), `case ${i}`);
    assert.ok(flexgen.totalSeconds <= serial.totalSeconds * (1 + 1e-9), `case ${i}`);
    assert.deepEqual(spillway.bytes, flexgen.bytes, "the schedule changes timing, not traffic");
  }
});

test("a given policy that does not fit still gets a throughput, with feasible false and why", async () => {
  const result = await plan({
    model: findCatalogueModel("opt-66b")!,
    hardware: t4,
    workload,
    fixed: { gbs: 16, nb: 4, percent: [100, 0, 100, 0, 100, 0] },
  });
  assert.equal(result.predicted.feasible, false);
  assert.ok(result.predicted.throughputTokensPerSecond > 0);
  assert.match(result.predicted.infeasibleReasons[0]!, /gpu peak .* exceeds its capacity 15\.00 GiB/);
  assert.equal(result.search.scored, true);
});

test("property: every plan returned as feasible satisfies its own memory and placement constraints", async () => {
  const rand = random(2024);
  const names = [
    "opt-125m",
    "opt-1.3b",
    "opt-6.7b",
    "opt-13b",
    "opt-30b",
    "opt-66b",
    "opt-175b",
    "llama-2-7b",
    "llama-2-70b",
    "mistral-7b",
    "mixtral-8x7b",
  ];
  const profiles = ["t4", "rtx3060", "rtx3090", "a100-80g", "v100"];
  let feasiblePlans = 0;
  for (let i = 0; i < 14; i++) {
    const model = findCatalogueModel(names[Math.floor(rand() * names.length)]!)!;
    const base = resolveHardware(profiles[Math.floor(rand() * profiles.length)]!);
    const hardware = withCapacities(base, {
      gpu: (2 + rand() * 30) * GIB,
      cpu: (8 + rand() * 300) * GIB,
      disk: (50 + rand() * 2000) * GIB,
    });
    const w = { promptLen: 16 + Math.floor(rand() * 1000), genLen: 1 + Math.floor(rand() * 128) };
    const costModel = rand() < 0.3 && model.family === "opt" ? "flexgen" : "spillway";
    let result;
    try {
      result = await plan({ model, hardware, workload: w, costModel });
    } catch (error) {
      assert.match((error as Error).message, /no policy fits|finds no feasible policy/, `case ${i}`);
      continue;
    }
    const p = result.policy;
    for (const placement of [p.weights, p.cache, p.activations]) {
      for (const x of [placement.gpu, placement.cpu, placement.disk])
        assert.ok(x >= -1e-9 && x <= 1 + 1e-9, `case ${i}: fraction ${x}`);
      assert.ok(Math.abs(placement.gpu + placement.cpu + placement.disk - 1) < 1e-6, `case ${i}: fractions sum`);
    }
    assert.equal(result.predicted.feasible, true);
    const cap = result.predicted.capacityBytes;
    const alpha = costModel === "flexgen" ? 0.8 : 1;
    for (const tier of ["gpu", "cpu", "disk"] as const) {
      assert.ok(
        result.predicted.peakBytes[tier] <= cap[tier] * alpha * (1 + 1e-6),
        `case ${i} (${costModel}, ${model.name}): ${tier} peak ${result.predicted.peakBytes[tier]} > ${cap[tier] * alpha}`,
      );
    }
    if (costModel === "spillway") {
      // The policy is already realized: whole sequences per batch, one activation tier, and scoring it again changes nothing.
      const seqs = p.cache.gpu * p.gpuBatchSize;
      assert.ok(Math.abs(seqs - Math.round(seqs)) < 1e-9, `case ${i}: ${seqs} GPU sequences`);
      assert.equal([p.activations.gpu, p.activations.cpu, p.activations.disk].filter((x) => x === 1).length, 1);
      // plan() costs expert policies with the model's default routing when given none: so does this.
      const again = evaluate({
        model,
        rates: hardwareRates(hardware),
        workload: w,
        policy: p,
        ...(p.experts ? { routing: defaultRoutingProfile(model) } : {}),
      });
      assert.ok(
        Math.abs(again.throughputTokensPerSecond - result.predicted.throughputTokensPerSecond) <
          1e-9 * again.throughputTokensPerSecond,
      );
      assert.deepEqual(again.peakBytes, result.predicted.peakBytes);
    }
    feasiblePlans++;
  }
  assert.ok(feasiblePlans >= 8, `only ${feasiblePlans} feasible plans: the generator is too harsh to test anything`);
});

test("spillway plan with no arguments prints the default OPT-175B T4 plan", () => {
  const out = runCli(["plan"]);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /Plan for opt-175b on t4 \(prompt 512, generate 32\), spillway cost model/);
  assert.match(out.stdout, /throughput\s+[\d.]+ token\/s/);
  assert.match(out.stdout, /peak memory\s+GPU [\d.]+ GiB \/ 15\.00 GiB/);
  assert.match(out.stdout, /bottleneck\s+\S/);
  assert.match(
    out.stdout,
    /FlexGen flags: --model facebook\/opt-175b --gpu-batch-size \d+ --num-gpu-batches \d+ --percent( \d+){6}/,
  );
});

test("evaluate() needs routing for an expert policy, and evaluatePolicy() refuses one rather than assume a routing", async () => {
  const model = findCatalogueModel("mixtral-8x7b")!;
  const hardware = resolveHardware("t4");
  const workload = { promptLen: 64, genLen: 8 };
  const moePlan = await plan({ model, hardware, workload });
  assert.ok(moePlan.policy.experts);
  const rates = hardwareRates(hardware);
  assert.throws(() => evaluatePolicy(model, rates, workload, moePlan.policy), /routing profile/);
  assert.throws(() => evaluate({ model, rates, workload, policy: moePlan.policy }), /pass `routing`/);
  const scored = evaluate({ model, rates, workload, policy: moePlan.policy, routing: defaultRoutingProfile(model) });
  assert.equal(scored.throughputTokensPerSecond, moePlan.predicted.throughputTokensPerSecond);
  // The caller's routing is the one costed: no temporal locality means fewer cache hits, so a policy
  // that caches experts is slower (the plan's own may cache none: then only the guesses' recall differs).
  const cached = moePolicy(model, 1, { ...moePlan.policy.experts!, cacheSize: 2, prefetchExperts: 0 }, false);
  const withRouting = (routing: RoutingProfile) => evaluate({ model, rates, workload, policy: cached, routing });
  const uniform = withRouting(uniformRoutingProfile(model.moe!));
  const usual = withRouting(defaultRoutingProfile(model));
  assert.ok(
    uniform.throughputTokensPerSecond < usual.throughputTokensPerSecond,
    `uniform ${uniform.throughputTokensPerSecond} vs default ${usual.throughputTokensPerSecond}`,
  );
});
