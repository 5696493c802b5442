import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../core/input-error.js";
import type { Plan } from "../../core/plan.js";
import { exportPlan } from "../../exporters/export-plan.js";
import { flexgenStageSizes } from "../../exporters/flexgen-pipeline.js";
import { llamaLayerDevices } from "../../exporters/llama-cpp-rpc.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planPipelineSync } from "../../planner/pipeline/plan-pipeline.js";
import {
  checkFlags,
  commandWords,
  DEEPSPEED_CONFIG_KEYS,
  DEEPSPEED_LAUNCHER_FLAGS,
  FLEXGEN_DIST_FLAGS,
  LLAMA_FLAGS,
  RPC_SERVER_FLAGS,
  VLLM_FLAGS,
} from "../export-flags.js";
import { readGoldenPipelinePlans, smallNode, tiny, withoutSearchWork } from "../pipeline-fixtures.js";

const solvers = await loadLpSolvers();
// Four nodes of one small GPU each: hidden states cross the network.
const plan = planPipelineSync(
  { model: tiny, cluster: smallNode("4x1-t4-gcp"), workload: { promptLen: 16, genLen: 32 }, maxBlock: 64 },
  solvers,
);
const pipeline = plan.pipeline!;
// One node of four small GPUs (Accelerate's case; llama.cpp runs every stage on the main host).
const onePlan = planPipelineSync(
  { model: tiny, cluster: smallNode(), workload: { promptLen: 16, genLen: 32 }, maxBlock: 64, tensorParallelSize: 1 },
  solvers,
);

test("the plans exported are the pipeline plans recorded before tensor parallelism was searched (a node of one GPU has no other)", () => {
  assert.deepEqual(
    JSON.parse(JSON.stringify(withoutSearchWork(plan))),
    withoutSearchWork(readGoldenPipelinePlans()["4x1-t4-gcp"] as Plan),
  );
});

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

/** The commands of a text export: comment lines dropped, split at the background "&". */
const commandsOf = (text: string): string[] =>
  text
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
    .split("&")
    .map((c) => c.trim())
    .filter((c) => c !== "");

test("llama.cpp RPC export: an rpc-server per remote stage, llama-server --rpc in stage order, and a --tensor-split that gives each device its stage's layers", () => {
  const L = tiny.numLayers;
  // llama.cpp's rule on known splits: 3 + 3 of 5 layers and the output layer.
  assert.deepEqual(llamaLayerDevices([3, 3], 5), [0, 0, 0, 1, 1, 1]);
  for (const p of [plan, onePlan]) {
    const stages = p.pipeline!.stages;
    const result = exportPlan(p, "llama.cpp");
    const commands = commandsOf(result.text);
    const mainNode = stages[stages.length - 1]!.gpu.node;
    const remote = stages.filter((s) => s.gpu.node !== mainNode);
    assert.equal(commands.length, remote.length + 1);
    remote.forEach((stage, i) => {
      const words = commandWords(commands[i]!);
      assert.deepEqual(words.slice(0, 2), [`CUDA_VISIBLE_DEVICES=${stage.gpu.index}`, "rpc-server"]);
      const flags = checkFlags(words, 2, RPC_SERVER_FLAGS);
      assert.deepEqual(flags.get("-H"), ["0.0.0.0"]);
    });
    const words = commandWords(commands[commands.length - 1]!);
    const local = stages.filter((s) => s.gpu.node === mainNode);
    assert.deepEqual(words.slice(0, 2), [
      `CUDA_VISIBLE_DEVICES=${local.map((s) => s.gpu.index).join(",")}`,
      "llama-server",
    ]);
    const flags = checkFlags(words, 2, LLAMA_FLAGS);
    assert.deepEqual(flags.get("-ngl"), [String(L + 1)]);
    // --rpc lists the remote stages' nodes in stage order (their servers' ports as started).
    const endpoints = flags.get("--rpc")?.[0]?.split(",") ?? [];
    assert.deepEqual(
      endpoints.map((e) => e.split(":")[0]),
      remote.map((s) => `$NODE${s.gpu.node}_IP`),
    );
    remote.forEach((_stage, i) => assert.match(commands[i]!, new RegExp(`-p ${endpoints[i]!.split(":")[1]}`)));
    // llama.cpp's devices are the RPC servers, then the local GPUs: stage order. Each gets its stage's layers.
    const split = flags.get("--tensor-split")![0]!.split(",").map(Number);
    assert.equal(split.length, stages.length);
    const devices = llamaLayerDevices(split, L);
    stages.forEach((s, i) => {
      for (let layer = s.layers.from; layer < s.layers.to; layer++) assert.equal(devices[layer], i, `layer ${layer}`);
    });
    assert.equal(devices[L], stages.length - 1, "the output layer on the last stage's GPU");
    assert.ok(result.warnings.some((w) => w.includes("no OPT architecture")));
    assert.ok(result.warnings.some((w) => w.startsWith("micro-batches:")));
  }
});

