import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { embeddingParams, kvDim, layerParams } from "../../core/model-spec.js";
import { parsePlan } from "../../core/parse-plan.js";
import { loadShippedCluster } from "../../core/resolve-cluster.js";
import {
  layerAllReduceBytesPerGpu,
  ringAllReduceBytesPerGpu,
  ringAllReduceSeconds,
} from "../../core/ring-all-reduce.js";
import { TIERS } from "../../core/tiers.js";
import { exportPlan } from "../../exporters/export-plan.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planPipelineSync } from "../../planner/pipeline/plan-pipeline.js";
import { shardModel, tensorParallelSizes } from "../../planner/pipeline/tensor-parallel.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { simulatePipeline, TRAFFIC_TOLERANCE } from "../../simulator/simulate-pipeline.js";
import { checkFlags, commandWords, LLAMA_FLAGS, VLLM_FLAGS } from "../export-flags.js";
import { smallNode, tiny } from "../pipeline-fixtures.js";

const solvers = await loadLpSolvers();

test("ring all-reduce: each GPU sends 2(T-1)/T of the buffer in 2(T-1) steps; one GPU sends nothing", () => {
  assert.equal(ringAllReduceBytesPerGpu(1000, 1), 0);
  assert.equal(ringAllReduceBytesPerGpu(1000, 2), 1000);
  assert.equal(ringAllReduceBytesPerGpu(1000, 4), 1500);
  assert.equal(ringAllReduceBytesPerGpu(800, 8), 1400);
  const link = { size: 4, bytesPerSecond: 100, latencySeconds: 0.5 };
  // 6 steps of 0.5 s, and 1500 B at 100 B/s.
  assert.equal(ringAllReduceSeconds(1000, link), 6 * 0.5 + 15);
  assert.equal(ringAllReduceSeconds(1000, { ...link, size: 1 }), 0);
  // Two all-reduces per layer of the batch's fp16 hidden states: 10 tokens x 512 x 2 B, 2(T-1)/T of it each.
  assert.equal(layerAllReduceBytesPerGpu(10, 512, 4), 2 * 1.5 * 10 * 512 * 2);
});

test("a T-way shard holds 1/T of each layer's weights and KV cache, norms and row-parallel biases whole", () => {
  const opt = findCatalogueModel("opt-30b")!;
  const llama = findCatalogueModel("llama-2-7b")!;
  assert.equal(shardModel(opt, 1), opt, "T = 1 is the model itself");
  for (const T of [2, 4, 8]) {
    const s = shardModel(opt, T);
    // OPT keeps out_proj.bias, fc2.bias and two layer norms (weight and bias) whole: 6h.
    assert.equal(layerParams(opt) - T * layerParams(s), -(T - 1) * 6 * opt.hiddenSize, `OPT T=${T}`);
    assert.equal(kvDim(s) * T, kvDim(opt));
    assert.ok(Math.abs(embeddingParams(s) * T - embeddingParams(opt)) < opt.maxPositions * opt.hiddenSize * T);
    // Llama: only the two RMS norms are whole.
    const l = shardModel(llama, T);
    assert.equal(layerParams(llama) - T * layerParams(l), -(T - 1) * 2 * llama.hiddenSize, `Llama T=${T}`);
  }
  // Half the weight bytes per GPU: the same policy on a T = 2 shard moves half the weights.
  const t4 = loadShippedCluster("1x4-t4").perGpu;
  const policy = {
    gpuBatchSize: 8,
    numGpuBatches: 2,
    weights: { gpu: 0.2, cpu: 0.8, disk: 0 },
    cache: { gpu: 0, cpu: 1, disk: 0 },
    activations: { gpu: 1, cpu: 0, disk: 0 },
    overlap: true,
    pinWeight: true,
    cpuAttention: false,
    compressWeight: false,
    compressCache: false,
  };
  const workload = { promptLen: 128, genLen: 8 };
  const whole = evaluatePolicy(opt, hardwareRates(t4), workload, policy, "spillway");
  const half = evaluatePolicy(shardModel(opt, 2), hardwareRates(t4), workload, policy, "spillway");
  const ratio = half.bytes.h2d / whole.bytes.h2d;
  assert.ok(Math.abs(ratio - 0.5) < 0.01, `host-to-GPU bytes per GPU ${ratio} of one GPU's`);
  assert.ok(half.peakBytes.cpu < 0.51 * whole.peakBytes.cpu);
});

