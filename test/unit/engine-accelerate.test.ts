import assert from "node:assert/strict";
import { test } from "node:test";
import { layerParams } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { accelerateEngine } from "../../engines/accelerate.js";
import { accelerateDeviceMap } from "../../engines/accelerate-device-map.js";
import type { EnginePrediction } from "../../engines/engine-model.js";
import { engineModel } from "../../engines/engines.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import { laneBytes, model, policy, W } from "../offload-engine-helpers.js";

const T4 = resolveHardware("t4");
test("the registry serves the Accelerate model under its name", () => {
  assert.equal(engineModel("accelerate"), accelerateEngine);
  assert.equal(accelerateEngine.name, "accelerate");
});

test("weight fractions become whole layers, GPU first, never more on a tier than the policy gives it", () => {
  // OPT-30B has 48 layers: 50% -> 24 on the GPU; 80% cumulative -> 38, so 14 on the CPU; 10 on disk.
  const map = accelerateDeviceMap(model("opt-30b"), policy(4, W(0.5, 0.3, 0.2)));
  assert.deepEqual(map.layers, { gpu: 24, cpu: 14, disk: 10 });
  assert.deepEqual(
    map.realizedPolicy.layerGroups?.map((g) => [g.layers, g.weights.gpu, g.weights.cpu, g.weights.disk]),
    [
      [24, 1, 0, 0],
      [14, 0, 1, 0],
      [10, 0, 0, 1],
    ],
  );
  assert.ok(Math.abs(map.realizedPolicy.weights.gpu - 24 / 48) < 1e-12);
  // 0.49 of 48 layers is 23.52: the 24th layer would overfill the GPU's share, so 23.
  assert.equal(accelerateDeviceMap(model("opt-30b"), policy(4, W(0.49, 0.51, 0))).layers.gpu, 23);
});

test("what Accelerate cannot express is realized its own way and said in the notes", () => {
  const asked = policy(8, W(0, 1, 0), {
    numGpuBatches: 4,
    cache: W(0.5, 0.5, 0),
    cpuAttention: true,
    compressWeight: true,
  });
  const p = accelerateEngine.predict({
    model: model("opt-1.3b"),
    hardware: T4,
    workload: { promptLen: 64, genLen: 4 },
    policy: asked,
  });
  const r = p.realizedPolicy;
  assert.equal(r.gpuBatchSize, 32);
  assert.equal(r.numGpuBatches, 1);
  assert.deepEqual(r.cache, W(1, 0, 0));
  assert.equal(r.cpuAttention, false);
  assert.equal(r.compressWeight, false);
  assert.equal(r.overlap, false);
  assert.equal(r.pinWeight, false);
  for (const phrase of [
    "one generate() batch of 32",
    "KV cache off the GPU",
    "CPU attention",
    "compression",
    "pinned",
    "no prefetch",
  ])
    assert.ok(
      p.notes.some((n) => n.includes(phrase)),
      `a note about "${phrase}" in ${JSON.stringify(p.notes)}`,
    );
});

test("layers a policy computes on the CPU are executed on the GPU with their weights on the CPU", () => {
  const m = model("opt-1.3b");
  const groups = [
    { layers: 20, weights: W(1, 0, 0), compute: "gpu" as const },
    { layers: 4, weights: W(0, 1, 0), compute: "cpu" as const },
  ];
  const map = accelerateDeviceMap(m, policy(1, W(20 / 24, 4 / 24, 0), { layerGroups: groups }));
  assert.deepEqual(map.layers, { gpu: 20, cpu: 4, disk: 0 });
  assert.ok(map.realizedPolicy.layerGroups?.every((g) => g.compute === "gpu"));
  assert.ok(map.notes.some((n) => n.includes("computes on the CPU") || n.includes("run on the GPU")));
});

