import assert from "node:assert/strict";
import { test } from "node:test";
import { layerParams } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { accelerateEngine } from "../../engines/accelerate.js";
import { deepspeedEngine, predictZeroInference, zeroRealization } from "../../engines/deepspeed.js";
import { DEEPSPEED_DEFAULT_ZERO_CONFIG, FLEXGEN_HARNESS_ZERO_CONFIG } from "../../engines/deepspeed-zero-config.js";
import type { EnginePrediction } from "../../engines/engine-model.js";
import { engineModel } from "../../engines/engines.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import { laneBytes, model, policy, W } from "../offload-engine-helpers.js";

const T4 = resolveHardware("t4");

/** The same steps with every chain run one after another: fetches never overlapping compute. */
function serialSeconds(p: EnginePrediction, phase: "prefill" | "decode"): number {
  let seconds = 0;
  for (const step of p.steps)
    if (step.phase === phase) for (const chain of step.chains) for (const o of chain) seconds += o.seconds * step.count;
  return seconds;
}

test("the registry serves the DeepSpeed model under its name", () => {
  assert.equal(engineModel("deepspeed"), deepspeedEngine);
  assert.equal(deepspeedEngine.name, "deepspeed");
});

test("ZeRO-Inference streams every layer: a policy maps to no offload, CPU offload or NVMe offload", () => {
  assert.equal(zeroRealization(policy(1, W(1, 0, 0))).offload, "none");
  const cpu = zeroRealization(policy(1, W(0.4, 0.6, 0), { pinWeight: false }));
  assert.equal(cpu.offload, "cpu");
  assert.equal(cpu.pinMemory, false);
  assert.deepEqual(cpu.realizedPolicy.weights, W(0, 1, 0));
  assert.ok(cpu.notes.some((n) => n.includes("40% GPU share")));
  const nvme = zeroRealization(policy(1, W(0, 0.5, 0.5), { pinWeight: false, numGpuBatches: 3, cpuAttention: true }));
  assert.equal(nvme.offload, "nvme");
  assert.equal(nvme.pinMemory, true, "NVMe swap buffers are page-locked whatever pin_memory says");
  assert.equal(nvme.batch, 3);
  assert.deepEqual(nvme.realizedPolicy.cache, W(1, 0, 0));
  assert.equal(nvme.realizedPolicy.cpuAttention, false);
  for (const phrase of ["CPU share", "one generate() batch of 3", "CPU attention"])
    assert.ok(
      nvme.notes.some((n) => n.includes(phrase)),
      phrase,
    );
});

test("every forward fetches every offloaded parameter over PCIe", () => {
  const m = model("opt-1.3b");
  const workload = { promptLen: 32, genLen: 4 };
  const p = deepspeedEngine.predict({ model: m, hardware: T4, workload, policy: policy(1, W(0, 1, 0)) });
  const layerBytes = m.numLayers * layerParams(m) * m.bytesPerParam;
  const table = m.vocabSize * m.hiddenSize * m.bytesPerParam;
  // Layers plus the token table; OPT-1.3B's 1.2e9 elements between the lookup and the tied LM head exceed
  // stage3_max_reuse_distance (1e9), so the table is released and fetched again for the head.
  const expectedPerForward = layerBytes + 2 * table;
  const got = laneBytes(p, "h2d") / workload.genLen;
  assert.ok(got >= expectedPerForward && got < expectedPerForward * 1.02, `${got} vs ${expectedPerForward}`);
  assert.ok(p.notes.some((n) => n.includes("fetched again")));
});

test("a small model keeps its tied token table on the GPU between the lookup and the LM head", () => {
  const m = model("opt-125m");
  const p = deepspeedEngine.predict({
    model: m,
    hardware: T4,
    workload: { promptLen: 16, genLen: 2 },
    policy: policy(1, W(0, 1, 0)),
  });
  assert.ok(p.notes.some((n) => n.includes("stays on the GPU")));
  const layerBytes = m.numLayers * layerParams(m) * m.bytesPerParam;
  const table = m.vocabSize * m.hiddenSize * m.bytesPerParam;
  const perForward = laneBytes(p, "h2d") / 2;
  assert.ok(perForward >= layerBytes + table && perForward < layerBytes + 1.5 * table);
});