test("the sizes searched divide a node's GPUs and the heads; a node of one GPU has none above 1", () => {
  const opt175 = findCatalogueModel("opt-175b")!; // 96 heads
  assert.deepEqual(tensorParallelSizes(opt175, loadShippedCluster("1x8-a100-80g")), [1, 2, 4, 8]);
  assert.deepEqual(tensorParallelSizes(opt175, loadShippedCluster("4x1-t4-gcp")), [1]);
  assert.deepEqual(tensorParallelSizes({ ...tiny, numHeads: 6, numKvHeads: 6 }, loadShippedCluster("1x4-t4")), [1, 2]);
});

test("a tensor-parallel pipeline: T GPUs of one node per stage, all-reduce traffic the simulator agrees on, exports that say it", () => {
  const cluster = smallNode();
  const workload = { promptLen: 16, genLen: 32 };
  const planned = planPipelineSync({ model: tiny, cluster, workload, maxBlock: 64, tensorParallelSize: 2 }, solvers);
  const pipeline = planned.pipeline!;
  assert.equal(pipeline.tensorParallelSize, 2);
  assert.equal(pipeline.stages.length, 2, "two stages of two GPUs fill the node here");
  const used = new Set<string>();
  for (const stage of pipeline.stages) {
    assert.equal(stage.gpus?.length, 2);
    assert.deepEqual(stage.gpus![0], stage.gpu);
    for (const g of stage.gpus!) {
      assert.equal(g.node, stage.gpu.node);
      used.add(`${g.node}.${g.index}`);
    }
    const a = stage.predicted.allReduce!;
    assert.ok(a.bytesPerGpu > 0 && a.busySeconds > 0);
    assert.equal(a.kind, "pcie");
    // The all-reduces are part of the GPU's busy time (the layer waits for them).
    assert.ok(stage.predicted.busySeconds.gpu > a.busySeconds);
    for (const t of TIERS) assert.ok(stage.predicted.peakBytes[t] <= stage.predicted.capacityBytes[t]);
  }
  assert.equal(used.size, 2 * pipeline.stages.length, "no GPU holds two stages");

  const simulated = simulatePipeline({ ...planned, pipeline }, { schedule: planned.schedule });
  simulated.stages.forEach((s, i) => {
    const plannedBytes = pipeline.stages[i]!.predicted.allReduce!.bytesPerGpu;
    assert.equal(s.plannedAllReduceBytesPerGpu, plannedBytes);
    assert.ok(
      Math.abs(s.allReduceBytesPerGpu! - plannedBytes) <= TRAFFIC_TOLERANCE * plannedBytes,
      `stage ${i}: ${s.allReduceBytesPerGpu} simulated vs ${plannedBytes} planned`,
    );
    assert.equal(s.overflow, undefined);
  });
  assert.deepEqual(
    simulated.disagreements.filter((d) => /traffic|link|memory/.test(d)),
    [],
  );

  // The plan file stands alone; a stage whose GPUs overlap another's, or whose group is short, is refused.
  const json = JSON.parse(JSON.stringify(planned));
  assert.deepEqual(parsePlan(json, "plan.json").pipeline, json.pipeline);
  const overlapping = JSON.parse(JSON.stringify(planned));
  overlapping.pipeline.stages[1].gpus[1] = overlapping.pipeline.stages[0].gpus[1];
  assert.throws(
    () => parsePlan(overlapping, "plan.json"),
    (e: unknown) => e instanceof InputError && /pipeline\.stages\[1\]\.gpus.*holds two stages/.test(e.message),
  );
  const short = JSON.parse(JSON.stringify(planned));
  short.pipeline.stages[0].gpus.pop();
  assert.throws(
    () => parsePlan(short, "plan.json"),
    (e: unknown) => e instanceof InputError && /pipeline\.stages\[0\]\.gpus: expected 2 GPUs/.test(e.message),
  );

  // vLLM shards each stage over its GPUs as the plan does.
  const serve = checkFlags(commandWords(exportPlan(planned, "vllm").text), 4, VLLM_FLAGS);
  assert.deepEqual(serve.get("--tensor-parallel-size"), ["2"]);
  assert.deepEqual(serve.get("--pipeline-parallel-size"), [String(pipeline.stages.length)]);
  // FlexGen cannot: one rank per stage on its first GPU, with a warning.
  const flexgen = exportPlan(planned, "flexgen");
  assert.ok(flexgen.warnings.some((w) => /tensor parallelism/.test(w) && /--tensor-parallel 1/.test(w)));
  assert.deepEqual(
    flexgen.text.match(/^CUDA_VISIBLE_DEVICES=\d+ python -m flexgen\.dist_flex_opt/gm),
    pipeline.stages.map((s) => `CUDA_VISIBLE_DEVICES=${s.gpu.index} python -m flexgen.dist_flex_opt`),
  );
  // Accelerate refuses (its device_map places whole modules).
  assert.throws(
    () => exportPlan(planned, "accelerate"),
    (e: unknown) => e instanceof InputError && /tensor parallelism/.test(e.message),
  );
  // DeepSpeed: every GPU a ZeRO rank, and init_inference's tp_size named beside the config.
  const ds = JSON.parse(exportPlan(planned, "deepspeed").text);
  assert.equal(ds._spillway.tensorParallel.tp_size, 2);
  assert.equal(ds.train_batch_size, ds.train_micro_batch_size_per_gpu * 2 * pipeline.stages.length);
  // llama.cpp: one split mode for every device, so several tensor-parallel stages fall back with a warning.
  const llama = exportPlan(planned, "llama.cpp");
  assert.ok(llama.warnings.some((w) => /tensor parallelism/.test(w)));
});