test("more layers on the GPU: less host->device traffic and never slower", () => {
  const m = model("opt-6.7b");
  const workload = { promptLen: 128, genLen: 8 };
  let previous: EnginePrediction | undefined;
  for (const gpu of [0, 0.25, 0.5, 0.75, 1]) {
    const p = accelerateEngine.predict({ model: m, hardware: T4, workload, policy: policy(2, W(gpu, 1 - gpu, 0)) });
    if (previous) {
      assert.ok(laneBytes(p, "h2d") < laneBytes(previous, "h2d"), `h2d bytes fall at ${gpu}`);
      assert.ok(
        p.totalSeconds <= previous.totalSeconds,
        `not slower at ${gpu}: ${p.totalSeconds} vs ${previous.totalSeconds}`,
      );
    }
    previous = p;
  }
  // Everything on the GPU: no weight copies at all.
  assert.equal(laneBytes(previous!, "h2d"), 0);
});

test("offloaded layers are copied every forward, with no prefetch: the copy chain is serial", () => {
  const m = model("opt-1.3b");
  const workload = { promptLen: 32, genLen: 4 };
  const rates = resolveRates(T4).rates;
  const p = accelerateEngine.predict({ model: m, hardware: T4, workload, policy: policy(1, W(0, 1, 0)) });
  const layerBytes = m.numLayers * layerParams(m) * m.bytesPerParam;
  // Each of the genLen forwards moves every layer's weights over PCIe...
  assert.ok(laneBytes(p, "h2d") >= workload.genLen * layerBytes);
  // ...staged by the host thread into the driver's pinned buffer while the copy engine moves the chunks
  // staged before: at the slower of the two, and nothing else runs meanwhile.
  const perForward = layerBytes / Math.min(rates.cpuSingleThreadCopyBytesPerSecond, rates.h2dPinnedBytesPerSecond);
  assert.ok(
    p.decodeSeconds >= (workload.genLen - 1) * perForward,
    `${p.decodeSeconds} >= ${(workload.genLen - 1) * perForward}`,
  );
});

test("disk-offloaded layers cost at least their bytes at the disk read rate, every token", () => {
  const m = model("opt-1.3b");
  const workload = { promptLen: 32, genLen: 5 };
  const p = accelerateEngine.predict({ model: m, hardware: T4, workload, policy: policy(1, W(0, 0, 1)) });
  const rates = resolveRates(T4).rates;
  const diskBytes = m.numLayers * layerParams(m) * m.bytesPerParam;
  const perForward = diskBytes / rates.diskMmapReadBytesPerSecond;
  assert.ok(p.prefillSeconds >= perForward);
  assert.ok(p.decodeSeconds >= (workload.genLen - 1) * perForward);
  assert.ok(p.laneSeconds.diskRead >= workload.genLen * perForward);
  assert.equal(p.peakBytes.disk, diskBytes);
});

test("peak memory: KV cache on the GPU grows with the batch; an all-GPU OPT-30B does not fit a T4", () => {
  const m = model("opt-6.7b");
  const workload = { promptLen: 512, genLen: 32 };
  const at = (gbs: number) =>
    accelerateEngine.predict({ model: m, hardware: T4, workload, policy: policy(gbs, W(0, 1, 0)) });
  const one = at(1);
  const four = at(4);
  const kvPerSequence = 2 * (512 + 32) * m.hiddenSize * 2 * m.numLayers;
  assert.ok(four.peakBytes.gpu - one.peakBytes.gpu >= 3 * kvPerSequence);
  assert.equal(four.peakBytes.cpu, m.numLayers * layerParams(m) * 2);
  const big = accelerateEngine.predict({
    model: model("opt-30b"),
    hardware: T4,
    workload,
    policy: policy(1, W(1, 0, 0)),
  });
  assert.equal(big.feasible, false);
  assert.ok(big.infeasibleReasons.some((r) => r.startsWith("gpu peak")));
});

test("families the counted transformers forward does not describe are refused with a reason", () => {
  for (const name of ["mixtral-8x7b", "qwen1.5-moe-a2.7b", "olmoe-1b-7b", "qwen3-30b-a3b"]) {
    const reason = accelerateEngine.unsupported(model(name));
    assert.match(reason ?? "", /Mixture-of-Experts/, name);
  }
  assert.match(accelerateEngine.unsupported(model("opt-350m")) ?? "", /project_in/);
  assert.equal(accelerateEngine.unsupported(model("llama-2-7b")), undefined);
  assert.throws(
    () =>
      accelerateEngine.predict({
        model: model("mixtral-8x7b"),
        hardware: T4,
        workload: { promptLen: 8, genLen: 2 },
        policy: policy(1, W(0, 1, 0)),
      }),
    /accelerate: mixtral is a Mixture-of-Experts model/,
  );
});

