import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { exportPlan } from "../../exporters/export-plan.js";
import { flexgenStageSizes } from "../../exporters/flexgen-pipeline.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planPipelineSync } from "../../planner/pipeline/plan-pipeline.js";
import { checkFlags, commandWords, FLEXGEN_DIST_FLAGS, VLLM_FLAGS } from "../export-flags.js";
import { smallNode, tiny } from "../pipeline-fixtures.js";

const solvers = await loadLpSolvers();
// Four nodes of one small GPU each: hidden states cross the network.
const plan = planPipelineSync(
  { model: tiny, cluster: smallNode("4x1-t4-gcp"), workload: { promptLen: 16, genLen: 32 }, maxBlock: 64 },
  solvers,
);
const pipeline = plan.pipeline!;

test("FlexGen export: one dist_flex_opt process per stage, on its node, with its rank and the plan's batch and placement", () => {
  assert.ok(pipeline.stages.length > 1);
  const result = exportPlan(plan, "flexgen");
  const body = result.text
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n");
  const commands = body
    .split("&")
    .map((c) => c.trim())
    .filter((c) => c !== "");
  assert.equal(commands.length, pipeline.stages.length);
  commands.forEach((command, rank) => {
    const stage = pipeline.stages[rank]!;
    const words = commandWords(command);
    assert.deepEqual(words.slice(0, 4), [
      `CUDA_VISIBLE_DEVICES=${stage.gpu.index}`,
      "python",
      "-m",
      "flexgen.dist_flex_opt",
    ]);
    const flags = checkFlags(words, 4, FLEXGEN_DIST_FLAGS);
    assert.deepEqual(flags.get("--rank"), [String(rank)]);
    assert.deepEqual(flags.get("--world-size"), [String(pipeline.stages.length)]);
    assert.deepEqual(flags.get("--num-inner-iterations"), [String(pipeline.microBatches)]);
    assert.deepEqual(flags.get("--gpu-batch-size"), [String(stage.policy.gpuBatchSize)]);
    assert.deepEqual(flags.get("--num-gpu-batches"), [String(stage.policy.numGpuBatches)]);
    assert.deepEqual(flags.get("--comm-device"), ["cpu"], "the network between nodes: through host memory");
    assert.equal(flags.has("--compress-weight"), stage.policy.compressWeight);
  });
  // Each node's commands sit under its own heading.
  for (const s of pipeline.stages) assert.match(result.text, new RegExp(`# node ${s.gpu.node}`));
  // FlexGen splits evenly by count: a cost-balanced split that differs is said.
  const counts = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  const even = flexgenStageSizes(tiny.numLayers, counts.length);
  assert.equal(
    result.warnings.some((w) => w.includes("splits the layers evenly")),
    counts.some((n, i) => n !== even[i]),
  );
  assert.deepEqual(flexgenStageSizes(10, 4), [3, 3, 2, 2]);
});

test("vLLM export: Ray cluster steps across nodes, then vllm serve with the stages and the plan's split", () => {
  const result = exportPlan(plan, "vllm");
  const lines = result.text.split("\n").filter((l) => !l.startsWith("#") && l.trim() !== "");
  const nodes = new Set(pipeline.stages.map((s) => s.gpu.node)).size;
  assert.equal(lines.filter((l) => l.startsWith("ray start --head")).length, 1);
  assert.equal(lines.filter((l) => l.startsWith("ray start --address=")).length, nodes - 1);
  const serve = commandWords(lines.filter((l) => !l.startsWith("ray start")).join("\n"));
  const counts = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  assert.deepEqual(serve.slice(0, 3), [`VLLM_PP_LAYER_PARTITION=${counts.join(",")}`, "vllm", "serve"]);
  const flags = checkFlags(serve, 4, VLLM_FLAGS);
  assert.deepEqual(flags.get("--pipeline-parallel-size"), [String(pipeline.stages.length)]);
  assert.deepEqual(flags.get("--tensor-parallel-size"), ["1"]);
  assert.deepEqual(flags.get("--distributed-executor-backend"), ["ray"]);
});

test("engines whose multi-GPU settings are not written refuse a pipeline plan with a clear error", () => {
  for (const target of ["deepspeed", "llama.cpp", "accelerate"] as const)
    assert.throws(
      () => exportPlan(plan, target),
      (e: unknown) => e instanceof InputError && /pipeline plans export to flexgen and vllm/.test(e.message),
    );
});