test("a tensor-parallel plan of one stage is llama.cpp's row split over its GPUs", () => {
  const planned = planPipelineSync(
    { model: tiny, cluster: smallNode(), workload: { promptLen: 16, genLen: 8 }, maxBlock: 16, tensorParallelSize: 4 },
    solvers,
  );
  const pipeline = planned.pipeline!;
  assert.equal(pipeline.stages.length, 1);
  const llama = exportPlan(planned, "llama.cpp");
  const words = commandWords(llama.text);
  assert.deepEqual(words.slice(0, 2), ["CUDA_VISIBLE_DEVICES=0,1,2,3", "llama-server"]);
  const flags = checkFlags(words, 2, LLAMA_FLAGS);
  assert.deepEqual(flags.get("--split-mode"), ["row"]);
  assert.deepEqual(flags.get("--tensor-split"), ["1,1,1,1"]);
  assert.deepEqual(flags.get("-mg"), ["0"]);
  assert.ok(llama.warnings.some((w) => /KV cache/.test(w) && /-mg 0/.test(w)));
});

test("on 1x8-a100-80g the search shards OPT-66B over several GPUs per stage, faster than any pipeline of one GPU per stage", () => {
  const model = findCatalogueModel("opt-66b")!;
  const cluster = loadShippedCluster("1x8-a100-80g");
  const workload = { promptLen: 64, genLen: 8 };
  const free = planPipelineSync({ model, cluster, workload, maxBlock: 8 }, solvers);
  const pipelineOnly = planPipelineSync({ model, cluster, workload, maxBlock: 8, tensorParallelSize: 1 }, solvers);
  assert.ok((free.pipeline?.tensorParallelSize ?? 1) > 1, "tensor parallelism chosen");
  assert.equal(pipelineOnly.pipeline?.tensorParallelSize, undefined);
  assert.ok(free.predicted.throughputTokensPerSecond > pipelineOnly.predicted.throughputTokensPerSecond);
  assert.ok(free.predicted.feasible);
});