test("prefetch: DeepSpeed is never slower than fetching serially, and hides most copies under a compute-bound prefill", () => {
  const m = model("opt-6.7b");
  const workload = { promptLen: 512, genLen: 4 };
  const p = deepspeedEngine.predict({ model: m, hardware: T4, workload, policy: policy(16, W(0, 1, 0)) });
  const rates = resolveRates(T4).rates;
  const copySecondsPerForward = (m.numLayers * layerParams(m) * m.bytesPerParam) / rates.h2dPinnedBytesPerSecond;
  const serialPrefill = serialSeconds(p, "prefill");
  assert.ok(p.prefillSeconds <= serialPrefill);
  assert.ok(p.decodeSeconds <= serialSeconds(p, "decode"));
  // The prefill's GEMMs take several times the copies; overlap saves at least half of the copy time.
  assert.ok(p.prefillSeconds <= serialPrefill - 0.5 * copySecondsPerForward, `${p.prefillSeconds} vs ${serialPrefill}`);
});

test("pinned, prefetched ZeRO-Inference is not slower than Accelerate's pageable, serial CPU offload", () => {
  const m = model("opt-6.7b");
  const request = { model: m, hardware: T4, workload: { promptLen: 128, genLen: 8 }, policy: policy(4, W(0, 1, 0)) };
  const ds = deepspeedEngine.predict(request);
  const hf = accelerateEngine.predict(request);
  assert.ok(ds.totalSeconds <= hf.totalSeconds, `${ds.totalSeconds} vs ${hf.totalSeconds}`);
  // Unpinned host memory makes the copies pageable: slower than pinned.
  const pageable = deepspeedEngine.predict({ ...request, policy: policy(4, W(0, 1, 0), { pinWeight: false }) });
  assert.ok(pageable.totalSeconds > ds.totalSeconds);
});

test("NVMe offload reads every NVMe parameter from the drive every forward", () => {
  const m = model("opt-1.3b");
  const workload = { promptLen: 32, genLen: 5 };
  const p = deepspeedEngine.predict({ model: m, hardware: T4, workload, policy: policy(1, W(0, 0, 1)) });
  const rates = resolveRates(T4).rates;
  // Parameters of at least 1 MiB go to NVMe: every weight matrix, the token table and the positions.
  const perForward = p.peakBytes.disk / rates.diskReadBytesPerSecond;
  assert.ok(p.peakBytes.disk >= m.numLayers * 12 * m.hiddenSize ** 2 * m.bytesPerParam);
  assert.ok(p.prefillSeconds >= perForward);
  assert.ok(p.decodeSeconds >= (workload.genLen - 1) * perForward);
  // Small tensors (biases, norms) stay in host memory next to the pinned swap buffers.
  const buffers = FLEXGEN_HARNESS_ZERO_CONFIG.nvmeBufferCount * FLEXGEN_HARNESS_ZERO_CONFIG.nvmeBufferNumel * 2;
  assert.ok(p.peakBytes.cpu > buffers);
});

test("parameters under stage3_param_persistence_threshold stay on the GPU and are never copied", () => {
  const m = model("opt-6.7b");
  const workload = { promptLen: 16, genLen: 3 };
  const request = { model: m, hardware: T4, workload, policy: policy(1, W(0, 1, 0)) };
  const harness = predictZeroInference(request, FLEXGEN_HARNESS_ZERO_CONFIG);
  const defaults = predictZeroInference(request, DEEPSPEED_DEFAULT_ZERO_CONFIG);
  // With DeepSpeed's default 1e5 threshold every OPT-6.7B bias and norm (4096 or 16384 elements) persists:
  // per layer 2 norms x 2h, biases of q, k, v, out_proj, fc2 (h each) and fc1 (4h); plus the final norm.
  const h = m.hiddenSize;
  const smallPerForward = (m.numLayers * (4 * h + 5 * h + 4 * h) + 2 * h) * m.bytesPerParam;
  const saved = laneBytes(harness, "h2d") - laneBytes(defaults, "h2d");
  assert.ok(
    Math.abs(saved - workload.genLen * smallPerForward) < 1,
    `${saved} vs ${workload.genLen * smallPerForward}`,
  );
  assert.ok(defaults.peakBytes.gpu > harness.peakBytes.gpu - 1e6);
});