test("DeepSpeed export: a hostfile line per node with its GPUs as slots, the launcher's flags, documented ZeRO keys, the batch per rank", () => {
  for (const p of [plan, onePlan]) {
    const pipe = p.pipeline!;
    const result = exportPlan(p, "deepspeed");
    const config = JSON.parse(result.text);
    const nodes = [...new Set(pipe.stages.map((s) => s.gpu.node))];
    const slots = nodes.map((n) => pipe.stages.filter((s) => s.gpu.node === n).length);
    assert.deepEqual(
      config._spillway.hostfile,
      nodes.map((n, i) => `${nodes.length === 1 ? "localhost" : `node${n}`} slots=${slots[i]}`),
    );
    const words = commandWords(config._spillway.launch);
    const script = words.findIndex((w) => w.endsWith(".py"));
    assert.equal(words[0], "deepspeed");
    const flags = checkFlags(words.slice(0, script), 1, DEEPSPEED_LAUNCHER_FLAGS);
    assert.deepEqual(flags.get("--hostfile"), ["hostfile"]);
    assert.deepEqual(flags.get("--num_gpus"), [String(slots[0])]);
    assert.deepEqual(flags.get("--num_nodes"), nodes.length > 1 ? [String(nodes.length)] : undefined);
    assert.deepEqual(words.slice(script + 1), ["--deepspeed_config", "ds_config.json"]);
    const zero = config.zero_optimization;
    assert.equal(zero.stage, 3);
    for (const key of Object.keys(zero)) assert.ok(DEEPSPEED_CONFIG_KEYS.zero_optimization!.includes(key), key);
    for (const key of Object.keys(zero.offload_param ?? {}))
      assert.ok(DEEPSPEED_CONFIG_KEYS.offload_param!.includes(key), key);
    for (const key of Object.keys(config.aio ?? {})) assert.ok(DEEPSPEED_CONFIG_KEYS.aio!.includes(key), key);
    // Every stage keeps its weights on its GPU here: nothing to offload; otherwise offload_param would be there.
    const allOnGpu = pipe.stages.every((s) => s.policy.weights.gpu === 1);
    assert.equal(zero.offload_param === undefined, allOnGpu);
    // The plan's sequences in flight divided among the ranks; DeepSpeed's batch check: micro x world size.
    const inFlight = pipe.stages[0]!.policy.gpuBatchSize * pipe.stages[0]!.policy.numGpuBatches * pipe.microBatches;
    assert.equal(config.train_micro_batch_size_per_gpu, Math.ceil(inFlight / pipe.stages.length));
    assert.equal(config.train_batch_size, config.train_micro_batch_size_per_gpu * pipe.stages.length);
    assert.ok(result.warnings.some((w) => w.startsWith("ZeRO-3 has no pipeline stages")));
  }
});

