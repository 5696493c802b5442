/**
 * The FlexGen engine model: its placement rule, its schedule's structure, and its predictions against
 * FlexGen's own published single-T4 results. The published figures below are validation data only:
 * no rate in profiles/t4.json or constant in engines/flexgen/ is derived from them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Policy } from "../../core/policy.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import type { EngineOperation, EnginePrediction } from "../../engines/engine-model.js";
import { engineModel } from "../../engines/engines.js";
import { flexgenSetup } from "../../engines/flexgen/setup.js";
import { kernelLaunches } from "../../engines/host-dispatch.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import { replayStep } from "../../engines/step-schedule.js";
import { stepLowerBoundSeconds, stepTime } from "../../engines/step-time.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { replayEngine } from "../../simulator/replay-engine.js";

const t4 = resolveHardware("t4");
const flexgen = engineModel("flexgen");

/** FlexGen's six --percent integers and flags as a policy. */
function policy(
  percent: readonly number[],
  gbs: number,
  nb: number,
  flags: {
    cpu?: boolean;
    compressWeight?: boolean;
    compressCache?: boolean;
    overlap?: boolean;
    pinWeight?: boolean;
  } = {},
): Policy {
  const tri = (g: number, c: number) => ({ gpu: g / 100, cpu: c / 100, disk: Math.max(0, 100 - g - c) / 100 });
  return {
    gpuBatchSize: gbs,
    numGpuBatches: nb,
    weights: tri(percent[0]!, percent[1]!),
    cache: tri(percent[2]!, percent[3]!),
    activations: tri(percent[4]!, percent[5]!),
    compressWeight: flags.compressWeight ?? false,
    compressCache: flags.compressCache ?? false,
    cpuAttention: flags.cpu ?? false,
    overlap: flags.overlap ?? true,
    pinWeight: flags.pinWeight ?? true,
  };
}

function predict(model: string, promptLen: number, p: Policy, fewerBatch: boolean): EnginePrediction {
  return flexgen.predict({
    model: findCatalogueModel(model)!,
    hardware: t4,
    workload: { promptLen, genLen: 32 },
    policy: p,
    knobs: { fewerBatch },
  });
}

test("FlexGen realizes --percent 20 80 for OPT-30B as its init_weight_list does: only out_proj (and vectors) of each layer on the GPU", () => {
  const model = findCatalogueModel("opt-30b")!;
  const setup = flexgenSetup(
    model,
    policy([20, 80, 0, 100, 0, 100], 48, 3, { cpu: true }),
    { promptLen: 512, genLen: 32 },
    resolveRates(t4).rates,
  );
  const onGpu = (kind: "attention" | "mlp") =>
    setup.subLayers[kind].tensors.filter((t) => t.tier === "gpu" && t.matrix).map((t) => t.name);
  assert.deepEqual(onGpu("attention"), ["out_proj.weight"]);
  assert.deepEqual(onGpu("mlp"), []);
  const h = model.hiddenSize;
  const p = predict("opt-30b", 512, policy([20, 80, 0, 100, 0, 100], 48, 3, { cpu: true }), true);
  // One h x h matrix of 12 h^2 (plus vectors) per layer: about 8%, not the 20% asked for.
  assert.ok(Math.abs(p.realizedPolicy.weights.gpu - (h * h) / (12 * h * h)) < 0.005, `${p.realizedPolicy.weights.gpu}`);
  assert.equal(p.feasible, true, p.infeasibleReasons.join("; "));
});

test("FlexGen's engine refuses what its runtime cannot run, with the reason", () => {
  assert.match(
    flexgen.unsupported(findCatalogueModel("llama-2-7b") ?? findCatalogueModel("mixtral-8x7b")!) ?? "",
    /OPT models only/,
  );
  assert.match(
    flexgen.unsupported(
      findCatalogueModel("opt-30b")!,
      policy([0, 100, 50, 50, 0, 100], 8, 1, { compressCache: true }),
    ) ?? "",
    /cannot compress a KV cache split/,
  );
});

