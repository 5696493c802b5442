import assert from "node:assert/strict";
import { test } from "node:test";
import { type ExpertPolicy, storedBytes } from "../../core/expert-policy.js";
import { withCapacities } from "../../core/hardware-profile.js";
import { parsePlan as parsePlanFile } from "../../core/parse-plan.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { formatBytes } from "../../core/units.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import {
  evaluateMoePolicy,
  moeRoutingBytes,
  moeStepModel,
  routedExpertParams,
} from "../../planner/moe/evaluate-moe-policy.js";
import { llamaCppMoeAdvice } from "../../planner/moe/llama-cpp-moe.js";
import { type FixedExperts, moePolicy, smallestMoeGpuBytes } from "../../planner/moe/moe-search.js";
import { expectedHitRate, type RoutingProfile, uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import { planSync } from "../../planner/plan.js";
import { PlanError } from "../../planner/plan-error.js";
import { hardwareRates, matmulSecondsPerWeight } from "../../planner/spillway/hardware-rates.js";
import { cudaMoeDeviceBytes, moePassShape } from "../../runtime/moe/device-budget.js";
import { run } from "../../runtime/run.js";
import { runCli } from "../helpers.js";
import { BASE_EXPERT_POLICY } from "../moe-fixture.js";

const mixtral = findCatalogueModel("mixtral-8x7b")!;
const moe = mixtral.moe!;
const rates = hardwareRates(resolveHardware("t4"));
const workload = { promptLen: 64, genLen: 8 };
/** A routing profile with locality: LRU and popularity beat chance, guesses are right 90% of the time. */
const sticky: RoutingProfile = {
  lruHitRate: [0, 0.17, 0.34, 0.47, 0.59, 0.69, 0.79, 0.89, 1],
  topShare: [0, 0.18, 0.33, 0.46, 0.58, 0.69, 0.8, 0.9, 1],
  speculativeRecall: [0.9, 0.85],
  source: "test profile",
};
const base: ExpertPolicy = BASE_EXPERT_POLICY;
const evaluate = (x: Partial<ExpertPolicy>, batch = 1, profile = sticky) =>
  evaluateMoePolicy(mixtral, rates, workload, moePolicy(mixtral, batch, { ...base, ...x }, false), profile);
const expertBytes = storedBytes(routedExpertParams(mixtral, moe), 4);

test("MoE cost model: every expert moved is counted once on the link, and more slots mean more hits and fewer fetches", () => {
  const L = mixtral.numLayers;
  // Batch 1: the prompt's rows in prefill, one row per decode step, in every layer.
  const routingUp =
    L * (moeRoutingBytes(moe, base, workload.promptLen).up + (workload.genLen - 1) * moeRoutingBytes(moe, base, 1).up);
  let previous: ReturnType<typeof evaluate> | undefined;
  for (let slots = 0; slots <= moe.numExperts; slots++) {
    const p = evaluate({ cacheSize: slots });
    const e = p.experts;
    // Decode traffic: every fetched expert (on demand, prefetched or wasted) crosses PCIe once; prefill
    // fetches every non-resident expert of every layer once.
    const decodeSteps = workload.genLen - 1;
    const prefillFetched = L * moe.numExperts * (1 - slots / moe.numExperts);
    const moved =
      L * decodeSteps * (e.demandFetchesPerLayer + e.prefetchedPerLayer + e.wastedPrefetchesPerLayer) + prefillFetched;
    // Beside the experts, each layer's gate weights go up once per step (the routing round trip).
    const expected = moved * expertBytes + routingUp;
    assert.ok(
      Math.abs(p.bytes.h2d - expected) <= 1e-6 * Math.max(1, p.bytes.h2d),
      `slots ${slots}: ${p.bytes.h2d} vs ${expected}`,
    );
    if (previous) {
      assert.ok(e.expectedHitRate >= previous.experts.expectedHitRate, `slots ${slots}: hit rate`);
      assert.ok(e.demandFetchesPerLayer <= previous.experts.demandFetchesPerLayer + 1e-12, `slots ${slots}: fetches`);
      // One more slot per layer costs exactly one more expert per layer on the GPU (the staging block goes once every expert is resident).
      const grown = p.peakBytes.gpu - previous.peakBytes.gpu;
      const expected = slots === moe.numExperts ? L * expertBytes - expertBytes : L * expertBytes;
      assert.ok(Math.abs(grown - expected) < 1, `slots ${slots}: GPU grows by ${grown}, expected ${expected}`);
    }
    previous = p;
  }
  const all = evaluate({ cacheSize: moe.numExperts });
  assert.equal(all.bytes.h2d, routingUp, "every expert resident: nothing to fetch, only the gate weights go up");
  assert.equal(all.experts.expectedHitRate, 1);
});

test("MoE cost model: CPU experts move activations, not weights; prefetch hides fetches behind compute", () => {
  const fetch = evaluate({ compute: "gpu" });
  const cpu = evaluate({ compute: "cpu" });
  assert.ok(cpu.experts.cpuComputedPerLayer > 0 && cpu.experts.demandFetchesPerLayer === 0);
  assert.ok(cpu.bytes.h2d < fetch.bytes.h2d / 10, "decode moves no expert weights when misses compute on the CPU");
  assert.ok(cpu.busySeconds.cpu > 0);
  // auto: CPU for one token per expert in decode; the 64-token prompt gives each expert ~16 tokens: fetched.
  const auto = evaluate({ compute: "auto", cpuThresholdTokens: 7 });
  assert.equal(auto.experts.demandFetchesPerLayer, 0);
  assert.ok(auto.bytes.h2d > cpu.bytes.h2d, "the prompt's experts are fetched");

  const speculative = evaluate({ prefetchExperts: 2 });
  const pregated = evaluate({ pregated: true });
  for (const p of [speculative, pregated]) {
    assert.ok(p.experts.prefetchedPerLayer > 0);
    assert.ok(p.experts.stallSecondsPerToken < fetch.experts.stallSecondsPerToken, "prefetch shortens the stall");
  }
  // Here the link is the bottleneck (1.3 experts of 99 MB per layer per token over PCIe): hiding the
  // fetches behind compute helps a little, and speculation's wasted guesses cost link time.
  assert.ok(pregated.decodeSecondsPerToken < fetch.decodeSecondsPerToken);
  assert.ok(speculative.busySeconds.h2d > fetch.busySeconds.h2d);
  assert.equal(pregated.experts.wastedPrefetchesPerLayer, 0, "pre-gating fetches only experts that are used");
  assert.ok(speculative.experts.wastedPrefetchesPerLayer > 0, "a wrong guess wastes bandwidth");
  assert.ok(
    Math.abs(
      pregated.experts.prefetchedPerLayer /
        (pregated.experts.prefetchedPerLayer + pregated.experts.demandFetchesPerLayer) -
        (mixtral.numLayers - 1) / mixtral.numLayers,
    ) < 1e-12,
    "every layer but the first is known ahead",
  );
});

test("expected hit rate: the trace's figure for one token, tending to the resident share as batches touch every expert", () => {
  const uniform = uniformRoutingProfile(moe);
  for (let slots = 0; slots <= 8; slots++)
    assert.ok(Math.abs(expectedHitRate(uniform, moe, slots, "lru", 1) - slots / 8) < 1e-12);
  assert.equal(expectedHitRate(sticky, moe, 2, "lru", 1), 0.34);
  assert.equal(expectedHitRate(sticky, moe, 2, "static", 1), 0.33);
  assert.equal(expectedHitRate(sticky, moe, 2, "lfu", 1), 0.34);
  const big = expectedHitRate(sticky, moe, 2, "lru", 512);
  assert.ok(Math.abs(big - (0.25 + (0.34 - 0.25) * (2 / 8))) < 1e-6, `${big}`);
});

test("spillway plan for Mixtral on a T4: policy.experts and a prediction in JSON; the expert flags score a given configuration", () => {
  const searched = runCli([
    "plan",
    "--model",
    "mixtral-8x7b",
    "--hardware",
    "t4",
    "--batch-size",
    "1",
    "--prompt-len",
    "64",
    "--gen-len",
    "8",
    "--json",
  ]);
  assert.equal(searched.status, 0, searched.stderr);
  const p = JSON.parse(searched.stdout) as {
    policy: { gpuBatchSize: number; experts: ExpertPolicy };
    predicted: {
      feasible: boolean;
      throughputTokensPerSecond: number;
      peakBytes: { gpu: number };
      capacityBytes: { gpu: number };
      experts: { expectedHitRate: number };
    };
  };
  assert.equal(p.policy.gpuBatchSize, 1);
  for (const key of [
    "cacheSize",
    "eviction",
    "offloadTier",
    "bits",
    "attentionBits",
    "prefetchExperts",
    "prefetchLayers",
    "pregated",
    "compute",
  ])
    assert.ok(key in p.policy.experts, key);
  assert.ok(p.predicted.feasible && p.predicted.throughputTokensPerSecond > 0);
  assert.ok(p.predicted.peakBytes.gpu <= p.predicted.capacityBytes.gpu);
  assert.ok(p.policy.experts.cacheSize < 8, "Mixtral does not fit a T4 whole");

  const args = [
    "plan",
    "--model",
    "mixtral-8x7b",
    "--hardware",
    "rtx3060",
    "--prompt-len",
    "64",
    "--gen-len",
    "8",
    "--batch-size",
    "1",
    "--expert-cache",
    "2",
    "--expert-bits",
    "3",
    "--attention-bits",
    "4",
    "--prefetch-experts",
    "2",
    "--prefetch-layers",
    "1",
    "--expert-compute",
    "gpu",
    "--expert-eviction",
    "lfu",
    "--json",
  ];
  const scored = runCli(args);
  assert.equal(scored.status, 0, scored.stderr);
  const s = JSON.parse(scored.stdout) as { policy: { experts: ExpertPolicy }; search: { exactEvaluations: number } };
  assert.deepEqual(
    { ...s.policy.experts },
    {
      cacheSize: 2,
      eviction: "lfu",
      offloadTier: "cpu",
      bits: 3,
      attentionBits: 4,
      prefetchExperts: 2,
      prefetchLayers: 1,
      pregated: false,
      compute: "gpu",
      cpuThresholdTokens: 0,
    },
  );
  assert.ok(
    s.search.exactEvaluations <= 4,
    "a fixed configuration is scored, not searched: two KV placements, each estimated, then scored exactly",
  );
  // The plan file reads back with its expert policy.
  assert.deepEqual(parsePlanFile(JSON.parse(scored.stdout), "plan.json").policy.experts, s.policy.experts);

  const dense = runCli(["plan", "--model", "opt-1.3b", "--expert-cache", "2"]);
  assert.equal(dense.status, 2);
  assert.match(dense.stderr, /--expert-cache: opt-1\.3b is not a Mixture-of-Experts model.*mixtral-8x7b/);
  const bad = runCli(["plan", "--model", "mixtral-8x7b", "--expert-cache", "9"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--expert-cache/);
});

test("llama.cpp advice for MoE: the fewest --n-cpu-moe layers that fit, and a speed between all experts on the CPU and all on the GPU", () => {
  const profile = uniformRoutingProfile(moe);
  for (const hardware of ["t4", "rtx3060", "rtx3090"]) {
    const r = hardwareRates(resolveHardware(hardware));
    const advice = llamaCppMoeAdvice(mixtral, r, workload, profile);
    assert.equal(advice.nGpuLayers, mixtral.numLayers + 1);
    const n = advice.nCpuMoe!;
    assert.ok(n > 0 && n < mixtral.numLayers, `${hardware}: --n-cpu-moe ${n}`);
    assert.ok(advice.gpuPeakBytes! <= r.capacityBytes.gpu);
    // One layer fewer on the CPU puts one more layer's eight experts on the GPU, which no longer fits.
    assert.ok(advice.gpuPeakBytes! + 8 * expertBytes > r.capacityBytes.gpu, `${hardware}: ${n} is the fewest that fit`);
    const bigger = llamaCppMoeAdvice(
      mixtral,
      { ...r, capacityBytes: { ...r.capacityBytes, gpu: r.capacityBytes.gpu + 8 * expertBytes * 4 } },
      workload,
      profile,
    );
    assert.equal(
      bigger.nCpuMoe,
      Math.max(0, n - 4),
      "room for four more layers of experts: four layers fewer on the CPU",
    );
    assert.ok(bigger.decodeTokensPerSecond! > advice.decodeTokensPerSecond!);
  }
  const tiny = llamaCppMoeAdvice(
    mixtral,
    { ...rates, capacityBytes: { ...rates.capacityBytes, gpu: 2 ** 30 } },
    workload,
    profile,
  );
  assert.equal(tiny.nCpuMoe, undefined);
  assert.match(tiny.reason!, /lower -ngl/);
});

test("MoE cost model on a profile with measured GEMM curves: every GEMM, quantised ones by their width's curve, costs what the curve says", () => {
  const fp16Curve = [
    { rows: 1, secondsPerWeight: 1e-9 },
    { rows: 16, secondsPerWeight: 4e-9 },
  ];
  // A dequantising kernel slower per weight than the fp16 one: fewer bytes, more work per weight.
  const q4Curve = fp16Curve.map((c) => ({ rows: c.rows, secondsPerWeight: 3 * c.secondsPerWeight }));
  const measured = { ...rates, matmulCurve: fp16Curve, quantizedMatmulCurves: { 4: q4Curve } };
  const policy = (bits: 4 | 16, attentionBits: 4 | 16) =>
    moePolicy(mixtral, 4, { ...base, cacheSize: 2, bits, attentionBits }, false);
  const counts = { touched: 6, hits: 2, fetched: 3, onCpu: 1, prefetched: 0, wasted: 0, tokensPerExpert: 4 / 3 };
  const step = (r: typeof rates, bits: 4 | 16) =>
    moeStepModel(mixtral, r, workload, policy(bits, bits)).step("decode", 70, counts);
  const expertParams = routedExpertParams(mixtral, moe);
  for (const [bits, curve] of [
    [16, fp16Curve],
    [4, q4Curve],
  ] as const) {
    const s = step(measured, bits);
    const perExpert = expertParams * matmulSecondsPerWeight(curve, 4 / 3) + 3 * measured.kernelLaunchSeconds;
    assert.ok(Math.abs(s.computeSeconds.gpuExperts - 5 * perExpert) <= 1e-12 * perExpert, `${bits}-bit device experts`);
  }
  // By the roofline (no curves) 4-bit experts are cheaper than fp16 ones; by these measured kernels they cost 3x.
  assert.ok(step(rates, 4).computeSeconds.gpuExperts < step(rates, 16).computeSeconds.gpuExperts);
  const ratio = step(measured, 4).computeSeconds.gpuExperts / step(measured, 16).computeSeconds.gpuExperts;
  assert.ok(ratio > 2.5 && ratio < 3, `4-bit / fp16 device experts ${ratio}`);
  assert.ok(step(measured, 4).computeSeconds.nonExpert > step(measured, 16).computeSeconds.nonExpert);
  // A width without a curve falls back to the roofline.
  const no4 = { ...measured, quantizedMatmulCurves: {} };
  assert.equal(step(no4, 4).computeSeconds.gpuExperts, step(rates, 4).computeSeconds.gpuExperts);
  // Experts computed on the CPU: the host's own curve, where the profile has one, else the CPU roofline.
  const hostCurve = q4Curve.map((c) => ({ rows: c.rows, secondsPerWeight: 2 * c.secondsPerWeight }));
  const onHost = { ...measured, cpuQuantizedMatmulCurves: { 4: hostCurve } };
  const cpuExperts = step(onHost, 4).computeSeconds.cpuExperts;
  const expected = expertParams * matmulSecondsPerWeight(hostCurve, 4 / 3);
  assert.ok(Math.abs(cpuExperts - expected) <= 1e-12 * expected, `CPU expert ${cpuExperts} vs ${expected}`);
  assert.equal(step(measured, 4).computeSeconds.cpuExperts, step(rates, 4).computeSeconds.cpuExperts);
  assert.notEqual(cpuExperts, step(rates, 4).computeSeconds.cpuExperts);
});

test("MoE cost model on a device that shares the host's cores (the CPU backend): kernels, CPU experts and every expert copy add up, none overlaps", () => {
  const shared = { ...rates, deviceSharesHostCores: true };
  const policy = moePolicy(mixtral, 4, { ...base, cacheSize: 2, prefetchExperts: 2 }, false);
  const counts = { touched: 6, hits: 2, fetched: 3, onCpu: 1, prefetched: 2, wasted: 1, tokensPerExpert: 4 / 3 };
  for (const phase of ["decode", "prefill"] as const) {
    const apart = moeStepModel(mixtral, rates, workload, policy).step(phase, 70, counts);
    const one = moeStepModel(mixtral, shared, workload, policy).step(phase, 70, counts);
    // The same work, costed the same; only how it overlaps differs, and a GPU apart also routes through
    // the host (its router's logits and guesses down, the gate weights up).
    assert.deepEqual(one.computeSeconds, apart.computeSeconds);
    const routing = moeRoutingBytes(moe, policy.experts!, phase === "prefill" ? 4 * workload.promptLen : 4);
    assert.deepEqual(apart.bytes, { ...one.bytes, d2h: one.bytes.d2h + routing.down, h2d: one.bytes.h2d + routing.up });
    const c = one.computeSeconds;
    // Every copy (demand, prefetched, wasted: 4 experts) is a memcpy by the cores that compute, in line.
    const { expertBytes } = moeStepModel(mixtral, shared, workload, policy);
    const copy = expertBytes / shared.h2dBytesPerSecond + 3 * shared.h2dLatencySeconds;
    assert.ok(Math.abs(one.stallSeconds - 4 * copy) <= 1e-12 * one.stallSeconds, `${phase}: stall ${one.stallSeconds}`);
    const sum = c.nonExpert + c.gpuExperts + c.cpuExperts + one.stallSeconds;
    assert.ok(Math.abs(one.wallSeconds - sum) <= 1e-12 * sum, `${phase}: ${one.wallSeconds} vs ${sum}`);
    // A GPU beside a CPU overlaps its experts with the CPU's and its copies with both: shorter.
    assert.ok(apart.wallSeconds < one.wallSeconds, `${phase}: ${apart.wallSeconds} vs ${one.wallSeconds}`);
  }
});

test("an MoE plan's predicted GPU peak is what the CUDA backend allocates for its pass (activations and staging included): a GPU one byte short is refused at plan time, and run() refuses such a plan before any pass", async () => {
  const tiny = findCatalogueModel("qwen2-moe-tiny")!;
  const workload = { promptLen: 6, genLen: 5 };
  const experts: FixedExperts = {
    batchSize: 3,
    cacheSize: 2,
    eviction: "lru",
    compute: "gpu",
    bits: 4,
    attentionBits: 8,
    prefetchExperts: 2,
    prefetchLayers: 1,
    cacheOnCpu: false,
  };
  const at = (gpu: number) => withCapacities(resolveHardware("t4"), { gpu, cpu: 2 ** 30, disk: 2 ** 30 });
  const fits = planSync({ model: tiny, hardware: at(2 ** 30), workload, experts });
  const x = fits.policy.experts!;
  const counted = cudaMoeDeviceBytes(tiny, x, moePassShape(3, workload.promptLen, workload.genLen));
  assert.equal(fits.predicted.peakBytes.gpu, counted.totalBytes);
  // Beyond the weights, KV cache and experts: the decoder's activations (attention scores, routed rows,
  // logits, the shared expert's scratch) and the experts' inputs, outputs and scratch.
  assert.ok(counted.decoderActivationBytes > 0 && counted.expertActivationBytes > 0);
  const exact = planSync({ model: tiny, hardware: at(counted.totalBytes), workload, experts });
  assert.equal(exact.predicted.feasible, true);
  assert.throws(
    () => planSync({ model: tiny, hardware: at(counted.totalBytes - 1), workload, experts }),
    (error: unknown) => error instanceof PlanError && /no MoE policy fits .* activations/.test(error.message),
  );
  // Nothing fixed: the refusal names the least any candidate needs, and a GPU of exactly that is planned.
  const least = smallestMoeGpuBytes(tiny, workload, {});
  assert.ok(least < counted.totalBytes);
  assert.equal(planSync({ model: tiny, hardware: at(least), workload }).predicted.peakBytes.gpu, least);
  assert.throws(
    () => planSync({ model: tiny, hardware: at(least - 1), workload }),
    (error: unknown) =>
      error instanceof PlanError && error.message.includes(`the smallest candidate needs ${formatBytes(least)}`),
  );
  // A plan made for a larger GPU, run with a smaller one: refused before the checkpoint is even read.
  await assert.rejects(
    run(fits, at(2 ** 30), {
      weightsDir: "/no/such/checkpoint",
      capacityBytes: { gpu: counted.totalBytes - 1, cpu: 2 ** 30, disk: 2 ** 30 },
    }),
    (error: unknown) =>
      error instanceof PlanError &&
      error.message.startsWith(`the plan needs ${counted.totalBytes} bytes`) &&
      /activations .* but the run has \d+ bytes/.test(error.message),
  );
});