test("DeepSpeed export: a plan on GPUs other than each node's first names them with --include", () => {
  const [a, b] = onePlan.pipeline!.stages;
  const half = tiny.numLayers / 2;
  const stages = [
    { ...a!, gpu: { node: 0, index: 2 }, layers: { from: 0, to: half } },
    { ...b!, gpu: { node: 0, index: 3 }, layers: { from: half, to: tiny.numLayers }, role: "last" as const },
  ];
  const moved = { ...onePlan, pipeline: { ...onePlan.pipeline!, stages, links: [] } };
  const config = JSON.parse(exportPlan(moved, "deepspeed").text);
  assert.deepEqual(config._spillway.hostfile, ["localhost slots=4"]);
  const words = commandWords(config._spillway.launch);
  const flags = checkFlags(
    words.slice(
      0,
      words.findIndex((w) => w.endsWith(".py")),
    ),
    1,
    DEEPSPEED_LAUNCHER_FLAGS,
  );
  assert.deepEqual(flags.get("--include"), ["localhost:2,3"]);
  assert.equal(flags.has("--num_gpus"), false, "the launcher refuses --num_gpus with --include");
});

test("DeepSpeed export: a stage with weights on disk offloads parameters to NVMe, with documented offload and aio keys", () => {
  const stages = onePlan.pipeline!.stages.map((s, i) =>
    i === 1 ? { ...s, policy: { ...s.policy, weights: { gpu: 0, cpu: 0.5, disk: 0.5 } } } : s,
  );
  const spilled = { ...onePlan, pipeline: { ...onePlan.pipeline!, stages } };
  const config = JSON.parse(exportPlan(spilled, "deepspeed").text);
  const offload = config.zero_optimization.offload_param;
  assert.equal(offload.device, "nvme");
  assert.ok(offload.max_in_cpu > 0, "the CPU share stays in CPU memory");
  for (const key of Object.keys(offload)) assert.ok(DEEPSPEED_CONFIG_KEYS.offload_param!.includes(key), key);
  assert.ok(config.aio);
  for (const key of Object.keys(config.aio)) assert.ok(DEEPSPEED_CONFIG_KEYS.aio!.includes(key), key);
});

test("Accelerate export: each stage's layers on its GPU or offloaded, max_memory per GPU; a plan over several nodes is refused", () => {
  const pipe = onePlan.pipeline!;
  const result = exportPlan(onePlan, "accelerate");
  const config = JSON.parse(result.text);
  const map: Record<string, number | string> = config.device_map;
  // Accelerate computes offloaded modules on its main device (the first GPU in the map): said when a stage's are elsewhere.
  const main = Object.values(map).find((d) => typeof d === "number");
  const layerDevices = (s: (typeof pipe.stages)[number]) =>
    Array.from({ length: s.layers.to - s.layers.from }, (_, k) => map[`model.decoder.layers.${s.layers.from + k}`]);
  const offloadedElsewhere = pipe.stages.some(
    (s) => s.gpu.index !== main && layerDevices(s).some((d) => typeof d !== "number"),
  );
  assert.equal(
    result.warnings.some((w) => w.includes("on its main device")),
    offloadedElsewhere,
  );
  for (const s of pipe.stages) {
    const devices = new Set<number | string>();
    for (let layer = s.layers.from; layer < s.layers.to; layer++) devices.add(map[`model.decoder.layers.${layer}`]!);
    for (const d of devices) assert.ok(d === s.gpu.index || d === "cpu" || d === "disk", `stage layers on ${d}`);
    // A stage whose plan keeps every fp16 weight on its GPU has all its layers there.
    if (s.policy.weights.gpu === 1 && !s.policy.compressWeight) assert.deepEqual([...devices], [s.gpu.index]);
  }
  assert.deepEqual(
    Object.keys(config.max_memory).sort(),
    [...pipe.stages.map((s) => String(s.gpu.index)), "cpu"].sort(),
  );
  const gpuOf = (i: number) => pipe.stages[i]!.gpu.index;
  assert.ok([gpuOf(0), "cpu", "disk"].includes(map["model.decoder.embed_tokens"]!));
  assert.ok([gpuOf(pipe.stages.length - 1), "cpu", "disk"].includes(map["model.decoder.final_layer_norm"]!));
  // OPT ties the LM head to the token table: one device for both.
  assert.equal(map.lm_head, map["model.decoder.embed_tokens"]);
  assert.throws(
    () => exportPlan(plan, "accelerate"),
    (e: unknown) => e instanceof InputError && /spans 4 nodes/.test(e.message),
  );
});