test("a FlexGen step waits for its host relays: pinned weights beat --pin-weight 0, and nothing is faster than its lower bound", () => {
  const pinned = predict("opt-175b", 256, policy([0, 100, 0, 100, 0, 100], 16, 2, { pinWeight: true }), true);
  const pageable = predict("opt-175b", 256, policy([0, 100, 0, 100, 0, 100], 16, 2, { pinWeight: false }), true);
  assert.ok(pageable.decodeSeconds > pinned.decodeSeconds);
  for (const step of pageable.steps)
    assert.ok(stepTime(step).seconds >= stepLowerBoundSeconds(step) * (1 - 1e-12), step.label);
});

test("CPU attention costs what its fp32 workspace costs: ~14 bytes of host traffic per KV value per step, not 2", () => {
  const p = predict("opt-30b", 512, policy([20, 80, 0, 100, 0, 100], 48, 3, { cpu: true }), false);
  const model = findCatalogueModel("opt-30b")!;
  const rates = resolveRates(t4).rates;
  const decodeAttention = p.steps
    .filter((s) => s.phase === "decode")
    .flatMap((s) => s.chains.flat().map((o) => ({ o, n: s.count })));
  const cpuBytes = decodeAttention
    .filter(({ o }) => o.term === "CPU attention" && o.lane === "cpu")
    .reduce((a, { o, n }) => a + o.bytes * n, 0);
  // KV values read per step summed over tokens 1..31, layers and the 144 sequences.
  let values = 0;
  for (let i = 1; i < 32; i++) values += 2 * 144 * (512 + i) * model.hiddenSize * model.numLayers;
  const perValue = cpuBytes / values;
  assert.ok(perValue > 12 && perValue < 16, `host bytes per KV value ${perValue}`);
  assert.ok(rates.cpuStreamBytesPerSecond > 0);
});

test("a disk KV home reaches CPU attention in one pass: each copy thread converts the memory map's pages as they arrive, so the drive sets the step", () => {
  const p = predict("opt-175b", 256, policy([0, 50, 0, 0, 0, 100], 64, 8, { cpu: true, pinWeight: false }), true);
  let checked = 0;
  for (const step of p.steps.filter((s) => s.phase === "decode")) {
    const ops = step.chains.flat();
    const kvReads = ops.filter((o) => o.lane === "diskRead" && o.term === "KV I/O");
    if (kvReads.length === 0) continue;
    const conversions = ops.filter((o) => o.lane === "cpu" && o.name.includes("fp32 workspace") && o.seconds > 0);
    assert.equal(conversions.length, 2, step.label); // K and V, one copy thread each
    const driveSeconds = ops.filter((o) => o.lane === "diskRead").reduce((a, o) => a + o.seconds, 0);
    const seconds = stepTime(step).seconds;
    assert.ok(seconds >= driveSeconds * (1 - 1e-12), step.label);
    // Read then convert would end a conversion after the drive's last read.
    const shortest = Math.min(...conversions.map((o) => o.seconds));
    assert.ok(seconds < driveSeconds + shortest, `${step.label}: ${seconds} s, drive ${driveSeconds} s`);
    checked++;
  }
  assert.ok(checked > 0);
});

test("the simulator's event replay of FlexGen's steps gives the engine's own totals", () => {
  const p = predict(
    "opt-175b",
    512,
    policy([0, 100, 0, 100, 0, 100], 48, 3, { compressWeight: true, compressCache: true, pinWeight: false }),
    true,
  );
  const replay = replayEngine(p.steps);
  assert.ok(Math.abs(replay.totalSeconds / p.totalSeconds - 1) < 1e-9);
  const sumTerms = Object.values(p.termSeconds).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sumTerms / p.totalSeconds - 1) < 1e-9, "terms add up to the wall time");
});