test("NVMe swap buffers smaller than the largest parameter make the configuration infeasible", () => {
  const request = {
    model: model("opt-175b"),
    hardware: T4,
    workload: { promptLen: 16, genLen: 2 },
    policy: policy(1, W(0, 0, 1)),
  };
  // DeepSpeed's default buffer_size (1e8 elements) cannot hold OPT-175B's token table (50272 x 12288
  // elements, its largest parameter: fc1 is 12288 x 49152).
  const p = predictZeroInference(request, DEEPSPEED_DEFAULT_ZERO_CONFIG);
  assert.equal(p.feasible, false);
  assert.ok(p.infeasibleReasons.some((r) => r.includes("buffer_size") && r.includes(String(50272 * 12288))));
  assert.equal(predictZeroInference(request, FLEXGEN_HARNESS_ZERO_CONFIG).feasible, true);
});

test("families the counted transformers forward does not describe are refused with a reason", () => {
  for (const name of ["mixtral-8x7b", "qwen1.5-moe-a2.7b"])
    assert.match(deepspeedEngine.unsupported(model(name)) ?? "", /Mixture-of-Experts/);
  assert.match(deepspeedEngine.unsupported(model("opt-350m")) ?? "", /project_in/);
  assert.equal(deepspeedEngine.unsupported(model("mistral-7b")), undefined);
  assert.throws(
    () =>
      deepspeedEngine.predict({
        model: model("olmoe-1b-7b"),
        hardware: T4,
        workload: { promptLen: 8, genLen: 2 },
        policy: policy(1, W(0, 1, 0)),
      }),
    /deepspeed: olmoe is a Mixture-of-Experts model/,
  );
});

// Validation data, never used to set a rate: FlexGen's README / benchmark/batch_size_table.md, one T4 on
// GCP, prompt 512, generate 32, DeepSpeed ZeRO-Inference at its effective batch sizes (16 and 4 with CPU
// offload, 1 with NVMe offload), run by benchmark/hf_ds/hf_opt.py (pin_memory 1, the ZeRO settings in
// FLEXGEN_HARNESS_ZERO_CONFIG). The published values are rounded to 0.01 token/s.
// Accuracy target for rates taken from datasheets and microbenchmarks: within a factor of 1.5.
const PUBLISHED = [
  { model: "opt-6.7b", batch: 16, weights: W(0, 1, 0), tokensPerSecond: 9.28 },
  { model: "opt-30b", batch: 4, weights: W(0, 1, 0), tokensPerSecond: 0.6 },
];

for (const row of PUBLISHED) {
  test(`validation: FlexGen's published ZeRO-Inference ${row.model} run (${row.tokensPerSecond} token/s, batch ${row.batch} on the CPU) within a factor of 1.5`, (t) => {
    const p = deepspeedEngine.predict({
      model: model(row.model),
      hardware: T4,
      workload: { promptLen: 512, genLen: 32 },
      policy: policy(row.batch, row.weights),
    });
    const ratio = p.throughputTokensPerSecond / row.tokensPerSecond;
    t.diagnostic(`predicted ${p.throughputTokensPerSecond.toFixed(3)} token/s, ratio ${ratio.toFixed(2)}`);
    assert.equal(p.feasible, true);
    assert.ok(ratio > 1 / 1.5 && ratio < 1.5, `ratio ${ratio}`);
  });
}

test("validation: FlexGen's published ZeRO-Inference OPT-175B run (0.01 token/s, batch 1 on NVMe) inside the rounding band", (t) => {
  const p = deepspeedEngine.predict({
    model: model("opt-175b"),
    hardware: T4,
    workload: { promptLen: 512, genLen: 32 },
    policy: policy(1, W(0, 0, 1)),
  });
  t.diagnostic(`predicted ${p.throughputTokensPerSecond.toFixed(4)} token/s`);
  assert.equal(p.feasible, true);
  assert.ok(p.throughputTokensPerSecond >= 0.005 && p.throughputTokensPerSecond < 0.015);
});