// Validation data, never used to set a rate: FlexGen's README / benchmark/batch_size_table.md, one T4 on
// GCP, prompt 512, generate 32, Hugging Face Accelerate at its effective batch sizes (2 all on the GPU,
// 8 with the layers on the CPU, 2 with the layers on disk; benchmark/hf_ds/hf_opt.py's device maps keep
// the embeddings and the LM head on the GPU). The published values are rounded to 0.01 token/s.
// Accuracy target for rates taken from datasheets and microbenchmarks: within a factor of 1.5.
const PUBLISHED = [
  { model: "opt-6.7b", batch: 2, weights: W(1, 0, 0), tokensPerSecond: 25.12 },
  { model: "opt-30b", batch: 8, weights: W(0, 1, 0), tokensPerSecond: 0.62 },
  { model: "opt-175b", batch: 2, weights: W(0, 0, 1), tokensPerSecond: 0.01 },
];

function predictPublished(row: (typeof PUBLISHED)[number]): EnginePrediction {
  return accelerateEngine.predict({
    model: model(row.model),
    hardware: T4,
    workload: { promptLen: 512, genLen: 32 },
    policy: policy(row.batch, row.weights),
  });
}

test("validation: FlexGen's published Accelerate OPT-6.7B run (25.12 token/s, batch 2 on the GPU) within a factor of 1.5", (t) => {
  const p = predictPublished(PUBLISHED[0]!);
  const ratio = p.throughputTokensPerSecond / 25.12;
  t.diagnostic(`predicted ${p.throughputTokensPerSecond.toFixed(2)} token/s, ratio ${ratio.toFixed(2)}`);
  assert.equal(p.feasible, true);
  assert.ok(ratio > 1 / 1.5 && ratio < 1.5, `ratio ${ratio}`);
});

test("validation: FlexGen's published Accelerate OPT-175B run (0.01 token/s, batch 2 on disk) inside the rounding band", (t) => {
  const p = predictPublished(PUBLISHED[2]!);
  t.diagnostic(`predicted ${p.throughputTokensPerSecond.toFixed(4)} token/s`);
  assert.equal(p.feasible, true);
  assert.ok(p.throughputTokensPerSecond >= 0.005 && p.throughputTokensPerSecond < 0.015);
});

test("validation: FlexGen's published Accelerate OPT-30B run (0.62 token/s, batch 8 on the CPU) within a factor of 1.5", (t) => {
  // The hooks' synchronous pageable copies dominate: the calling thread stages every byte into the
  // driver's pinned buffer (the T4 profile's one-thread copy rate, measured on the n1 host's Skylake-SP,
  // an upper bound) while the copy engine moves the chunks staged before.
  const p = predictPublished(PUBLISHED[1]!);
  const ratio = p.throughputTokensPerSecond / 0.62;
  t.diagnostic(`predicted ${p.throughputTokensPerSecond.toFixed(3)} token/s, ratio ${ratio.toFixed(2)}`);
  assert.equal(p.feasible, true);
  assert.equal(p.bottleneck, "weights I/O");
  assert.ok(ratio > 1 / 1.5 && ratio < 1.5, `ratio ${ratio}`);
});

test("bad workloads and batches are refused naming the field", () => {
  const request = {
    model: model("opt-125m"),
    hardware: T4,
    workload: { promptLen: 8, genLen: 0 },
    policy: policy(1, W(1, 0, 0)),
  };
  assert.throws(() => accelerateEngine.predict(request), /workload genLen: expected an integer >= 1, got 0/);
  assert.throws(
    () =>
      accelerateEngine.predict({ ...request, workload: { promptLen: 8, genLen: 2 }, policy: policy(0, W(1, 0, 0)) }),
    /gpuBatchSize x numGpuBatches/,
  );
});