test("FlexGen's host thread: each step dispatches its framework operations and launches its kernels after its own synchronous work, CPU attention included", () => {
  const p30 = policy([20, 80, 0, 100, 0, 100], 48, 3, { cpu: true });
  const model = findCatalogueModel("opt-30b")!;
  const workload = { promptLen: 512, genLen: 32 };
  const noDispatch = { ...t4, cpu: { ...t4.cpu, eagerDispatchSeconds: { measured: { value: 0, source: "test" } } } };
  const launchSeconds = resolveRates(t4).rates.gpuKernelLaunchSeconds;
  const steps = flexgen.predict({
    model,
    hardware: noDispatch,
    workload,
    policy: p30,
    knobs: { fewerBatch: true },
  }).steps;
  let cpuAttentionSteps = 0;
  for (const step of steps) {
    const [main, [dispatch]] = step.chains as [EngineOperation[], EngineOperation[]];
    assert.equal(dispatch!.term, "framework dispatch", step.label);
    // With no time per framework operation, what is left is one launch call per kernel of the step's compute.
    const launches = kernelLaunches(main);
    assert.ok(launches > 0, step.label);
    assert.ok(Math.abs(dispatch!.seconds - launches * launchSeconds) < 1e-15, step.label);
    const hostWork = main.filter((o) => o.lane === "cpu" || o.lane === "hostThread");
    if (!hostWork.some((o) => o.term === "CPU attention")) continue;
    cpuAttentionSteps++;
    const timings = replayStep(step).timings;
    const lastHostEnd = Math.max(...hostWork.map((o) => timings[0]![main.indexOf(o)]!.end));
    assert.ok(timings[1]![0]!.start >= lastHostEnd, `${step.label}: dispatch overlaps the main thread's CPU attention`);
  }
  assert.ok(cpuAttentionSteps > 0);
});

/**
 * FlexGen's published single-T4 results (GCP n1-highmem-32 with a T4, 208 GB DRAM, 1.5 TB SSD; gen 32):
 * prompt 512 from the README's "Generation Throughput" table and benchmark/batch_size_table.md; prompt
 * 256 from the comments beside each case of benchmark/flexgen/bench_suite.py; policies from
 * bench_suite.py (suite_*_1x1 and *_comp). The 30B and 175B cases run with --debug-mode fewer_batch.
 */
const PUBLISHED = [
  {
    model: "opt-6.7b",
    prompt: 256,
    policy: policy([100, 0, 100, 0, 100, 0], 4, 1, { overlap: false }),
    fewerBatch: false,
    tokensPerSecond: 53.29,
  },
  {
    model: "opt-6.7b",
    prompt: 512,
    policy: policy([100, 0, 100, 0, 100, 0], 2, 1, { overlap: false }),
    fewerBatch: false,
    tokensPerSecond: 25.26,
  },
  {
    model: "opt-6.7b",
    prompt: 256,
    policy: policy([100, 0, 100, 0, 100, 0], 128, 1, { overlap: false, compressWeight: true, compressCache: true }),
    fewerBatch: false,
    tokensPerSecond: 56.72,
  },
  {
    model: "opt-6.7b",
    prompt: 512,
    policy: policy([100, 0, 100, 0, 100, 0], 72, 1, { overlap: false, compressWeight: true, compressCache: true }),
    fewerBatch: false,
    tokensPerSecond: 29.12,
  },
  {
    model: "opt-30b",
    prompt: 256,
    policy: policy([10, 90, 0, 100, 0, 100], 160, 2, { cpu: true }),
    fewerBatch: true,
    tokensPerSecond: 16.01,
  },
  {
    model: "opt-30b",
    prompt: 512,
    policy: policy([20, 80, 0, 100, 0, 100], 48, 3, { cpu: true }),
    fewerBatch: true,
    tokensPerSecond: 7.32,
  },
  {
    model: "opt-30b",
    prompt: 256,
    policy: policy([0, 100, 0, 100, 0, 100], 128, 8, { compressCache: true }),
    fewerBatch: true,
    tokensPerSecond: 16.86,
  },
  {
    model: "opt-30b",
    prompt: 512,
    policy: policy([0, 100, 0, 100, 0, 100], 64, 8, { compressCache: true }),
    fewerBatch: true,
    tokensPerSecond: 8.38,
  },
  {
    model: "opt-175b",
    prompt: 256,
    policy: policy([0, 50, 0, 0, 0, 100], 64, 8, { cpu: true, pinWeight: false }),
    fewerBatch: true,
    tokensPerSecond: 1.36,
  },
  {
    model: "opt-175b",
    prompt: 512,
    policy: policy([0, 50, 0, 0, 0, 100], 32, 8, { cpu: true, pinWeight: false }),
    fewerBatch: true,
    tokensPerSecond: 0.69,
  },
  {
    model: "opt-175b",
    prompt: 256,
    policy: policy([0, 100, 0, 100, 0, 100], 96, 3, { compressWeight: true, compressCache: true, pinWeight: false }),
    fewerBatch: true,
    tokensPerSecond: 2.26,
  },
  {
    model: "opt-175b",
    prompt: 512,
    policy: policy([0, 100, 0, 100, 0, 100], 48, 3, { compressWeight: true, compressCache: true, pinWeight: false }),
    fewerBatch: true,
    tokensPerSecond: 1.12,
  },
] as const;

const scored = PUBLISHED.map((row) => {
  const p = predict(row.model, row.prompt, row.policy, row.fewerBatch);
  return {
    ...row,
    predicted: p.throughputTokensPerSecond,
    feasible: p.feasible,
    error: p.throughputTokensPerSecond / row.tokensPerSecond - 1,
  };
});
const label = (r: (typeof scored)[number]) =>
  `${r.model} prompt ${r.prompt} ${r.policy.gpuBatchSize}x${r.policy.numGpuBatches}${r.policy.compressWeight || r.policy.compressCache ? " compressed" : ""}`;
const table = scored
  .map(
    (r) =>
      `${label(r)}: predicted ${r.predicted.toFixed(2)}, published ${r.tokensPerSecond} (${(100 * r.error).toFixed(0)}%)`,
  )
  .join("\n");

test("every row of FlexGen's published single-T4 table is feasible and predicted within 25%", () => {
  for (const r of scored) {
    assert.ok(r.feasible, `${label(r)} should fit`);
    assert.ok(Math.abs(r.error) <= 0.25, `${label(r)} off by ${(100 * r.error).toFixed(0)}%\n${table}`);
  }
});

// Known gap (issue 16): with the shipped T4 profile the median |error| is about 15.2%, against the 15% aimed
// for; the assertion stays as the target and is reported as a TODO until a measured rate closes it. The
// host-dispatch lane (engines/host-dispatch.ts: 2.261 us per operation plus 5 us per kernel launch) left it
// at 15.2%: in these rows the host thread is busy for at most ~7% of the GPU lane's time (OPT-6.7B 4x1:
// 0.18 s of 2.6 s), so it is never on a step's critical path.
test("the median error over FlexGen's published single-T4 table is within 15%", {
  todo: "median 15.2%: the 4-bit rows +8% to +21%, the drive-bound 175B fp16 rows -19% and -20% (docs/engines/flexgen.md, issue 16 section)",
}, () => {
  const errors = scored.map((r) => Math.abs(r.error)).sort((a, b) => a - b);
  const median = (errors[5]! + errors[6]!) / 2;
  assert.ok(median <= 0.15, `median |error| ${(100 * median).toFixed(1)}%\n${table}`);
});

// Known gap (issue 16): one pair is swapped (OPT-175B fp16 prompt 256, 1.36 token/s published, against
// OPT-175B compressed prompt 512, 1.12); the assertion stays as the target, reported as a TODO. With the
// copy threads' memory-map reads overlapping their conversion, the fp16 rows' steps last exactly as long
// as the drive's reads (8.25 GB a layer a token at the profile's 2 GB/s), so what is left there is the
// drive's rate under FlexGen's access pattern (no measurement on the GCP local SSD array was found).
test("the predictions keep the rank order of FlexGen's published results", {
  todo: "one pair of rows swapped: 175B fp16 p256 1.11 vs 175B 4-bit p512 1.34 (published 1.36 vs 1.12); the fp16 rows are bound by the drive (2 GB/s read through the memory map)",
}, () => {
  const byPublished = [...scored].sort((a, b) => b.tokensPerSecond - a.tokensPerSecond).map(label);
  const byPredicted = [...scored].sort((a, b) => b.predicted - a.predicted).map(label);
  assert.deepEqual(byPredicted, byPublished, table);
});
